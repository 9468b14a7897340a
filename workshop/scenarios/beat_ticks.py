"""Lab 04: who sent which tick. Each run of record_tick is a row in the database, and each
scheduler's log says when it sent what; the checks watch both over a window of time.

Senders are named by process: "beat-1" and "beat-2" (the Procfile's beat line, twice), and
"worker's beat" for a beat embedded in the worker (its line started with -B).
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from workshop.redbeat_lock import log_time
from workshop.topology import Cluster

BEATS = ("beat-1", "beat-2")
EMBEDDED = "'s beat"  # "worker's beat": a beat inside a worker process (-B)


@dataclass(frozen=True)
class Tick:
    label: str
    ran_at: datetime
    sent_by: str  # "beat-1", "worker's beat", or "pid N" for a process the harness does not know
    pid: int | None = None  # the sending process (Celery's origin header)


def ticks(cluster: Cluster, label: str = "tick", since: datetime | None = None) -> list[Tick]:
    """Every run of record_tick(label) since `since` (default: all), oldest first."""
    script = (
        "from cms.signage.models import BeatTick\n"
        f"rows = BeatTick.objects.filter(label={label!r})"
        + (f".filter(ran_at__gte={since.isoformat()!r})" if since else "")
        + ".order_by('ran_at').values_list('ran_at', 'sent_by')\n"
    )
    rows = cluster.shell_value(script, "[(ran_at.isoformat(), sent_by) for ran_at, sent_by in rows]")
    names = sender_names(cluster)
    found = []
    for ran_at, origin in rows:
        pid = origin_pid(origin)
        found.append(Tick(label, datetime.fromisoformat(ran_at), sender_name(origin, names), pid))
    return found


_names_seen: weakref.WeakKeyDictionary[Cluster, dict[int, str]] = weakref.WeakKeyDictionary()


def sender_names(cluster: Cluster) -> dict[int, str]:
    """pid -> name of every process that can send a periodic task: every beat the cluster started
    (restarted ones included), and the children of its workers (a beat embedded with -B is one)."""
    names = _names_seen.setdefault(cluster, {})
    names.update({pid: name for pid, name in cluster.instance_of_pid.items() if name.startswith("beat")})
    for instance, process in list(cluster.procfile_runs.items()):
        if not instance.startswith("worker") or not process.pid:
            continue
        try:
            children = psutil.Process(process.pid).children()
        except psutil.Error:
            continue
        for child in children:  # pool children never send a periodic task; an embedded beat does
            names.setdefault(child.pid, instance + EMBEDDED)
    return names


def origin_pid(origin: str) -> int | None:
    match = re.match(r"gen(\d+)@", origin or "")
    return int(match.group(1)) if match else None


def sender_name(origin: str, names: dict[int, str]) -> str:
    """Celery's origin header is gen<pid>@<host>: the pid of the process that sent the task."""
    pid = origin_pid(origin)
    if pid is None:
        return origin or "?"
    return names.get(pid, f"pid {pid}")


def utcnow() -> datetime:
    return datetime.now(UTC)


def between(items: list[Tick], start: datetime, end: datetime) -> list[Tick]:
    return [tick for tick in items if start <= tick.ran_at < end]


def shortest_gap(items: list[Tick]) -> float | None:
    gaps = [(b.ran_at - a.ran_at).total_seconds() for a, b in zip(items, items[1:], strict=False)]
    return round(min(gaps), 3) if gaps else None


def sleep_until(moment: datetime) -> None:
    seconds = (moment - utcnow()).total_seconds()
    if seconds > 0:
        time.sleep(seconds)


def watch(cluster: Cluster, seconds: float, label: str = "tick", start: datetime | None = None) -> list[Tick]:
    """The ticks that ran during `seconds` from `start` (default: now), once those seconds are over."""
    start = start or utcnow()
    sleep_until(start + timedelta(seconds=seconds))
    return between(ticks(cluster, label, since=start), start, start + timedelta(seconds=seconds))


def clock(moment: datetime | None) -> str:
    """A time as the machine's clock shows it, to the tenth of a second."""
    if moment is None:
        return "never"
    local = moment.astimezone()
    return local.strftime("%H:%M:%S.") + str(local.microsecond // 100000)


# -- what the processes say: their logs ----------------------------------------------------------

# celery beat logs each send: "[2026-11-27 01:37:37,494: INFO/MainProcess] Scheduler: Sending due task tick (...)";
# a beat embedded in a worker logs "INFO/Beat" in the worker's log.
SEND_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/(MainProcess|Beat)\] Scheduler: Sending due task (\S+) "
)


def scheduler_logs(cluster: Cluster) -> dict[str, Path]:
    """The logs in which a scheduler can write: each beat's, and each worker's (an embedded beat)."""
    names = [*BEATS, *(name for name in cluster.procfile_runs if name.startswith("worker"))]
    return {name: cluster.logs_dir / f"{name}.log" for name in names}


def read_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def sends(cluster: Cluster, entry: str = "tick") -> list[tuple[datetime, str]]:
    """(when, sender) of every send of a schedule entry, from the senders' own logs: the time a
    scheduler sent it, whatever delay the worker then added."""
    found = []
    for name, path in scheduler_logs(cluster).items():
        for line in read_log(path).splitlines():
            match = SEND_LINE.match(line)
            if not match or match.group(3) != entry:
                continue
            embedded = match.group(2) == "Beat"
            if embedded == name.startswith("beat"):
                continue  # a beat's log holds its own sends; a worker's, only its embedded beat's
            found.append((log_time(match.group(1)), name + EMBEDDED if embedded else name))
    return sorted(found)
