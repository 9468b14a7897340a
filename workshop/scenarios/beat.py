"""Lab 04: two beats side by side; who sent which tick; killing the lock holder;
restarting beats around a crontab minute; and the shelve file on each beat's disk."""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workshop.topology import Cluster

BEATS = ("beat-1", "beat-2")
SCHEDULE_FILE = "celerybeat-schedule"


@dataclass(frozen=True)
class Tick:
    label: str
    ran_at: datetime
    sent_by: str  # the beat instance ("beat-1") or Celery's raw origin when unknown


def ticks(cluster: Cluster, label: str = "tick", since: datetime | None = None) -> list[Tick]:
    """Every run of record_tick(label) since `since` (default: all), oldest first."""
    script = (
        "import json; from cms.signage.models import BeatTick\n"
        f"rows = BeatTick.objects.filter(label={label!r})"
        + (f".filter(ran_at__gte={since.isoformat()!r})" if since else "")
        + ".order_by('ran_at').values_list('ran_at', 'sent_by')\n"
        "print('JSON', json.dumps([(ran_at.isoformat(), sent_by) for ran_at, sent_by in rows]))"
    )
    output = cluster.manage("shell", "-c", script)
    rows = json.loads(output.split("JSON", 1)[1])
    names = beat_names_by_pid(cluster)
    return [Tick(label, datetime.fromisoformat(ran_at), sender_name(sent_by, names)) for ran_at, sent_by in rows]


def beat_names_by_pid(cluster: Cluster) -> dict[int, str]:
    """Every beat process the cluster started, restarted ones included."""
    return {pid: name for pid, name in cluster.instance_of_pid.items() if name.startswith("beat")}


def sender_name(origin: str, names: dict[int, str]) -> str:
    """Celery's origin header is gen<pid>@<host>: the pid of the beat that sent the task."""
    match = re.match(r"gen(\d+)@", origin)
    return names.get(int(match.group(1)), origin) if match else origin


def utcnow() -> datetime:
    return datetime.now(UTC)


def between(items: list[Tick], start: datetime, end: datetime) -> list[Tick]:
    return [tick for tick in items if start <= tick.ran_at < end]


def shortest_gap(items: list[Tick]) -> float | None:
    gaps = [(b.ran_at - a.ran_at).total_seconds() for a, b in zip(items, items[1:], strict=False)]
    return min(gaps) if gaps else None


def lock_holder(cluster: Cluster) -> str | None:
    """The beat whose log says it acquired RedBeat's lock most recently."""
    newest: tuple[float, str] | None = None
    for name in BEATS:
        log = cluster.logs_dir / f"{name}.log"
        if log.exists() and "Acquired lock" in log.read_text(errors="replace"):
            mtime = log.stat().st_mtime
            newest = max(newest or (mtime, name), (mtime, name))
    return newest[1] if newest else None


def schedule_files(cluster: Cluster) -> list[str]:
    """Schedule files on the beats' local disks (shelve may add .db, .dat, .dir...)."""
    return sorted(
        str(path.relative_to(cluster.run_dir))
        for name in BEATS
        for path in (cluster.run_dir / name).glob(f"{SCHEDULE_FILE}*")
    )


def watch(cluster: Cluster, seconds: float, label: str = "tick") -> list[Tick]:
    """The ticks that ran during the next `seconds`."""
    start = utcnow()
    time.sleep(seconds)
    return between(ticks(cluster, label, since=start), start, start + timedelta(seconds=seconds))


# celery beat logs each send: "[2026-11-27 01:37:37,494: INFO/MainProcess] Scheduler: Sending due task tick (...)"
SEND_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Scheduler: Sending due task (\S+) "
)


def sends(cluster: Cluster, entry: str = "tick") -> list[tuple[datetime, str]]:
    """(when, beat) of every send of a schedule entry, from the beats' own logs: the time
    a beat sent it, whatever delay the worker then added."""
    found = []
    for name in BEATS:
        log = cluster.logs_dir / f"{name}.log"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else ():
            match = SEND_LINE.match(line)
            if match and match.group(2) == entry:
                local = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")  # the machine's local time
                found.append((local.astimezone(UTC), name))
    return sorted(found)


@dataclass
class Failover:
    killed: str
    before: list[Tick]  # the last ticks before the kill
    after: list[Tick]  # the ticks after it
    killed_at: datetime
    send_gap_seconds: float | None = None  # from the killed beat's last send to the next send

    @property
    def gap_seconds(self) -> float | None:
        """From the last tick before the kill to the first one after it."""
        if not self.before or not self.after:
            return None
        return (self.after[0].ran_at - self.before[-1].ran_at).total_seconds()


def kill_the_sender(cluster: Cluster, watch_seconds: float = 4, wait_seconds: float = 12) -> Failover:
    """SIGKILL the beat that sent the latest tick (the lock holder), then watch who sends next."""
    before = watch(cluster, watch_seconds)
    victim = before[-1].sent_by if before else lock_holder(cluster) or BEATS[0]
    killed_at = utcnow()
    cluster.procfile_runs[victim].kill(signal.SIGKILL)
    time.sleep(wait_seconds)
    after = ticks(cluster, since=killed_at)
    sent = sends(cluster)
    last = [when for when, beat in sent if beat == victim and when <= killed_at]
    following = [when for when, beat in sent if beat != victim and when > killed_at]
    gap = (following[0] - last[-1]).total_seconds() if last and following else None
    return Failover(victim, before, after, killed_at, gap)


def restart_beats(cluster: Cluster) -> None:
    for name in BEATS:
        cluster.stop_procfile_process(name)
    for name in BEATS:
        cluster.start_procfile_process("beat", instance=name)


def wait_for_next(cluster: Cluster, label: str, timeout: float = 75) -> Tick:
    """Block until a new record_tick(label) runs; return it."""
    start = utcnow()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ticks(cluster, label, since=start)
        if found:
            return found[0]
        time.sleep(1)
    raise TimeoutError(f"no {label!r} tick ran within {timeout:g} s")


def per_minute(items: list[Tick]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tick in items:
        key = tick.ran_at.strftime("%H:%M")
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- workshop demo 04 --------------------------------------------------------------------


def corrupt_schedule_file(cluster: Cluster, beat: str) -> list[str]:
    """Stop `beat`, overwrite its schedule file as a torn write would leave it, start it
    again, and return what its log then says about the file."""
    cluster.stop_procfile_process(beat)
    log = cluster.logs_dir / f"{beat}.log"
    offset = log.stat().st_size
    for path in (cluster.run_dir / beat).glob(f"{SCHEDULE_FILE}*"):
        path.write_bytes(b"\x00torn write\x00" * 64)
    cluster.start_procfile_process("beat", instance=beat)
    time.sleep(2)
    with open(log, "rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    return [line for line in lines if re.search(r"corrupt|schedule file|Traceback|Error", line, re.I)]


def demo(lab, files_dir, console, seconds: float = 12) -> None:
    """`workshop demo 04`: two beats side by side, then a damaged schedule file."""
    from collections import Counter

    with Cluster(lab, files_dir=files_dir, nodes=0) as cluster:
        with console.status(f"two beats, watching the 1 s tick for {seconds:g} s..."):
            time.sleep(3)
            seen = watch(cluster, seconds)
        console.print(
            f"{len(seen)} executions of the 1 s tick in {seconds:g} s, sent by {dict(Counter(t.sent_by for t in seen))}"
        )
        console.print(f"schedule files on the beats' local disks: {schedule_files(cluster) or 'none'}")
        if schedule_files(cluster):
            with console.status("damaging beat-1's schedule file and restarting it..."):
                said = corrupt_schedule_file(cluster, "beat-1")
            console.print("beat-1's log after the restart:")
            for line in said or ["(nothing about the file)"]:
                console.print(f"  {line}", markup=False, highlight=False)
