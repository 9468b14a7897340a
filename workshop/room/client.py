"""The attendee's side of the room: join, leave, and `report(lab, run)`, which `workshop check`
and `workshop watch` call where they record a result.

What a report sends, and all it sends: the lab's code and, per checked step of the run, its
id, passed / failed and, for a failure, the hint index its check named (and that hint's step
when it is another step of the lab). Never code, file contents, paths or what the check saw.

A room that does not answer never slows or fails a check: report() hands the post to one
background thread and returns at once; the thread gives up after TIMEOUT seconds, and before
the command exits, at most FLUSH_SECONDS are spent finishing what is queued. The first failure
says so once ("room unreachable; results not sent"), and again only after a post got through.

The joined state is one small file in the harness's state folder (.workshop/room.json), never
among the lab files: the room's address, the attendee's token and whether the room answered.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from workshop.errors import WorkshopError
from workshop.paths import state_dir

if TYPE_CHECKING:
    from workshop.checking import CheckRun
    from workshop.curriculum import Lab

TIMEOUT = 1.5  # seconds for one post
FLUSH_SECONDS = 2.0  # at most this long at exit to finish queued posts


class RoomClientError(WorkshopError, RuntimeError):
    """Joining failed: the text says why (unreachable, or the room's own error)."""


def room_file(path: Path | None = None) -> Path:
    return path or state_dir() / "room.json"


def joined(path: Path | None = None) -> dict | None:
    try:
        return json.loads(room_file(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _save(data: dict, path: Path | None = None) -> None:
    target = room_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token is the attendee's
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=2)
    temporary.replace(target)


def base_url(address: str) -> str:
    """ "192.168.1.20:8300" or "http://192.168.1.20:8300/" -> "http://192.168.1.20:8300" """
    address = address.strip().rstrip("/")
    return address if address.startswith(("http://", "https://")) else f"http://{address}"


def _post(url: str, body: dict, token: str | None = None, timeout: float = TIMEOUT):
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, json=body, headers=headers, timeout=timeout)


def _error(response) -> str:
    try:
        return response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def join(address: str, code: str, name: str | None = None, path: Path | None = None, timeout: float = 5.0) -> dict:
    """Join a room: the room's answer ({"attendee", "name", "token", "labs"}), saved in room.json."""
    import httpx

    url = base_url(address)
    try:
        response = _post(f"{url}/api/join", {"code": code, **({"name": name} if name else {})}, timeout=timeout)
    except httpx.HTTPError as exc:
        problem = f"cannot reach the room at {url} ({type(exc).__name__})"
        raise RoomClientError(f"{problem}: on the same network? the address as shown?") from None
    if response.status_code != 201:
        raise RoomClientError(f"the room refused: {_error(response)}")
    answer = response.json()
    _save({"address": url, "attendee": answer["attendee"], "name": answer["name"], "token": answer["token"]}, path)
    return answer


def leave(path: Path | None = None) -> dict | None:
    """Stop sending: tell the room (best effort) and forget it. The room we were in, or None."""
    import httpx

    state = joined(path)
    if state is None:
        return None
    try:
        _post(f"{state['address']}/api/leave", {}, state["token"])
    except httpx.HTTPError:
        pass  # the room forgets nobody's results by itself, but nothing more is sent
    room_file(path).unlink(missing_ok=True)
    return state


def results_of(lab: Lab, run: CheckRun) -> list[dict]:
    """The rows of a check run the room takes: its checked steps' outcomes and the hints they named."""
    rows = []
    for step in lab.checked_steps:
        status = run.outcomes.get(step.check_name or "")
        if status not in ("passed", "failed"):
            continue
        row = {"step": step.id, "status": status}
        named = run.failure_of(step.check_name) if status == "failed" else None
        if named and named.get("lab", lab.code) == lab.code and named.get("step") in {s.id for s in lab.steps}:
            row["hint"] = int(named["hint"])
            if named["step"] != step.id:
                row["hint_step"] = named["step"]
        rows.append(row)
    return rows


def report(lab: Lab, run: CheckRun, path: Path | None = None) -> None:
    """Send a check run's results to the room, if this copy joined one; returns at once."""
    state = joined(path)
    rows = results_of(lab, run) if state else []
    if rows:
        _sender().put(room_file(path), state, {"lab": lab.code, "results": rows})


def report_progress(data: dict, labs: list[Lab], path: Path | None = None) -> int:
    """At join: the statuses progress.json holds (what `workshop list` shows), one post per lab."""
    from workshop.checking import CheckRun

    sent = 0
    for lab in labs:
        state = data.get(lab.code, {})
        outcomes = {s.check_name: state.get("steps", {}).get(s.id) for s in lab.checked_steps}
        named = state.get("named", {})
        failures = {
            s.check_name: {"lab": lab.code, "step": s.id, "hint": named[s.id]["hint"]}
            for s in lab.checked_steps
            if s.id in named
        }
        run = CheckRun(0, {k: v for k, v in outcomes.items() if v}, failures)
        if results_of(lab, run):
            report(lab, run, path)
            sent += 1
    return sent


def flush(timeout: float = FLUSH_SECONDS) -> bool:
    """Wait, at most `timeout` seconds, for the queued posts: True when none is left."""
    return _SENDER is None or _SENDER.wait(timeout)


class _Sender:
    """One daemon thread posts the queued results in order; a post that fails is dropped."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.pending = 0
        self.done = threading.Condition()
        threading.Thread(target=self._loop, name="room-reports", daemon=True).start()
        atexit.register(flush)

    def put(self, path: Path, state: dict, body: dict) -> None:
        with self.done:
            self.pending += 1
        self.queue.put((path, state, body))

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.done:
            while self.pending and time.monotonic() < deadline:
                self.done.wait(deadline - time.monotonic())
            return not self.pending

    def _loop(self) -> None:
        while True:
            path, state, body = self.queue.get()
            try:
                _deliver(path, state, body)
            except Exception as exc:  # noqa: BLE001 (a report never breaks the command that made it)
                _note(path, f"room: results not sent ({type(exc).__name__})")
            finally:
                with self.done:
                    self.pending -= 1
                    self.done.notify_all()


def _deliver(path: Path, state: dict, body: dict) -> None:
    import httpx

    try:
        response = _post(f"{state['address']}/api/results", body, state["token"])
    except httpx.HTTPError:
        _note(path, f"room unreachable ({state['address']}); results not sent. `workshop room leave` stops trying.")
        return
    if response.status_code == 200:
        _note(path, None)
    else:
        _note(path, f"the room refused the results: {_error(response)}")


def _note(path: Path, problem: str | None) -> None:
    """Say a problem once (room.json remembers it was said); a post that got through resets it."""
    state = joined(path)
    if state is None or state.get("problem") == problem:
        return
    state["problem"] = problem
    _save(state, path)
    if problem:
        print(problem, file=sys.stderr, flush=True)


_SENDER: _Sender | None = None
_SENDER_LOCK = threading.Lock()


def _sender() -> _Sender:
    global _SENDER
    with _SENDER_LOCK:
        if _SENDER is None:
            _SENDER = _Sender()
        return _SENDER
