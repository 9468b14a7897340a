"""The room's state, in memory: who joined, each attendee's last result per step, and the rules
every request passes before it changes anything.

The rules (a refused request changes nothing; its RoomError carries the HTTP status):
- joining needs the join code; a wrong code costs the sender's address one of its
  WRONG_CODES_PER_MINUTE tries (429 after that, even with the right code);
- joining hands out a random attendee token; the room keeps only its SHA-256, so the
  snapshot file holds no token that works;
- an attendee posts results with its own token, for its own rows only; at most
  RESULTS_PER_MINUTE posts a minute;
- a result names a lab and a checked step the room knows, a status (passed / failed) and,
  for a failure, the hint its check named: the index of one of that step's hints (or of
  another step of the same lab, `hint_step`: a check may fail on an earlier step's ground).
  Any other field is refused: code, file contents and paths have no field to travel in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from workshop.curriculum import Lab
from workshop.room.agenda import Agenda

STATUSES = ("passed", "failed")
MAX_NAME = 40
MAX_ATTENDEES = 200
RESULTS_PER_MINUTE = 20
WRONG_CODES_PER_MINUTE = 10
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off a projector, typed by hand
CODE_LENGTH = 6


class RoomError(Exception):
    """A refused request: the HTTP status and a sentence the attendee can act on."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def show_code(code: str) -> str:
    """ "K7MQ4P" -> "K7M-Q4P", easier to read aloud."""
    return f"{code[:3]}-{code[3:]}"


def normalise_code(text: str) -> str:
    return "".join(text.split()).replace("-", "").upper()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Attendee:
    id: str
    name: str
    token_hash: str
    joined: float
    rows: dict[str, dict] = field(default_factory=dict)  # "02/shared-cache" -> {"status", "hint", "hint_step"}
    last_lab: str | None = None
    current: str | None = None  # "02/cached-db": the step they are on; None when the agenda's labs are done
    since: float = 0.0  # when they arrived at `current`
    last_seen: float = 0.0
    posts: deque = field(default_factory=deque, repr=False)  # monotonic times of recent posts

    def passed(self, lab: Lab) -> int:
        return sum(self.rows.get(f"{lab.code}/{step.id}", {}).get("status") == "passed" for step in lab.checked_steps)

    def to_dict(self) -> dict:
        keys = ("id", "name", "token_hash", "joined", "rows", "last_lab", "current", "since", "last_seen")
        return {key: getattr(self, key) for key in keys}


def _only(payload: object, allowed: set[str], required: set[str], what: str) -> dict:
    if not isinstance(payload, dict):
        raise RoomError(400, f"{what} must be a JSON object")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise RoomError(400, f"{what} has fields the room does not take: {', '.join(unknown)}")
    missing = sorted(required - set(payload))
    if missing:
        raise RoomError(400, f"{what} lacks: {', '.join(missing)}")
    return payload


def parse_results(payload: object, labs: dict[str, Lab]) -> tuple[Lab, dict[str, dict]]:
    """A results post, checked field by field: (the lab, {"02/step": {"status", "hint", "hint_step"}})."""
    body = _only(payload, {"lab", "results"}, {"lab", "results"}, "a results post")
    if not isinstance(body["lab"], str) or body["lab"] not in labs:
        raise RoomError(422, f"unknown lab {str(body['lab'])[:10]!r}; labs: {', '.join(labs)}")
    lab = labs[body["lab"]]
    checked = {step.id for step in lab.checked_steps}
    results = body["results"]
    if not isinstance(results, list) or not 1 <= len(results) <= len(checked):
        raise RoomError(400, f"results must be a list of 1 to {len(checked)} results (one per step of lab {lab.code})")
    rows = {}
    for item in results:
        result = _only(item, {"step", "status", "hint", "hint_step"}, {"step", "status"}, "a result")
        step, status = result["step"], result["status"]
        if not isinstance(step, str) or step not in checked:
            raise RoomError(422, f"lab {lab.code} has no checked step {str(step)[:40]!r}")
        if f"{lab.code}/{step}" in rows:
            raise RoomError(400, f"step {step!r} appears twice")
        if status not in STATUSES:
            raise RoomError(422, f"status must be one of {', '.join(STATUSES)}, not {str(status)[:20]!r}")
        hint, hint_step = result.get("hint"), result.get("hint_step", step)
        if hint is not None:
            if status != "failed":
                raise RoomError(422, "only a failed result names a hint")
            if not isinstance(hint_step, str) or hint_step not in {s.id for s in lab.steps}:
                raise RoomError(422, f"lab {lab.code} has no step {str(hint_step)[:40]!r}")
            hints = lab.step(hint_step).hints
            if isinstance(hint, bool) or not isinstance(hint, int) or not 0 <= hint < len(hints):
                raise RoomError(422, f"hint must be a number from 0 to {len(hints) - 1} (step {hint_step!r})")
        elif "hint_step" in result:
            raise RoomError(422, "hint_step comes with a hint")
        named = hint_step if hint is not None else None
        rows[f"{lab.code}/{step}"] = {"status": status, "hint": hint, "hint_step": named}
    return lab, rows


class Room:
    def __init__(
        self,
        labs: list[Lab],
        agenda: Agenda,
        code: str | None = None,
        key: str | None = None,
        started: float | None = None,
        clock=time.time,
        on_event=None,
    ):
        self.labs = {lab.code: lab for lab in labs}
        self.agenda = agenda
        self.code = code or new_code()
        self.key = key or secrets.token_urlsafe(18)  # the facilitator's page
        self.clock = clock
        self.started = started if started is not None else clock()
        self.on_event = on_event or (lambda message: None)
        self.attendees: dict[str, Attendee] = {}
        self.by_token: dict[str, str] = {}  # token hash -> attendee id
        self.wrong_codes: dict[str, deque] = {}  # address -> monotonic times of wrong codes
        self.serial = 0
        self.lock = threading.Lock()

    # -- who may do what ----------------------------------------------------------------
    def is_facilitator(self, key: str | None) -> bool:
        return bool(key) and hmac.compare_digest(key.encode(), self.key.encode())

    def attendee(self, token: str | None) -> Attendee:
        attendee_id = self.by_token.get(token_hash(token)) if token else None
        if attendee_id is None:
            raise RoomError(401, "unknown attendee token: join the room again with `workshop room join`")
        return self.attendees[attendee_id]

    # -- changes ------------------------------------------------------------------------
    def join(self, payload: object, address: str) -> tuple[Attendee, str]:
        body = _only(payload, {"code", "name"}, {"code"}, "a join request")
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME):
            raise RoomError(422, f"a name has 1 to {MAX_NAME} characters")
        if name is not None and not name.isprintable():
            raise RoomError(422, "a name has printable characters only")
        with self.lock:
            recent = _recent(self.wrong_codes.setdefault(address, deque()), 60)
            if len(recent) >= WRONG_CODES_PER_MINUTE:
                raise RoomError(429, "too many wrong join codes from this address: wait a minute", retry_after=60)
            given = normalise_code(body["code"]) if isinstance(body["code"], str) else ""
            if not hmac.compare_digest(given.encode(), self.code.encode()):
                recent.append(time.monotonic())
                raise RoomError(403, "wrong join code: use the code the facilitator shows")
            if len(self.attendees) >= MAX_ATTENDEES:
                raise RoomError(409, f"the room is full ({MAX_ATTENDEES} attendees)")
            self.serial += 1
            token, now = secrets.token_urlsafe(24), self.clock()
            attendee = Attendee(f"a{self.serial}", (name or f"attendee {self.serial}").strip(), token_hash(token), now)
            attendee.last_seen = now
            self._move_on(attendee, now)
            self.attendees[attendee.id] = attendee
            self.by_token[attendee.token_hash] = attendee.id
        self.on_event(f"{attendee.name} joined ({len(self.attendees)} in the room)")
        return attendee, token

    def record(self, token: str | None, payload: object) -> Attendee:
        with self.lock:
            attendee = self.attendee(token)
            posts = _recent(attendee.posts, 60)
            if len(posts) >= RESULTS_PER_MINUTE:
                raise RoomError(429, f"at most {RESULTS_PER_MINUTE} results posts a minute", retry_after=10)
            posts.append(time.monotonic())
            lab, rows = parse_results(payload, self.labs)
            now = self.clock()
            attendee.rows.update(rows)
            attendee.last_lab, attendee.last_seen = lab.code, now
            self._move_on(attendee, now)
        return attendee

    def leave(self, token: str | None) -> Attendee:
        with self.lock:
            attendee = self.attendee(token)
            del self.by_token[attendee.token_hash], self.attendees[attendee.id]
        self.on_event(f"{attendee.name} left ({len(self.attendees)} in the room)")
        return attendee

    # -- where each attendee is ---------------------------------------------------------------
    def current_step(self, attendee: Attendee) -> str | None:
        """The first checked step not passed: in the lab they last checked, then in the agenda's
        labs after it (from the agenda's first lab before any result)."""
        order = self.agenda.labs
        if attendee.last_lab in order:
            order = order[order.index(attendee.last_lab) :]
        elif attendee.last_lab:
            order = [attendee.last_lab, *order]
        for code in order:
            for step in self.labs[code].checked_steps:
                if attendee.rows.get(f"{code}/{step.id}", {}).get("status") != "passed":
                    return f"{code}/{step.id}"
        return None

    def _move_on(self, attendee: Attendee, now: float) -> None:
        current = self.current_step(attendee)
        if current != attendee.current or not attendee.since:
            attendee.current, attendee.since = current, now

    # -- a snapshot file, for a restart ----------------------------------------------------------
    def to_dict(self) -> dict:
        with self.lock:
            return {
                "code": self.code,
                "key": self.key,
                "agenda": self.agenda.name,
                "started": self.started,
                "serial": self.serial,
                "attendees": [attendee.to_dict() for attendee in self.attendees.values()],
            }

    def restore(self, data: dict) -> None:
        """Attendees, tokens and times from a snapshot (the code, key and start come in __init__)."""
        self.serial = int(data.get("serial", 0))
        for raw in data.get("attendees", []):
            attendee = Attendee(**raw)
            self.attendees[attendee.id] = attendee
            self.by_token[attendee.token_hash] = attendee.id


def _recent(times: deque, seconds: float) -> deque:
    """Drop the times older than `seconds` (monotonic) and return the deque."""
    while times and time.monotonic() - times[0] > seconds:
        times.popleft()
    return times
