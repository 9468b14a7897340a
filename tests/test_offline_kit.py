"""The offline kit: `make wheelhouse`, then a fresh venv built from it with every package index out of
reach, and lab 01's curriculum check passing in it.

The test works on a copy of the repository as it is now: the files git tracks plus the untracked ones
it does not ignore, and `.git` (the starter files come from git HEAD, see workshop/layers.py). The
download needs the network; the wheelhouse is kept in pytest's cache, so a later run only checks it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from workshop import wheelhouse
from workshop.paths import ROOT

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# pip in the offline install: no configuration file, no index, and one place to find wheels
NO_INDEX_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}


def names_needed(target: str, python: str) -> dict[str, set[str]]:
    pins = [pin for lock in wheelhouse.LOCKS for pin in wheelhouse.read_lock(lock)]
    releases = wheelhouse.releases(wheelhouse.TARGETS[target], python, pins)
    needed: dict[str, set[str]] = {}
    for release_pins in releases.values():
        for pin in release_pins:
            needed.setdefault(pin.requirement.name, set()).add(str(pin.requirement.specifier))
    return needed


def test_each_target_gets_the_pins_its_own_markers_select():
    """pip download would judge the markers by this machine; the kit judges them by the target."""
    linux, mac = names_needed("linux-x86_64", "3.11"), names_needed("macos-arm64", "3.12")
    assert "pywin32" not in linux and "pywin32" not in mac and "colorama" not in mac
    assert "appnope" in mac and "appnope" not in linux
    assert {"pip", "setuptools"} <= linux.keys() & mac.keys()
    # 3.11.0 to 3.11.4 need the old soupsieve, 3.11.5 and later the new one: the kit holds both
    assert len(linux["soupsieve"]) == 2 and len(mac["soupsieve"]) == 1, (linux["soupsieve"], mac["soupsieve"])
    assert linux["numpy"] != mac["numpy"], "numpy is pinned apart for Python 3.11 and 3.12"


def test_a_package_without_a_wheel_stops_the_kit_with_its_name(tmp_path, monkeypatch):
    sdist = tmp_path / "links" / "sdistonly-1.0.tar.gz"
    sdist.parent.mkdir()
    sdist.write_bytes(b"not a wheel")
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    for key, value in (NO_INDEX_ENV | {"PIP_FIND_LINKS": str(sdist.parent)}).items():
        monkeypatch.setenv(key, value)
    pin = wheelhouse.Pin(Requirement("sdistonly==1.0"), (f"sha256:{digest}",))
    with pytest.raises(wheelhouse.WheelhouseError, match="linux-aarch64 python 3.12.0: no wheel of sdistonly==1.0"):
        wheelhouse.download(wheelhouse.TARGETS["linux-aarch64"], "3.12", [pin], tmp_path / "kit")
    assert not (tmp_path / "kit").exists() or not any((tmp_path / "kit").iterdir())


def copy_repository(into):
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    shutil.copytree(ROOT / ".git", into / ".git")


def run(command, cwd, env, timeout):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{output[-4000:]}"
    return output


@pytest.mark.kit(units=2)  # pip builds a wheelhouse, then a venv from it: most of a core for a minute
@pytest.mark.timeout(2400)
def test_a_venv_from_the_wheelhouse_alone_verifies_lab_01(tmp_path, request):
    if any((ROOT / "wheelhouse").glob("*.whl")):
        pytest.skip("this copy installs offline (wheelhouse/ holds wheels); building a kit needs the network")
    kit = request.config.cache.mkdir("offline-kit-wheelhouse")
    copy = tmp_path / "repository"
    copy_repository(copy)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "WORKSHOP_ROOT"))}
    env.pop("VIRTUAL_ENV", None)

    # `make wheelhouse` runs in a venv from the package index: this test's own, when `make` built
    # it (a second one would prove `make venv` again, as every `make test` on a fresh clone does)
    online_venv = [f"VENV={sys.prefix}"] if (Path(sys.prefix) / ".installed").exists() else []
    try:
        # online: the wheels of this machine's platform and Python
        output = run(
            ["make", "-s", "wheelhouse", f"WHEELHOUSE={kit}", f"WHEEL_PLATFORMS={wheelhouse.host_target()}"]
            + [f"WHEEL_PYTHONS={PYTHON}", f"PYTHON={sys.executable}", *online_venv],
            cwd=copy,
            env=env,
            timeout=1800,
        )
        assert f"{wheelhouse.host_target()} python {PYTHON}: " in output, output[-2000:]

        # offline: a fresh venv, every install from the wheelhouse (the Makefile sees it holds wheels)
        shutil.rmtree(copy / ".venv", ignore_errors=True)
        offline_env = env | NO_INDEX_ENV | {"PIP_FIND_LINKS": str(kit)}
        output = run(["make", "venv", f"WHEELHOUSE={kit}", f"PYTHON={sys.executable}"], copy, offline_env, 1200)
        assert f"--no-index --find-links {kit}" in output, output[-2000:]
        pip = [str(copy / ".venv/bin/python"), "-m", "pip"]
        assert run([*pip, "--version"], copy, offline_env, 120).startswith("pip 25.3 ")
        shown = run([*pip, "show", "scaling-workshop"], copy, offline_env, 120)
        assert f"Editable project location: {copy}" in shown, shown

        # lab 01's curriculum check, with the copy's own harness (its corpus is proven elsewhere)
        output = run([str(copy / ".venv/bin/workshop"), "verify", "01", "--no-corpus"], copy, offline_env, 1200)
        assert "curriculum verified" in output and "NOT verified" not in output, output[-4000:]

        # lab 05 part 2's optional group, installed on first use, from the kit too
        ensure = "from workshop.extras import ensure, missing; ensure('kind', print); print('missing', missing('kind'))"
        output = run([str(copy / ".venv/bin/python"), "-c", ensure], copy, offline_env, 600)
        assert "the kind group is installed" in output and "missing []" in output, output[-2000:]
    finally:
        shutil.rmtree(copy, ignore_errors=True)
