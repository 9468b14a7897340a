"""The room view: a facilitator sees every attendee's progress live, and what the room is stuck on.

agendas.toml, agenda.py  today's agenda (the facilitator guide's tables) and the room's pace
state.py                 who joined, their last result per step, and the rules a request passes
view.py                  what the facilitator's page shows: the grid, the failure classes, the pace
server.py, page.html     the web server (standard library) and its one self-contained page
client.py                an attendee's side: join, leave, and report(lab, run) after each check
cli.py                   `workshop room serve | join | leave`
"""
