"""The code follows one style: ruff's lint rules and formatter (settings in pyproject.toml)."""

import subprocess
import sys

from workshop.paths import ROOT

SOURCES = ["cms", "workshop", "tests", "labs", "solutions", "notebooks"]


def test_ruff_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *SOURCES], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_ruff_format_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *SOURCES], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
