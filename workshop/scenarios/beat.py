"""Lab 04: two beats side by side (and any other scheduler the Procfile starts); who sent which
tick; what each beat says it runs with; killing the sender; restarting every beat between two
runs of an entry; and the shelve file on each beat's disk.

Senders are named by process: "beat-1" and "beat-2" (the Procfile's beat line, twice), and
"worker's beat" for a beat embedded in the worker (its line started with -B).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from workshop.curriculum import Lab
from workshop.layers import settings_modules
from workshop.redbeat_lock import DEFAULT_LOCK_KEY, log_time
from workshop.redbeat_lock import lock_holder as redbeat_lock_holder
from workshop.scenarios import beat_probe
from workshop.topology import Cluster

BEATS = ("beat-1", "beat-2")
SCHEDULE_FILE = "celerybeat-schedule"
PROBE, PROBE_SECONDS = beat_probe.entry, beat_probe.seconds
EMBEDDED = "'s beat"  # "worker's beat": a beat inside a worker process (-B)


def probe_layers(lab: Lab) -> dict[str, str]:
    """The environment that adds the `probe` entry (workshop.scenarios.beat_probe) to the schedule,
    after the lab's settings modules: `CLUSTER_OPTIONS = {"extra_env": probe_layers(lab)}`."""
    return {"CMS_SETTINGS_LAYERS": ",".join([*settings_modules(lab), beat_probe.__name__])}


@dataclass(frozen=True)
class Tick:
    label: str
    ran_at: datetime
    sent_by: str  # "beat-1", "worker's beat", or "pid N" for a process the harness does not know
    pid: int | None = None  # the sending process (Celery's origin header)


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


def wait_for(predicate, timeout: float, every: float = 0.2):
    """Poll `predicate` until it returns something true or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def sleep_until(moment: datetime) -> None:
    seconds = (moment - utcnow()).total_seconds()
    if seconds > 0:
        time.sleep(seconds)


def schedule_files(cluster: Cluster) -> list[str]:
    """Schedule files on the beats' local disks (shelve may add .db, .dat, .dir...)."""
    return sorted(
        str(path.relative_to(cluster.run_dir))
        for name in BEATS
        for path in (cluster.run_dir / name).glob(f"{SCHEDULE_FILE}*")
    )


def watch(cluster: Cluster, seconds: float, label: str = "tick", start: datetime | None = None) -> list[Tick]:
    """The ticks that ran during `seconds` from `start` (default: now), once those seconds are over."""
    start = start or utcnow()
    sleep_until(start + timedelta(seconds=seconds))
    return between(ticks(cluster, label, since=start), start, start + timedelta(seconds=seconds))


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


@dataclass(frozen=True)
class StartupSettings:
    """What a beat printed when it started (celery/apps/beat.py STARTUP_INFO_FMT, with RedBeat's
    `info`): the values it really runs with, whichever route set them."""

    scheduler: str | None = None
    redis_url: str | None = None  # RedBeat's Redis
    lock_key: str | None = None
    lock_timeout: float | None = None  # seconds
    max_interval: float | None = None  # seconds: the longest sleep between two loops

    @property
    def redbeat(self) -> bool:
        return bool(self.scheduler and "RedBeatScheduler" in self.scheduler)


BANNER_FIELDS = {
    "scheduler": re.compile(r"^\s*\. scheduler -> (\S+)", re.M),
    "redis_url": re.compile(r"^\s*\. redis -> (\S+)", re.M),
    "lock_key": re.compile(r"^\s*\. lock -> `([^`]+)`", re.M),
    "lock_timeout": re.compile(r"^\s*\. lock -> `[^`]+` .*\((\d+(?:\.\d+)?)s\)", re.M),
    "max_interval": re.compile(r"^\s*\. maxinterval -> .*\((\d+(?:\.\d+)?)s\)", re.M),
}


def startup_settings(cluster: Cluster, name: str) -> StartupSettings:
    """The settings in the last startup banner of a beat's log (empty when it printed none)."""
    text = read_log(cluster.logs_dir / f"{name}.log")
    banner = text[text.rfind("Configuration ->") :] if "Configuration ->" in text else ""
    values = {}
    for key, pattern in BANNER_FIELDS.items():
        match = pattern.search(banner)
        if match:
            values[key] = float(match.group(1)) if key in ("lock_timeout", "max_interval") else match.group(1)
    return StartupSettings(**values)


def seconds_text(value: float | None) -> str:
    if value is None:
        return "unknown (no startup banner in the beat's log)"
    text = f"{value:g} s"
    return text + (f" ({value / 60:g} min)" if value >= 120 else "")


ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.M)


def exit_reason(cluster: Cluster, name: str) -> str:
    """The last error a stopped process logged, as `ErrorName: message`."""
    errors = ERROR_LINE.findall(read_log(cluster.logs_dir / f"{name}.log"))
    return f"{errors[-1][0]}: {errors[-1][1]}" if errors else "no error in its log"


def exited_beats(cluster: Cluster) -> dict[str, str]:
    """Beats that are no longer running, with the last error each logged."""
    return {
        name: exit_reason(cluster, name)
        for name in BEATS
        if name in cluster.procfile_runs and not cluster.procfile_runs[name].running()
    }


def procfile_line(cluster: Cluster, entry: str) -> str:
    return " ".join(cluster.procfile().get(entry, [])) or "(none)"


def worker_runs_a_beat(cluster: Cluster) -> bool:
    """The worker line embeds a beat (-B / --beat), or a worker's log says one started."""
    argv = cluster.procfile().get("worker", [])
    if any(arg in ("-B", "--beat") or re.fullmatch(r"-[A-Za-z]*B[A-Za-z]*", arg) for arg in argv):
        return True
    return any(
        "INFO/Beat] beat: Starting" in read_log(path)
        for name, path in scheduler_logs(cluster).items()
        if name.startswith("worker")
    )


def redbeat_redis_url_setting(cluster: Cluster) -> str | None:
    """RedBeat's own Redis URL as the app's configuration has it (any route: the CELERY_-namespaced
    Django setting, ...), or None: then RedBeat 2.4 borrows broker_url (RedBeatConfig)."""
    code = (
        "from cms.celery import app\nprint('SETTING', repr(app.conf.first('redbeat_redis_url', 'REDBEAT_REDIS_URL')))"
    )
    value = ast.literal_eval(cluster.manage("shell", "-c", code).split("SETTING", 1)[1].strip())
    return None if value is None else str(value)


def lock_holder(cluster: Cluster) -> str | None:
    """The process holding RedBeat's lock, read from Redis (workshop.redbeat_lock): the Redis and
    the key a beat printed at startup, else the cluster's Redis and RedBeat's default key."""
    for name in BEATS:
        started = startup_settings(cluster, name)
        if started.redbeat and started.redis_url and "**" not in started.redis_url:
            url, key = started.redis_url, started.lock_key or DEFAULT_LOCK_KEY
            break
    else:
        url, key = cluster.redis.url, DEFAULT_LOCK_KEY
    try:
        return redbeat_lock_holder(url, scheduler_logs(cluster), key)
    except Exception:  # noqa: BLE001 - a Redis that does not answer names no holder
        return None


# -- failover ---------------------------------------------------------------------------------


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

    wait_for(lambda: len(recent()) >= 2, timeout=flowing_timeout)
    before = ticks(cluster, since=utcnow() - timedelta(seconds=recent_seconds))
    if not before or len({tick.sent_by for tick in before}) > 1 or not kill_sender(cluster, before[-1]):
        return Failover(None, before, [], None)
    victim, killed_at = before[-1].sent_by, utcnow()

    def takeover():
        return [(when, who) for when, who in sends(cluster) if who != victim and when > killed_at]

    following = wait_for(takeover, timeout=wait_seconds)
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


# -- state across a restart --------------------------------------------------------------------


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
    wait_for(lambda: sends(cluster, entry), timeout=period + 4)
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


def clock(moment: datetime | None) -> str:
    """A time as the machine's clock shows it, to the tenth of a second."""
    if moment is None:
        return "never"
    local = moment.astimezone()
    return local.strftime("%H:%M:%S.") + str(local.microsecond // 100000)


# -- workshop demo 04 --------------------------------------------------------------------


def damage_and_restart(cluster: Cluster, beat: str, damage) -> list[str]:
    """Stop `beat`, damage its schedule files with `damage(path)`, start it again, and return
    what its log then says about the file (and, if it exited, whether it exits again)."""
    cluster.stop_procfile_process(beat)
    log = cluster.logs_dir / f"{beat}.log"
    offset = log.stat().st_size
    for path in sorted((cluster.run_dir / beat).glob(f"{SCHEDULE_FILE}*")):
        damage(path)

    def start() -> bool:
        """Start it; True if it is still running once it sent a task (or after 5 s)."""
        process = cluster.start_procfile_process("beat", instance=beat)
        wait_for(lambda: not process.running() or "Sending due task" in read_log(log)[offset:], timeout=5)
        return process.running()

    running = start()
    with open(log, "rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    said = [line for line in lines if re.search(r"Removing corrupted schedule file|raised exception", line)]
    if not running:
        again = "it exited again" if not start() else "this time it ran"
        said.append(f"({beat} exited. Started once more on the same file: {again}.)")
    return said


def garble(path: Path) -> None:
    """Every schedule file overwritten with junk (a disk that lost a write)."""
    path.write_bytes(b"\x00torn write\x00" * 64)


def truncate_data(path: Path) -> None:
    """The data file cut to its first half (a write cut short); the index still points past it."""
    if path.suffix in (".dat", ".db", ""):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def corrupt_schedule_file(cluster: Cluster, beat: str) -> list[str]:
    """A schedule file damaged beyond reading: Celery removes it and starts from scratch."""
    return damage_and_restart(cluster, beat, garble)


def truncate_schedule_file(cluster: Cluster, beat: str) -> list[str]:
    """A schedule file cut short: on Python's dbm.dumb, the beat cannot start at all."""
    return damage_and_restart(cluster, beat, truncate_data)


def demo(lab, files_dir, console, seconds: float = 12) -> None:
    """`workshop demo 04`: two beats side by side, then two kinds of damaged schedule file."""
    from collections import Counter

    with Cluster(lab, files_dir=files_dir, nodes=0) as cluster:
        with console.status(f"two beats, watching the 1 s tick for {seconds:g} s..."):
            wait_for(lambda: sends(cluster), timeout=10)
            seen = watch(cluster, seconds)
        console.print(
            f"{len(seen)} executions of the 1 s tick in {seconds:g} s, sent by {dict(Counter(t.sent_by for t in seen))}"
        )
        console.print(f"schedule files on the beats' local disks: {schedule_files(cluster) or 'none'}")
        if not schedule_files(cluster):
            return
        for beat, damage, what in (
            ("beat-1", corrupt_schedule_file, "overwriting beat-1's schedule files with junk"),
            ("beat-2", truncate_schedule_file, "cutting beat-2's schedule data file in half"),
        ):
            with console.status(f"{what} and restarting it..."):
                said = damage(cluster, beat)
            console.print(f"{beat}'s log after {what.split(' ', 1)[0]} its file:")
            for line in said or ["(nothing about the file)"]:
                console.print(f"  {line}", markup=False, highlight=False)
