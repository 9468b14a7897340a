"""Cached bytecode for every Python the harness starts.

A check starts a dozen Pythons (uWSGI masters, Celery workers and beats, manage.py, its
own pytest), and the test suite a few thousand; each imports Django and Celery. Without
cached bytecode every one of them compiles those packages from source again: about a
second of CPU each, as much as the rest of its start. PYTHONDONTWRITEBYTECODE=1, which
many container images and CI machines set, forbids the cache; `make venv` installs with
--no-compile, so there is none to read either. Where it is set, the harness keeps the
wish (nothing written beside the sources: no __pycache__ folders in the lab files or the
repository) and caches bytecode in one folder of the virtualenv instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PYCACHE_DIR = Path(sys.prefix) / "pycache"  # the virtualenv's: `make clean` removes it with the rest


def cache_bytecode() -> None:
    """Let this process and every process it starts cache their bytecode, in PYCACHE_DIR
    when PYTHONDONTWRITEBYTECODE asked for no cache beside the sources."""
    if not os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        return
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE_DIR))
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]
    sys.dont_write_bytecode = False
