"""One way to wait: for a thing, not for a fixed time.

    wait_until(lambda: lock_holder(cluster), what="a beat to take the lock", timeout=10,
               logs=[cluster.logs_dir / "beat-1.log"])

polls the condition until it returns something truthy (which it returns), and on timeout
raises WaitTimedOut saying what it waited for, for how long, and the end of the logs that
tell why. `give_up` ends the wait early (the process it waits on has exited).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from workshop.errors import WorkshopError

T = TypeVar("T")


class WaitTimedOut(WorkshopError):
    """What was waited for did not happen in time; the message says what, and shows the logs."""


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float,
    interval: float = 0.1,
    logs: Iterable[Path] = (),
    give_up: Callable[[], bool] | None = None,
    explain: Callable[[], str] | None = None,
    error: type[WorkshopError] = WaitTimedOut,
    raise_on_timeout: bool = True,
) -> T:
    """`explain` adds what the world looks like at the timeout (the pod that is not Ready);
    `error` is the workshop error to raise (DeployFailed, ServiceFailed...). With
    `raise_on_timeout=False` the wait ends without an error, returning the condition's last
    (falsy) value: for a caller that tells what it saw itself."""
    from workshop.processes import log_tail

    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        stopped = give_up is not None and give_up()
        if stopped or time.monotonic() > deadline:
            if not raise_on_timeout:
                return result
            reason = "gave up: what it waited on has stopped" if stopped else f"waited {timeout:g} s"
            tails = "".join(f"\nLast lines of {path}:\n{log_tail(path)}" for path in logs)
            detail = f": {explain()}" if explain else ""
            raise error(f"{what} did not happen ({reason}){detail}.{tails}")
        time.sleep(interval)
