"""What the facilitator's page shows, as one JSON document the page polls (GET /api/room):

- `columns` and `attendees`: the grid, attendees x the checked steps of today's labs, each cell
  passed / failed / not run, and how long each attendee has been on their current step;
- `stuck`: per step, the failure classes the room hits right now, most attendees first. A
  failure class is (lab, step, hint index): the hint the check chose for what it saw. The
  page shows that hint's text from lab.toml, so the facilitator can speak to the whole room;
- `pace`: the room against today's agenda (see agenda.py).
"""

from __future__ import annotations

import copy
from collections import defaultdict

from workshop.room.agenda import clock, pace
from workshop.room.state import Attendee, Room, show_code

NO_HINT = "failing without naming a hint: an error, often a typo (`workshop check NN --step ID` shows it)"
NAMES_PER_CLASS = 6  # who to walk to first; the count covers everyone


def view(room: Room, address: str) -> dict:
    now = room.clock()
    elapsed = (now - room.started) / 60
    with room.lock:
        attendees = [copy.deepcopy(attendee) for attendee in room.attendees.values()]
    attendees.sort(key=lambda attendee: (attendee.name.casefold(), int(attendee.id[1:])))
    today = [room.labs[code] for code in room.agenda.labs]
    slot = room.agenda.slot_at(elapsed)
    return {
        "now": now,
        "join": {"code": show_code(room.code), "command": f"workshop room join {address} {show_code(room.code)}"},
        "agenda": {
            "name": room.agenda.name,
            "title": room.agenda.title,
            "minutes": room.agenda.minutes,
            "elapsed": round(elapsed, 2),
            "clock": clock(elapsed),
            "slot": None if slot is None else {"what": slot.what, "lab": slot.lab, "ends": clock(slot.end)},
        },
        "pace": pace(room.agenda, room.labs, elapsed, [{lab.code: a.passed(lab) for lab in today} for a in attendees]),
        "labs": [{"lab": lab.code, "slug": lab.slug, "steps": len(lab.checked_steps)} for lab in today],
        "columns": [
            {"key": f"{lab.code}/{step.id}", "lab": lab.code, "step": step.id, "title": step.title, "number": number}
            for lab in today
            for number, step in enumerate(lab.checked_steps, start=1)
        ],
        "attendees": [row(room, attendee, now) for attendee in attendees],
        "stuck": stuck(room, attendees),
    }


def step_budget(room: Room, code: str) -> float | None:
    """Minutes per checked step of a lab in today's agenda: its slot over its steps."""
    slot = room.agenda.lab_slot(code)
    steps = len(room.labs[code].checked_steps)
    return slot.minutes / steps if slot and steps else None


def row(room: Room, attendee: Attendee, now: float) -> dict:
    current = attendee.current
    budget = step_budget(room, current.split("/")[0]) if current else None
    on_step = max(now - attendee.since, 0)
    cells = {
        key: {"status": value["status"], "hint": None if value["hint"] is None else value["hint"] + 1}
        for key, value in attendee.rows.items()
    }
    return {
        "id": attendee.id,
        "name": attendee.name,
        "cells": cells,
        "current": current,
        "on_step": round(on_step),
        "long": budget is not None and on_step > 1.5 * budget * 60,
        "last_seen": round(max(now - attendee.last_seen, 0)),
    }


def stuck(room: Room, attendees: list[Attendee]) -> list[dict]:
    """Per (lab, step) a failure named, the attendees failing there and their classes, most first."""
    classes: dict[tuple[str, str], dict[int | None, list[Attendee]]] = defaultdict(lambda: defaultdict(list))
    for attendee in attendees:
        seen = set()
        for key, value in attendee.rows.items():
            if value["status"] != "failed":
                continue
            lab, step = key.split("/", 1)
            failure = (lab, value["hint_step"] or step, value["hint"])
            if failure not in seen:
                seen.add(failure)
                classes[failure[:2]][failure[2]].append(attendee)
    order = [f"{lab}/{step.id}" for lab in [*room.agenda.labs, *room.labs] for step in room.labs[lab].steps]
    groups = []
    for (code, step_id), by_hint in classes.items():
        step = room.labs[code].step(step_id)
        failing = {attendee.id for who in by_hint.values() for attendee in who}
        items = [
            {
                "hint": None if hint is None else hint + 1,
                "of": len(step.hints),
                "text": step.hints[hint] if hint is not None else NO_HINT,
                "count": len(who),
                "names": sorted((attendee.name for attendee in who), key=str.casefold)[:NAMES_PER_CLASS],
            }
            for hint, who in by_hint.items()
        ]
        items.sort(key=lambda item: (-item["count"], item["hint"] or 0))
        groups.append({"lab": code, "step": step_id, "title": step.title, "failing": len(failing), "classes": items})
    groups.sort(key=lambda group: (-group["failing"], order.index(f"{group['lab']}/{group['step']}")))
    return groups
