"""Lab 04: killing the sender. Once ticks flow, the process that sends them (the lock holder) is
SIGKILLed, and the checks see how long the next sender takes to take over.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from workshop.scenarios.beat_ticks import EMBEDDED, Tick, sends, ticks, utcnow
from workshop.topology import Cluster
from workshop.waiting import wait_until


@dataclass
class Failover:
    killed: str | None  # None: nothing was killed (no tick came, or several processes sent them)
    before: list[Tick]  # the last ticks before the kill
    after: list[Tick]  # the ticks after it
    killed_at: datetime | None
    last_send: datetime | None = None  # the killed process's last send
    next_send: tuple[datetime, str] | None = None  # the first send by another process after the kill
    waited: float = 0.0  # seconds watched after the kill

    @property
    def send_gap_seconds(self) -> float | None:
        """From the killed process's last send to the next send by another one."""
        if not self.last_send or not self.next_send:
            return None
        return round((self.next_send[0] - self.last_send).total_seconds(), 2)

    @property
    def gap_seconds(self) -> float | None:
        """From the last tick that ran before the kill to the first one after it."""
        if not self.before or not self.after:
            return None
        return (self.after[0].ran_at - self.before[-1].ran_at).total_seconds()


def kill_sender(cluster: Cluster, tick: Tick) -> bool:
    """SIGKILL the process that sent `tick`: a beat of the Procfile, or a beat inside a worker."""
    process = cluster.procfile_runs.get(tick.sent_by)
    if process is not None:
        process.kill(signal.SIGKILL)
        return True
    if tick.pid and tick.sent_by.endswith(EMBEDDED):
        try:
            os.kill(tick.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True
    return False


def kill_the_sender(
    cluster: Cluster,
    wait_seconds: float = 10,
    recent_seconds: float = 3,
    after_takeover: float = 0,
    flowing_timeout: float = 8,
) -> Failover:
    """Once ticks flow (two sent in the last `recent_seconds`), SIGKILL the process that sent the
    latest one (the lock holder), then wait (at most `wait_seconds`) until another process sends
    one; `after_takeover`: watch that much longer."""

    def recent() -> list[datetime]:
        return [when for when, _ in sends(cluster) if when >= utcnow() - timedelta(seconds=recent_seconds)]

    wait_until(
        lambda: len(recent()) >= 2, "ticks to flow", timeout=flowing_timeout, interval=0.2, raise_on_timeout=False
    )
    before = ticks(cluster, since=utcnow() - timedelta(seconds=recent_seconds))
    if not before or len({tick.sent_by for tick in before}) > 1 or not kill_sender(cluster, before[-1]):
        return Failover(None, before, [], None)
    victim, killed_at = before[-1].sent_by, utcnow()

    def takeover():
        return [(when, who) for when, who in sends(cluster) if who != victim and when > killed_at]

    following = wait_until(
        takeover, "another process to send a tick", timeout=wait_seconds, interval=0.2, raise_on_timeout=False
    )
    if following and after_takeover:
        time.sleep(after_takeover)
    waited = (utcnow() - killed_at).total_seconds()
    last = [when for when, who in sends(cluster) if who == victim and when <= killed_at]
    return Failover(
        victim,
        before,
        ticks(cluster, since=killed_at),
        killed_at,
        last_send=last[-1] if last else None,
        next_send=following[0] if following else None,
        waited=waited,
    )
