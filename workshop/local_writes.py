"""What a cluster's "machines" wrote to a local disk, as workshop/machine/sitecustomize.py
saw it from inside each process: one JSON line per write, with the line of code.

On Kubernetes every pod has a disk of its own, so a file written there is state the
other replicas never see; on this one computer the "machines" could share a path. A
check that only looked for files where it expects them would pass a fix that moved them
to /tmp; this sees every write, wherever it goes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Written by every process and never app state: the SQLite file stands for the database
# server's disk (with its journal files).
SQLITE_COMPANIONS = ("", "-journal", "-wal", "-shm")


@dataclass(frozen=True)
class LocalWrite:
    machine: str  # "node-1", "worker", "beat-2"
    path: str
    where: str  # "audit_sink.py:9 in record"
    event: str = "open"
    at: float = 0.0
    modules: tuple[str, ...] = ()  # the app's modules on the stack, innermost first

    def made_under(self, module: str) -> bool:
        """Was the write made inside a call into `module` (or a submodule of it)?"""
        return any(name == module or name.startswith(module + ".") for name in self.modules)

    def __str__(self) -> str:
        verb = "created the folder" if self.event == "os.mkdir" else "wrote"
        return f"{self.machine} {verb} {self.path} ({self.where})"


def read_local_writes(log: Path, allowed: Iterable[Path] = (), since: float = 0.0) -> list[LocalWrite]:
    """Every write logged at or after `since` (a time.time()), but those to `allowed` paths."""
    allowed_paths = {str(path) for path in allowed}
    writes = []
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a process killed mid-write
        if record["at"] < since or record["path"] in allowed_paths:
            continue
        writes.append(
            LocalWrite(
                record["machine"],
                record["path"],
                record["where"],
                record["event"],
                record["at"],
                tuple(record.get("modules", ())),
            )
        )
    return writes


def sqlite_files(database_url: str) -> list[Path]:
    """The SQLite file of a sqlite:/// URL, its journals and its folder (cms.settings makes
    sure it exists): none for other databases."""
    if not database_url.startswith("sqlite:///"):
        return []
    database = database_url.removeprefix("sqlite:///")
    return [Path(database + suffix) for suffix in SQLITE_COMPANIONS] + [Path(database).parent]


def describe(writes: list[LocalWrite], limit: int = 3) -> str:
    """The files written, each with the machines that wrote it and the line of code:
    "node-1, node-2 wrote /tmp/x/audit.log (audit.py:70 in FileAuditSink.record)". A folder
    is named only when nothing was written inside it."""
    files = [write for write in writes if write.event != "os.mkdir"]
    folders = [w for w in writes if w.event == "os.mkdir" and not any(f.path.startswith(w.path + "/") for f in files)]
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for write in [*files, *folders]:
        machines = grouped.setdefault((write.path, write.where, write.event), [])
        if write.machine not in machines:
            machines.append(write.machine)
    lines = [
        f"{', '.join(sorted(machines))} {'created the folder' if event == 'os.mkdir' else 'wrote'} {path} ({where})"
        for (path, where, event), machines in list(grouped.items())[:limit]
    ]
    more = len(grouped) - limit
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")
