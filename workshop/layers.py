"""Which files a lab runs with.

Lab N runs on the reference solutions of labs < N plus lab N's own editable files,
taken from one of three variants:
  learner   labs/NN-slug/       the files as the learner has edited them
  solution  solutions/NN-slug/  the reference solution
  starter   starters/NN-slug/   the lab's files as shipped, whatever the learner changed or committed
Each layer is a folder put on PYTHONPATH (newest first), so cms imports the lab's
modules by plain name (`audit_sink`, `crm_token_store`, ...).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from workshop.curriculum import Lab, Variant, all_labs

VARIANTS = ("learner", "solution", "starter")


def starter_text(lab: Lab, name: str) -> str:
    return (lab.starter_path / name).read_text()


def materialize_starter(lab: Lab, into: Path | None = None) -> Path:
    """A copy of the lab's starter files in a folder of the caller's (removed by the caller):
    the pristine files stay untouched, whatever runs on the copy."""
    target = into or Path(tempfile.mkdtemp(prefix=f"starter-{lab.code}-"))
    for name in lab.edit:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lab.starter_path / name, destination)
    return target


def materialize_variant(lab: Lab, variant: Variant) -> Path:
    """A folder with the reference solution and a corpus variant's files laid over it."""
    target = Path(tempfile.mkdtemp(prefix=f"{variant.kind}-{lab.code}-{variant.id}-"))
    for name in lab.edit:
        override = lab.variant_path(variant) / name
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(override if override.is_file() else lab.solution_path / name, destination)
    return target


def lab_files_dir(lab: Lab, variant: str) -> Path:
    if variant == "learner":
        return lab.path
    if variant == "solution":
        return lab.solution_path
    if variant == "starter":
        return materialize_starter(lab)
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")


def layer_dirs(lab: Lab, files_dir: Path, earlier_files: dict[str, Path] | None = None) -> list[Path]:
    """Folders for PYTHONPATH, newest layer first: this lab's files, then earlier solutions.
    `earlier_files` puts another folder in place of an earlier lab's solution ({"01": folder}):
    how a curriculum test breaks an earlier guarantee to prove a regression check fails."""
    replaced = earlier_files or {}
    earlier = [replaced.get(other.code, other.solution_path) for other in all_labs() if other.number < lab.number]
    return [files_dir, *reversed(earlier)]


def settings_modules(lab: Lab) -> list[str]:
    """The settings modules of this lab and the earlier ones, oldest first (newest wins)."""
    return [module for other in all_labs() if other.number <= lab.number for module in other.settings]


def find_in_layers(layers: list[Path], name: str, default: Path | None = None) -> Path | None:
    """The newest layer's copy of a file (a Procfile, a uwsgi.ini), else `default`."""
    for folder in layers:
        if (folder / name).is_file():
            return folder / name
    return default
