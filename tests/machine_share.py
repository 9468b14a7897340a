"""The machine, shared by the test workers of one session: a counting semaphore in a file.

The machine has `capacity` units (one per test worker). A test takes the units its tier
asks for, first come first served, and gives them back when it ends; a worker whose test
does not fit waits its turn. The state (who holds how many, who waits) is a small JSON
file, read and written under an exclusive flock; a holder or waiter whose process is gone
(a crashed worker) is forgotten, so nothing waits on it forever.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

POLL_SECONDS = 0.1


class MachineShare:
    def __init__(self, state_dir: Path, capacity: int, pid: int | None = None):
        self.path = state_dir / "machine-share.json"
        self.lock_path = state_dir / "machine-share.lock"
        self.capacity = capacity
        self.me = str(pid or os.getpid())  # the worker's process: its units are freed when it is gone

    @contextmanager
    def _state(self):
        with open(self.lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(self.path.read_text()) if self.path.exists() else {"holders": {}, "queue": []}
            state["holders"] = {pid: units for pid, units in state["holders"].items() if psutil.pid_exists(int(pid))}
            state["queue"] = [entry for entry in state["queue"] if psutil.pid_exists(int(entry[0]))]
            yield state
            self.path.write_text(json.dumps(state))

    def acquire(self, units: int) -> None:
        """Wait until `units` fit beside what the others hold and every earlier waiter has
        been served (so a test that asks for more is not starved by a stream of smaller ones)."""
        units = min(units, self.capacity)
        while True:
            with self._state() as state:
                if not any(pid == self.me for pid, _ in state["queue"]):
                    state["queue"].append([self.me, units])
                used = sum(state["holders"].values())
                if state["queue"][0][0] == self.me and used + units <= self.capacity:
                    state["queue"].pop(0)
                    state["holders"][self.me] = units
                    return
            time.sleep(POLL_SECONDS)

    def release(self) -> None:
        with self._state() as state:
            state["holders"].pop(self.me, None)

    def held(self) -> int:
        with self._state() as state:
            return state["holders"].get(self.me, 0)

    def waiting(self) -> list[str]:
        with self._state() as state:
            return [pid for pid, _ in state["queue"]]
