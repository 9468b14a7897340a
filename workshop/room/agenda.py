"""Today's agenda (agendas.toml, the tables of the facilitator guide) and the room's pace against it.

An agenda is a list of slots, one after the other: a lab slot (`lab = "02"`) or anything else
(an introduction, a break). The room view tracks the checked steps of the lab slots, and for each
compares where the room is with where the agenda expected it to be by now:

    expected steps  = the lab's checked steps x the share of its slot that has gone by
    the room's      = the median, over attendees, of the lab's steps they passed
    behind (min)    = (expected - the room's) / steps x the slot's minutes

A made-up example: 20 minutes into lab 02's 30-minute slot (3 steps), 2 steps are expected; a room
whose median attendee passed 1 is about 10 minutes behind.
"""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workshop.curriculum import Lab
from workshop.errors import BadInput

AGENDAS_FILE = Path(__file__).with_name("agendas.toml")
ON_PACE_MINUTES = 3  # closer than this to the plan is "on pace"


class AgendaError(BadInput, ValueError):
    """An unknown agenda name or a malformed agendas file: its text says which."""


@dataclass(frozen=True)
class Slot:
    start: int  # minutes from the start of the workshop
    minutes: int
    what: str
    lab: str | None = None  # a lab code ("02") for a lab slot

    @property
    def end(self) -> int:
        return self.start + self.minutes


@dataclass(frozen=True)
class Agenda:
    name: str
    title: str
    slots: tuple[Slot, ...]

    @property
    def minutes(self) -> int:
        return self.slots[-1].end if self.slots else 0

    @property
    def labs(self) -> list[str]:
        """The lab codes of today, in the agenda's order (each once)."""
        return list(dict.fromkeys(slot.lab for slot in self.slots if slot.lab))

    def slot_at(self, elapsed: float) -> Slot | None:
        """The slot of this minute; None before the start and after the end."""
        return next((slot for slot in self.slots if slot.start <= elapsed < slot.end), None)

    def lab_slot(self, code: str) -> Slot | None:
        return next((slot for slot in self.slots if slot.lab == code), None)


def load_agendas(path: Path = AGENDAS_FILE, labs: dict[str, Lab] | None = None) -> dict[str, Agenda]:
    """Every agenda of the file, by name; lab slots get the lab's title when `labs` is given."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AgendaError(f"cannot read the agendas in {path.name}: {exc}") from None
    agendas = {}
    for name, raw in data.items():
        start, slots = 0, []
        try:
            for item in raw["slots"]:
                lab = f"{int(item['lab']):02d}" if "lab" in item else None
                if lab and labs is not None and lab not in labs:
                    raise AgendaError(f"agenda {name!r} names lab {lab}, which does not exist")
                what = item.get("what") or (f"Lab {labs[lab].slug}: {labs[lab].title}" if labs else f"Lab {lab}")
                slots.append(Slot(start, int(item["minutes"]), what, lab))
                start += int(item["minutes"])
            agendas[name] = Agenda(name, raw.get("title", name), tuple(slots))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, AgendaError):
                raise
            raise AgendaError(f"agenda {name!r} in {path.name} lacks or mistypes a field: {exc!r}") from None
    return agendas


def find_agenda(name: str, labs: dict[str, Lab] | None = None, path: Path = AGENDAS_FILE) -> Agenda:
    agendas = load_agendas(path, labs)
    if name not in agendas:
        raise AgendaError(f"there is no agenda {name!r}; agendas: {', '.join(agendas)}")
    return agendas[name]


def pace(agenda: Agenda, labs: dict[str, Lab], elapsed: float, passed: list[dict[str, int]]) -> list[dict]:
    """Per lab slot: its window, whether it is done / now / next, and the room against it.
    `passed` holds, per attendee, lab code -> how many of the lab's checked steps they passed."""
    rows = []
    for slot in agenda.slots:
        if not slot.lab:
            continue
        steps = len(labs[slot.lab].checked_steps)
        state = "done" if elapsed >= slot.end else "now" if elapsed >= slot.start else "next"
        counts = [attendee.get(slot.lab, 0) for attendee in passed]
        row = {
            "lab": slot.lab,
            "what": slot.what,
            "start": slot.start,
            "end": slot.end,
            "state": state,
            "steps": steps,
            "attendees": len(counts),
            "finished": sum(count >= steps for count in counts),
            "median": statistics.median(counts) if counts else 0,
            "expected": round(steps * min(max((elapsed - slot.start) / slot.minutes, 0.0), 1.0), 1),
        }
        row["verdict"] = verdict(row, slot)
        rows.append(row)
    return rows


def verdict(row: dict, slot: Slot) -> str:
    if row["state"] == "next":
        return f"starts at {clock(slot.start)}"
    if not row["attendees"]:
        return "no one has joined yet"
    if row["finished"] == row["attendees"]:
        return "everyone finished"
    behind = (row["expected"] - row["median"]) / max(row["steps"], 1) * slot.minutes
    if abs(behind) < ON_PACE_MINUTES:
        return "on pace"
    return f"about {round(abs(behind))} min {'behind' if behind > 0 else 'ahead'}"


def clock(minutes: float) -> str:
    """Minutes from the start as h:mm (0:35, 1:40)."""
    whole = int(max(minutes, 0))
    return f"{whole // 60}:{whole % 60:02d}"
