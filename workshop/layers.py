"""Which files a lab runs with.

Lab N runs on the reference solutions of labs < N plus lab N's own editable files,
taken from one of three variants:
  learner   labs/NN-slug/       the files as the learner has edited them
  solution  solutions/NN-slug/  the reference solution
  starter   the lab's files as committed (git HEAD), whatever the learner changed
Each layer is a folder put on PYTHONPATH (newest first), so cms imports the lab's
modules by plain name (`audit_sink`, `crm_token_store`, ...).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from workshop.curriculum import Lab, all_labs
from workshop.paths import ROOT

VARIANTS = ("learner", "solution", "starter")


class StarterUnavailable(RuntimeError):
    """The pristine starter files need the git history of the workshop repository."""


def starter_text(lab: Lab, name: str) -> str:
    relative = (lab.path / name).relative_to(ROOT).as_posix()
    try:
        result = subprocess.run(
            ["git", "show", f"HEAD:{relative}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StarterUnavailable(
            f"cannot read the committed starter of {relative} from git: {exc}. "
            "Starter files come from the repository's git history (clone it with git)."
        ) from exc
    return result.stdout


def materialize_starter(lab: Lab, into: Path | None = None) -> Path:
    """Write the committed starter files of `lab` into a folder and return it."""
    target = into or Path(tempfile.mkdtemp(prefix=f"starter-{lab.code}-"))
    for name in lab.edit:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(starter_text(lab, name))
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
