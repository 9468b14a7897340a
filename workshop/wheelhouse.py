"""The offline kit: every wheel the locks need, for every laptop in the room, in one folder.

    python -m workshop.wheelhouse wheelhouse --platform linux-x86_64 --python 3.12

`pip download --platform ...` evaluates a requirement's environment markers against the
machine it runs on, not against the target: on Linux it skips `appnope ; sys_platform ==
'darwin'`, which a Mac needs. So this module evaluates the lock's markers for each target
itself (with `packaging`, as pip does), writes the target's pins with their hashes and no
markers, and lets pip download exactly those, wheels only. A pin without a wheel for a
target stops the run with the package's name.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from workshop.errors import WorkshopError
from workshop.paths import ROOT

# requirements-dev.lock holds every pin of requirements.lock and of the optional groups
# (kind, test): the kit serves `make venv`, `make test` and `workshop kind` alike.
LOCKS = (ROOT / "requirements-dev.lock", ROOT / "requirements-build.lock")
PYTHONS = ("3.11", "3.12", "3.13")
# Markers such as python_full_version < '3.11.3' split a minor version: a target gets every pin
# some patch release of its minor needs, so a laptop on 3.11.2 and one on 3.11.9 both install.
PATCH_RELEASES = range(0, 30)
# The oldest tags first: where a release has several wheels, pip takes the one most laptops run.
# Linux: glibc 2.28 or newer (RHEL 8, Debian 10, Ubuntu 20.04 and later); macOS 11 or newer.
MANYLINUX = ("manylinux1", "manylinux_2_5", "manylinux2010", "manylinux_2_12", "manylinux2014", "manylinux_2_17")
MANYLINUX += ("manylinux_2_24", "manylinux_2_26", "manylinux_2_27", "manylinux_2_28")
MACOS = ("macosx_11_0", "macosx_12_0", "macosx_13_0", "macosx_14_0", "macosx_15_0")


@dataclass(frozen=True)
class Target:
    name: str
    sys_platform: str
    platform_system: str
    machine: str
    pip_platforms: tuple[str, ...]

    def environment(self, python_full_version: str) -> dict[str, str]:
        """The marker variables of a CPython of this version on this platform."""
        return {
            "implementation_name": "cpython",
            "implementation_version": python_full_version,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": self.platform_system,
            "platform_version": "",
            "python_full_version": python_full_version,
            "python_version": ".".join(python_full_version.split(".")[:2]),
            "sys_platform": self.sys_platform,
        }


TARGETS = {
    target.name: target
    for target in (
        Target("linux-x86_64", "linux", "Linux", "x86_64", tuple(f"{tag}_x86_64" for tag in MANYLINUX)),
        Target("linux-aarch64", "linux", "Linux", "aarch64", tuple(f"{tag}_aarch64" for tag in MANYLINUX)),
        Target("macos-arm64", "darwin", "Darwin", "arm64", tuple(f"{tag}_arm64" for tag in MACOS)),
    )
}


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def line(self) -> str:
        """The pin as pip reads it in hash-checking mode, without its marker."""
        specifier = f"{self.requirement.name}{self.requirement.specifier}"
        return " ".join([specifier, *(f"--hash={digest}" for digest in self.hashes)])

    def needed_on(self, target: Target, python_full_version: str) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(target.environment(python_full_version))


class WheelhouseError(WorkshopError, RuntimeError):
    """A target cannot be served from wheels alone."""


def read_lock(path: Path) -> list[Pin]:
    """The pins of a pip requirements file with hashes (the format `uv pip compile` writes)."""
    logical = re.sub(r"\\\n", " ", path.read_text())
    pins = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        hashes = tuple(word.removeprefix("--hash=") for word in words if word.startswith("--hash="))
        try:
            requirement = Requirement(" ".join(word for word in words if not word.startswith("--hash=")))
        except InvalidRequirement as exc:
            raise WheelhouseError(f"{path.name}: cannot read {line[:80]!r}: {exc}") from exc
        if not hashes:
            raise WheelhouseError(f"{path.name}: {requirement.name} has no --hash; the lock must pin hashes")
        pins.append(Pin(requirement, hashes))
    return pins


def releases(target: Target, python: str, pins: list[Pin]) -> dict[str, list[Pin]]:
    """The pins each patch release of `python` needs on `target`, one entry per distinct set of pins,
    keyed by its oldest release (pip also checks each wheel's Requires-Python against it)."""
    result: dict[str, list[Pin]] = {}
    for patch in PATCH_RELEASES:
        version = f"{python}.{patch}"
        needed = [pin for pin in pins if pin.needed_on(target, version)]
        if needed not in result.values():
            result[version] = needed
    return result


@dataclass
class Report:
    target: str
    python: str
    wheels: list[Path]

    @property
    def megabytes(self) -> float:
        return sum(wheel.stat().st_size for wheel in self.wheels) / 1e6

    def __str__(self) -> str:
        return f"{self.target} python {self.python}: {len(self.wheels)} wheels, {self.megabytes:.1f} MB"


SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded) (?P<path>\S+\.whl)\s*$", re.MULTILINE)
NOT_FOUND = re.compile(r"No matching distribution found for (?P<name>\S+)")


def download(target: Target, python: str, pins: list[Pin], dest: Path) -> Report:
    needed: set[Pin] = set()
    wheels: set[Path] = set()
    for version, release_pins in releases(target, python, pins).items():
        needed |= set(release_pins)
        with tempfile.TemporaryDirectory(prefix="wheelhouse-") as scratch:
            requirements = Path(scratch) / "requirements.txt"
            requirements.write_text("".join(f"{pin.line}\n" for pin in release_pins))
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            command += ["--require-hashes", "--implementation", "cp", "--python-version", version]
            command += [argument for tag in target.pip_platforms for argument in ("--platform", tag)]
            command += ["--dest", str(dest), "-r", str(requirements)]
            result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            missing = NOT_FOUND.search(result.stdout + result.stderr)
            what = f"no wheel of {missing['name']}" if missing else "pip download failed"
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise WheelhouseError(f"{target.name} python {version}: {what}\n{tail}")
        wheels |= {Path(match["path"]).resolve() for match in SAVED.finditer(result.stdout)}
    if len(wheels) != len(needed):
        raise WheelhouseError(f"{target.name} python {python}: {len(needed)} pins but pip saved {len(wheels)} wheels")
    return Report(target.name, python, sorted(wheels))


def host_target() -> str:
    """The target of the machine this runs on, if the kit has one for it."""
    machine = platform.machine().lower()
    name = {
        ("linux", "x86_64"): "linux-x86_64",
        ("linux", "aarch64"): "linux-aarch64",
        ("darwin", "arm64"): "macos-arm64",
    }.get((sys.platform, machine))
    if name is None:
        raise WheelhouseError(f"no wheelhouse target for {sys.platform} {machine}; targets: {', '.join(TARGETS)}")
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workshop.wheelhouse", description="Download every wheel the locks need into one folder."
    )
    parser.add_argument("dest", type=Path, help="the wheelhouse folder")
    parser.add_argument("--platform", dest="platforms", action="append", choices=[*TARGETS, "host"])
    parser.add_argument("--python", dest="pythons", action="append", choices=PYTHONS)
    args = parser.parse_args(argv)
    try:
        platforms = [host_target() if name == "host" else name for name in args.platforms or TARGETS]
        pins = [pin for lock in LOCKS for pin in read_lock(lock)]
        args.dest.mkdir(parents=True, exist_ok=True)
        for name in dict.fromkeys(platforms):
            for python in dict.fromkeys(args.pythons or PYTHONS):
                print(download(TARGETS[name], python, pins, args.dest), flush=True)
    except WheelhouseError as exc:
        print(f"wheelhouse: {exc}", file=sys.stderr)
        return 1
    wheels = list(args.dest.glob("*.whl"))
    total = sum(wheel.stat().st_size for wheel in wheels) / 1e6
    print(f"{args.dest}: {len(wheels)} wheels, {total:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
