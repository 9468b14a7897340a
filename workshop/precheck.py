"""Errors before clusters: a lab file that does not compile, parse or import gets one
compact error (file, line, message) in about a second, before any process starts.

Python files are compiled, then imported the way cms imports them (Django set up, the
lab's layers on the path) in a short-lived interpreter; YAML manifests and the Procfile
are parsed. Anything else is left to the checks.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from workshop.curriculum import Lab
from workshop.errors import WorkshopError
from workshop.layers import layer_dirs, settings_modules
from workshop.paths import PYTHON, ROOT
from workshop.procfile import ProcfileError, read_procfile

# Runs in the short-lived interpreter: set Django up, import each module, and print the
# innermost frame that belongs to the lab's files (where the learner's mistake is).
_IMPORT_PROBE = """
import importlib, sys, traceback
files_dir = sys.argv[1]
try:
    import django
    django.setup()
    for module in sys.argv[2:]:
        importlib.import_module(module)
except BaseException as exc:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(files_dir)]
    where = f"{frames[-1].filename[len(files_dir) + 1:]}, line {frames[-1].lineno}: " if frames else ""
    print(f"PRECHECK {where}{type(exc).__name__}: {exc}")
    sys.exit(1)
"""


class LabFileError(WorkshopError):
    """One lab file that cannot run; its text is file, line and message, on one line."""


def precheck_files(lab: Lab, files_dir: Path) -> list[str]:
    """In this process, in milliseconds: every lab file is there, compiles or parses (else
    LabFileError, for the first that does not). Returns the lab's Python modules, for
    precheck_imports, which run_checks calls before or beside the checks' pytest."""
    modules = []
    for name in lab.edit:
        path = files_dir / name
        if not path.is_file():
            raise LabFileError(f"{name}: the file is missing from {files_dir}")
        text = path.read_text(errors="replace")
        if name.endswith(".py"):
            try:
                compile(text, name, "exec")
            except SyntaxError as exc:
                raise LabFileError(f"{name}, line {exc.lineno}: {exc.msg}") from None
            modules.append(name.removesuffix(".py").replace("/", "."))
        elif name.endswith((".yaml", ".yml")):
            try:
                list(yaml.safe_load_all(text))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = f", line {mark.line + 1}" if mark else ""
                raise LabFileError(f"{name}{line}: {getattr(exc, 'problem', None) or exc}") from None
        elif Path(name).name == "Procfile":
            try:
                read_procfile(path)
            except ProcfileError as exc:
                raise LabFileError(f"{name}: {exc}") from None
    return modules


def precheck_imports(
    lab: Lab, files_dir: Path, modules: list[str], earlier_files: dict[str, Path] | None = None
) -> None:
    """The modules import the way cms imports them (about a second: Django is set up)."""
    if not modules:
        return
    layers = layer_dirs(lab, files_dir, earlier_files)
    with tempfile.TemporaryDirectory(prefix="workshop-precheck-") as scratch:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "cms.settings",
            "PYTHONPATH": os.pathsep.join(str(p) for p in [*layers, ROOT]),
            "CMS_SETTINGS_LAYERS": ",".join(settings_modules(lab)),
            "CMS_DATA_DIR": scratch,
            "DATABASE_URL": f"sqlite:///{scratch}/precheck.sqlite3",
            # what every process of a cluster finds in its environment (nothing connects here)
            "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:1/0",
            "CMS_NODE_NAME": "precheck",
            "CMS_NODE_DIR": scratch,
        }
        result = subprocess.run(
            [str(PYTHON), "-c", _IMPORT_PROBE, str(files_dir.resolve()), *modules],
            env=env,
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=60,
        )
    if result.returncode != 0:
        lines = [line for line in result.stdout.splitlines() if line.startswith("PRECHECK ")]
        message = lines[-1].removeprefix("PRECHECK ") if lines else (result.stderr.strip().splitlines() or ["?"])[-1]
        raise LabFileError(message)
