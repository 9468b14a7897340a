"""Running `workshop` commands from the tests (imported by test modules: a conftest is not
a module to import from, and pytest-xdist's workers may find another one first)."""

import os
from dataclasses import dataclass


@dataclass
class Ran:
    """What a `workshop` command did: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_workshop(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120) -> Ran:
    """Run a `workshop` command: in this process through typer's CliRunner (the idiom for
    CLI tests); in a process of its own only for another copy of the curriculum
    (WORKSHOP_ROOT: the paths are read when the package is imported)."""
    import subprocess
    import sys

    env = env or {}
    if "WORKSHOP_ROOT" in env:
        done = subprocess.run(
            [sys.executable, "-m", "workshop.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            input=input,
            timeout=timeout,
        )
        return Ran(done.returncode, done.stdout, done.stderr)
    from typer.testing import CliRunner

    from workshop.cli import app

    result = CliRunner().invoke(app, list(args), env=env, input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)
