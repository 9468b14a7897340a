"""Who holds RedBeat's lock: the lock read from Redis, its holder named from the beats' logs.

RedBeat 2.4.2 takes its lock in `acquire_distributed_beat_lock` (redbeat/schedulers.py), a
`beat_init` receiver: `redis_client.lock(key, timeout=lock_timeout, sleep=max_interval).acquire()`.
redis-py's `Lock.acquire` (redis/lock.py) makes the lock's value, a token `uuid.uuid1().hex`,
once, before its first attempt, and keeps it while it retries. The token names no process, but
a version-1 UUID carries the time it was made. Each beat logs `beat: Starting...` just before it
starts trying (celery/beat.py, `Service.start`) and `beat: Acquired lock` once it holds the lock.
So the holder is the beat run that started at or before the token's time and acquired the lock
at or after it: one run only, since a token is made once per run.

Used by lab 04's checks and notebook (workshop.scenarios.beat_startup) and by `workshop top`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

DEFAULT_LOCK_KEY = "redbeat::lock"  # RedBeat's key prefix "redbeat:" + ":lock"
SLACK = timedelta(milliseconds=5)  # log times are cut to the millisecond

# celery beat, and a worker's embedded beat (-B):
#   [2026-11-27 01:37:37,494: INFO/MainProcess] beat: Starting...
#   [2026-11-27 01:37:37,503: INFO/Beat] beat: Acquired lock
EVENT_LINE = re.compile(
    rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/[\w-]+\] beat: (Starting\.\.\.|Acquired lock)", re.M
)
_UUID_EPOCH = datetime(1582, 10, 15, tzinfo=UTC)  # where a version-1 UUID's clock starts


def log_time(text: str) -> datetime:
    """A log line's time (the machine's local time, to the millisecond), as an aware datetime."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)


@dataclass
class BeatRun:
    """One run of a beat process, by its log: when it started trying for the lock, and when it got it."""

    name: str  # the process whose log it is: beat-1, beat-2, or a worker with an embedded beat
    started: datetime
    acquired: datetime | None = None


class BeatLog:
    """The runs a beat's log tells of, read incrementally (only what the log gained since the last look)."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self.offset = 0
        self.runs: list[BeatRun] = []

    def read(self) -> list[BeatRun]:
        try:
            size = self.path.stat().st_size
            if size < self.offset:  # truncated or replaced: read it again
                self.offset, self.runs = 0, []
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                text = log.read(size - self.offset)
        except FileNotFoundError:
            return self.runs
        cut = text.rfind(b"\n") + 1  # a line still being written is read next time
        for when, event in EVENT_LINE.findall(text[:cut]):
            moment = log_time(when.decode())
            if event.startswith(b"Starting"):
                self.runs.append(BeatRun(self.name, moment))
            elif self.runs and self.runs[-1].acquired is None:
                self.runs[-1].acquired = moment
        self.offset += cut
        return self.runs


def token_time(token: str | bytes | None) -> datetime | None:
    """When a redis-py lock token (uuid1().hex) was made; None for any other value."""
    try:
        made = uuid.UUID(hex=token.decode() if isinstance(token, bytes) else token)
    except (AttributeError, TypeError, ValueError):
        return None
    if made.version != 1:
        return None
    return _UUID_EPOCH + timedelta(microseconds=made.time // 10)


def holder_of(token: str | bytes | None, runs: list[BeatRun]) -> str | None:
    """The name of the beat run whose lock token this is: started before it was made, acquired after."""
    made = token_time(token)
    if made is None:
        return None
    matching = [run for run in runs if run.acquired and run.started - SLACK <= made <= run.acquired + SLACK]
    return max(matching, key=lambda run: run.started).name if matching else None


@dataclass(frozen=True)
class Lock:
    key: str
    token: str | None  # None: nobody holds it
    ttl_s: float | None  # seconds until it expires, unless its holder renews it


def read_lock(client: redis.Redis, key: str = DEFAULT_LOCK_KEY) -> Lock:
    with client.pipeline() as pipe:
        pipe.get(key)
        pipe.pttl(key)
        token, ttl_ms = pipe.execute()
    if token is None:
        return Lock(key, None, None)
    return Lock(
        key,
        token.decode(errors="replace") if isinstance(token, bytes) else token,
        round(ttl_ms / 1000, 1) if ttl_ms >= 0 else None,
    )


def lock_holder(redis_url: str, logs: dict[str, Path], key: str = DEFAULT_LOCK_KEY) -> str | None:
    """The name of the process holding RedBeat's lock (a key of `logs`, which names each
    process's log), or None when nobody holds it or its token matches no run in the logs."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        lock = read_lock(client, key)
    finally:
        client.close()
    runs = [run for name, path in logs.items() for run in BeatLog(name, path).read()]
    return holder_of(lock.token, runs)
