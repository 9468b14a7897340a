"""Test-session setup: the harness keeps its state (progress, run directories) in a
temporary folder, so `make test` never touches a learner's progress or files."""

import os
import secrets
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

_state = tempfile.TemporaryDirectory(prefix="workshop-test-state-")
os.environ["WORKSHOP_STATE_DIR"] = _state.name
# Marks every process this session starts (children inherit the environment), so the
# last test can prove that none is left behind.
os.environ["WORKSHOP_TEST_SESSION"] = f"{os.getpid()}"


@dataclass
class RunningLab:
    base: str  # http://127.0.0.1:<port>
    token: str


@contextmanager
def running_make_lab(log_dir: Path, env: dict[str, str] | None = None):
    """`make lab` on a free port with a token, as a learner starts it; stopped on exit."""
    from workshop.paths import ROOT
    from workshop.ports import free_port
    from workshop.processes import ProcessSpec, Supervisor

    port, token = free_port(), secrets.token_hex(8)
    base = f"http://127.0.0.1:{port}"
    with Supervisor() as supervisor:
        supervisor.start(
            ProcessSpec(
                name="make-lab",
                command=[
                    "make",
                    "-s",
                    "lab",
                    f"JUPYTER_PORT={port}",
                    f"JUPYTER_ARGS=--no-browser --ip=127.0.0.1 --IdentityProvider.token={token}",
                ],
                cwd=ROOT,
                env=env or {},
                log_path=log_dir / "jupyter.log",
                ready_url=f"{base}/api/status?token={token}",
                timeout=120,
            )
        )
        yield RunningLab(base, token)


@pytest.fixture
def make_lab():
    """running_make_lab(log_dir, env=None): a context manager giving the base URL and token."""
    return running_make_lab
