"""Procfile entries (web, worker, beat): the process command lines of a layer."""

from __future__ import annotations

import shlex
from pathlib import Path

from workshop.errors import BadInput
from workshop.paths import ROOT, venv_script

BASE_PROCFILE = ROOT / "Procfile"


class ProcfileError(BadInput, ValueError):
    pass


def read_procfile(path: Path) -> dict[str, list[str]]:
    """`name: command` lines; blank lines and # comments are skipped."""
    entries: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ProcfileError(f"{path}:{number}: expected 'name: command', got {line!r}")
        entries[name.strip()] = shlex.split(command)
    return entries


def resolve_command(argv: list[str]) -> list[str]:
    """Run `celery ...` and `pyuwsgi ...` with this virtualenv's celery, whatever the PATH says."""
    if argv and argv[0] in {"celery", "pyuwsgi", "python"}:
        return [venv_script(argv[0]), *argv[1:]]
    return argv
