"""Lab 04: what each beat says it runs with: the settings in its startup banner, whichever route
set them; why a beat exited; what the Procfile and the app's configuration ask for; and which
process holds RedBeat's lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workshop.redbeat_lock import DEFAULT_LOCK_KEY
from workshop.redbeat_lock import lock_holder as redbeat_lock_holder
from workshop.scenarios.beat_ticks import BEATS, read_log, scheduler_logs
from workshop.topology import Cluster


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
    """How a stopped process ended and the last error it logged: `exit code 1, ErrorName: message`."""
    errors = ERROR_LINE.findall(read_log(cluster.logs_dir / f"{name}.log"))
    logged = f"{errors[-1][0]}: {errors[-1][1]}" if errors else "no error in its log"
    process = cluster.procfile_runs.get(name)
    ended = process.how_it_ended() if process else None
    return f"{ended}, {logged}" if ended else logged


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
    value = cluster.shell_value(
        "from cms.celery import app", "app.conf.first('redbeat_redis_url', 'REDBEAT_REDIS_URL')"
    )
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
