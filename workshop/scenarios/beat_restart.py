"""Lab 04: state across a restart. Every beat is stopped while the checks' `probe` entry falls
due, then started again at once on empty disks, as a deploy with new pods does: a beat that kept
its schedule on a local disk forgot when the entry last ran.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workshop.curriculum import Lab
from workshop.layers import settings_modules
from workshop.redbeat_lock import log_time
from workshop.scenarios import beat_probe
from workshop.scenarios.beat_ticks import BEATS, Tick, read_log, sends, sleep_until, ticks, utcnow
from workshop.topology import Cluster
from workshop.waiting import wait_until

PROBE, PROBE_SECONDS = beat_probe.entry, beat_probe.seconds


def probe_layers(lab: Lab) -> dict[str, str]:
    """The environment that adds the `probe` entry (workshop.scenarios.beat_probe) to the schedule,
    after the lab's settings modules: `CLUSTER_OPTIONS = {"extra_env": probe_layers(lab)}`."""
    return {"CMS_SETTINGS_LAYERS": ",".join([*settings_modules(lab), beat_probe.__name__])}


@dataclass
class Restart:
    """Every beat stopped (SIGTERM, as a deploy does) while an entry fell due, then started again
    at once on empty disks (new pods), and what came of that entry."""

    entry: str
    period: float
    last_send: tuple[datetime, str] | None  # the entry's last send before the beats stopped
    stopped_at: datetime  # every beat stopped
    started: dict[str, datetime] = field(default_factory=dict)  # each beat's own "beat: Starting" line
    watched_until: datetime | None = None
    sent_after: list[tuple[datetime, str]] = field(default_factory=list)  # sends of the entry after the stop
    runs: list[Tick] = field(default_factory=list)  # runs of the entry after the stop

    @property
    def due(self) -> datetime | None:
        return self.last_send[0] + timedelta(seconds=self.period) if self.last_send else None

    @property
    def late_seconds(self) -> float | None:
        """From its sender's start to the first send after the restart: about nothing for a beat
        that knew the entry was due, a whole period for one that forgot when it last ran."""
        if not self.sent_after or self.sent_after[0][1] not in self.started:
            return None
        when, sender = self.sent_after[0]
        return (when - self.started[sender]).total_seconds()

    @property
    def doubled(self) -> list[tuple[datetime, str]]:
        """Sends after the restart that came less than half a period after the one before: a
        second scheduler (or a second beat) sending the same run."""
        half = timedelta(seconds=self.period / 2)
        sent = self.sent_after
        return [later for earlier, later in zip(sent, sent[1:], strict=False) if later[0] - earlier[0] < half]

    @property
    def unrestarted_senders(self) -> set[str]:
        """Senders after the restart that were never stopped (a worker's embedded beat)."""
        return {who for _, who in self.sent_after} - set(self.started)


STARTING_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] beat: Starting\.\.\.", re.M)


def last_start(cluster: Cluster, name: str) -> datetime | None:
    """When a beat last logged `beat: Starting...` (celery/beat.py Service.start), by its own clock."""
    found = STARTING_LINE.findall(read_log(cluster.logs_dir / f"{name}.log"))
    return log_time(found[-1]) if found else None


def restart_across_due(
    cluster: Cluster, entry: str = PROBE, period: float = PROBE_SECONDS, margin: float = 1.0
) -> Restart:
    """Stop every beat, wait until `entry` falls due while none runs, start them all again at once
    on empty disks, and watch until `margin` seconds after a whole period from the last start: long
    enough to see the first send of a beat that forgot when the entry last ran."""
    wait_until(
        lambda: sends(cluster, entry), f"a send of {entry}", timeout=period + 4, interval=0.2, raise_on_timeout=False
    )
    for name in BEATS:
        cluster.stop_procfile_process(name)
    stopped_at = utcnow()
    sent = sends(cluster, entry)
    restart = Restart(entry, period, sent[-1] if sent else None, stopped_at)
    if restart.due:
        sleep_until(restart.due + timedelta(seconds=0.3))
    for name in BEATS:
        shutil.rmtree(cluster.run_dir / name, ignore_errors=True)  # a new pod: an empty disk
    cluster.start_instances("beat", BEATS)
    restart.started = {name: last_start(cluster, name) or utcnow() for name in BEATS}
    restart.watched_until = max(restart.started.values()) + timedelta(seconds=period + margin)
    sleep_until(restart.watched_until)
    restart.sent_after = [(when, who) for when, who in sends(cluster, entry) if when > stopped_at]
    restart.runs = ticks(cluster, entry, since=stopped_at)
    return restart
