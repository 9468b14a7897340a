"""The room: a facilitator sees every attendee's progress live (`serve`); attendees `join` and `leave`."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import typer
from rich.console import Console

from workshop.curriculum import all_labs
from workshop.errors import WorkshopError
from workshop.paths import state_dir
from workshop.room import client

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(soft_wrap=True)  # addresses and commands stay on one line, easy to copy
errors = Console(stderr=True, soft_wrap=True)
SNAPSHOT_HOURS = 12  # a snapshot older than this is another day's room


def say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


def load_snapshot(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        say(f"{path.name} cannot be read: a new room.")
        return {}
    if not isinstance(data, dict) or time.time() - data.get("saved", 0) > SNAPSHOT_HOURS * 3600:
        say(f"{path.name} is another day's room: a new room.")
        return {}
    return data


def parse_start(text: str) -> float:
    """ "09:00" -> that time today (yesterday when it is later than now)."""
    try:
        clock = datetime.time.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time like 09:00") from None
    now = datetime.datetime.now()
    start = datetime.datetime.combine(now.date(), clock)
    if start > now:
        start -= datetime.timedelta(days=1)
    return start.timestamp()


@app.command()
def serve(
    agenda: str = typer.Option(None, "--agenda", help="90min, half-day or full-day (default: 90min)"),
    host: str = typer.Option(None, "--host", help="the address to listen on (default: this machine's LAN address)"),
    port: int = typer.Option(None, "--port", min=0, max=65535, help="default: the snapshot's, else a free port"),
    start: str = typer.Option(None, "--start", help="when the workshop began, HH:MM (default: now)"),
    new: bool = typer.Option(False, "--new", help="a new room (new code, nobody in it) even if a snapshot exists"),
    snapshot: Path = typer.Option(None, "--snapshot", help="the room's snapshot file (default: .workshop/)"),
) -> None:
    """Open the room: a live page of every attendee's progress, and a join code for them."""
    from workshop.processes import raise_keyboard_interrupt_on_sigterm
    from workshop.room.agenda import clock, find_agenda
    from workshop.room.server import RoomServer, lan_address
    from workshop.room.state import Room, show_code

    labs = all_labs()
    path = snapshot or state_dir() / "room-server.json"
    data = {} if new else load_snapshot(path)
    chosen = find_agenda(agenda or data.get("agenda") or "90min", {lab.code: lab for lab in labs})
    began = parse_start(start) if start else data.get("started")
    room = Room(labs, chosen, code=data.get("code"), key=data.get("key"), started=began, on_event=say)
    try:
        room.restore(data)
    except (TypeError, ValueError, KeyError):
        say(f"{path.name} does not hold a room: a new room.")
        room = Room(labs, chosen, started=began, on_event=say)
    if host is None:
        host = lan_address()
        if host is None:
            errors.print("no network address found: listening on 127.0.0.1, which only this machine reaches")
            host = "127.0.0.1"
    shown = (lan_address() or "127.0.0.1") if host in ("0.0.0.0", "") else ""  # every address: show the LAN's
    try:
        server = RoomServer(room, host, port if port is not None else data.get("port", 0), path, shown)
    except OSError as exc:
        if port is not None or not data.get("port"):
            raise WorkshopError(f"cannot listen on {host}:{port or 0}: {exc.strerror}") from None
        server = RoomServer(room, host, 0, path, shown)  # the snapshot's port is taken: attendees join again
    server.save()
    labs_today = ", ".join(f"lab {slot.lab} at {clock(slot.start)}" for slot in chosen.slots if slot.lab)
    say(f"The room is open ({len(room.attendees)} attendee(s) in it).")
    say(f'  Attendees type:  workshop room join {server.address} {show_code(room.code)} --name "Their name"')
    say(f"  Your page:       {server.facilitator_url}")
    say("                   (the part after # is your key: keep it off the projector; the page hides it)")
    say(f"  Agenda:          {chosen.title}: {labs_today}")
    say(f"  Snapshot:        {path} (the same command resumes this room; --new opens a new one)")
    say("Press Ctrl-C to close the room.")
    raise_keyboard_interrupt_on_sigterm()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.save()
    say(f"The room is closed; {len(room.attendees)} attendee(s) kept in {path.name}.")


@app.command()
def join(
    address: str = typer.Argument(..., help="the room's address, as the facilitator shows it: 192.168.1.20:8300"),
    code: str = typer.Argument(..., help="the join code, e.g. K7M-Q4P"),
    name: str = typer.Option(None, "--name", help="how the facilitator sees you (default: attendee N)"),
) -> None:
    """Join the facilitator's room: from now on your check results are sent to it."""
    from workshop import progress

    if client.joined():
        client.leave()
    answer = client.join(address, code, name)  # RoomClientError: one line, exit 1
    say(f"Joined the room at {client.base_url(address)} as {answer['name']}.")
    say(
        "From now on `workshop check` and `workshop watch` send each result: the lab, the step, passed or "
        "failed, and the number of the hint the check named. Never your code, your files or their paths."
    )
    if client.report_progress(progress.load(), all_labs()) and client.flush():
        say("Your progress so far (as `workshop list` shows it) is on the facilitator's page.")
    say("`workshop room leave` stops it.")


@app.command()
def leave() -> None:
    """Leave the room: nothing more is sent."""
    state = client.leave()
    if state is None:
        say("You are not in a room.")
    else:
        say(f"Left the room at {state['address']}: nothing more is sent.")
