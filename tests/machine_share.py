"""The machine, shared by the test workers of one session: a counting semaphore in a file,
and the order in which pytest-xdist hands out the tests.

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
from xdist.scheduler import LoadScopeScheduling

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


class CpuFirstScheduling(LoadScopeScheduling):
    """pytest-xdist's load scheduling, but the `cpu` tests are a few units of work (chains), sent
    first: each chain's worker runs its tests one after the other from the start, the others share
    out the rest. (pytest-xdist's own `--dist loadgroup` cannot do it on pytest 9.2: it groups by
    rewriting node ids, which pytest 9.2 no longer reads.) The workers write each `cpu` test's
    chain to a file when they have collected them (`chain_cpu_tests`), before this schedules
    anything; pytest-xdist hands out the units with the most tests first."""

    def __init__(self, config, log, cpu_tests_file: Path):
        super().__init__(config, log)
        self.cpu_tests_file = cpu_tests_file
        self._chain_of: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._chain_of is None:
            self._chain_of = json.loads(self.cpu_tests_file.read_text()) if self.cpu_tests_file.exists() else {}
        return self._chain_of.get(nodeid, nodeid)


def rollouts_of(item) -> int:
    """What a `cpu` test costs, in the rolling updates it drives (`pytest.mark.cpu(rollouts=N)`;
    one if it does not say): lab 05's take about half a minute each on 2 cores."""
    return item.get_closest_marker("cpu").kwargs.get("rollouts", 1)


def chain_cpu_tests(items, path: Path, chains: int) -> None:
    """Share the `cpu` tests out between `chains` chains, the costliest first, each into the chain
    that costs least so far; write each test's chain (every worker collects the same: any one
    will do)."""
    costs = [0] * chains
    chain_of = {}
    for item in sorted((item for item in items if "cpu" in item.keywords), key=rollouts_of, reverse=True):
        chain = costs.index(min(costs))
        chain_of[item.nodeid] = f"cpu-{chain}"
        costs[chain] += rollouts_of(item)
    written = path.with_suffix(f".{os.getpid()}")
    written.write_text(json.dumps(chain_of))
    os.replace(written, path)
