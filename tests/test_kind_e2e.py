"""Lab 05 part 2 end to end on a real kind cluster: create it, build and load the image,
deploy the solution, roll it out twice under load, and require zero failed requests.

Runs only where `docker info` and `kind version` answer; elsewhere every test is skipped
with the reason (see `pytest -ra`). The cluster is deleted at the end, also on failure.
"""

import json
import os
import shutil
import signal
import subprocess

import pytest

from workshop.paths import ROOT, venv_script

pytestmark = [pytest.mark.kind, pytest.mark.timeout(3600)]

WORKSHOP = [str(venv_script("workshop"))]


def missing() -> str | None:
    """What this machine lacks for the kind path (everything it lacks), or None."""
    problems = []
    for command in (["docker", "info", "--format", "{{.ServerVersion}}"], ["kind", "version"]):
        name = " ".join(command[:2])
        if not shutil.which(command[0]):
            problems.append(f"`{name}`: {command[0]} is not installed (not on PATH)")
            continue
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"`{name}` failed: {exc}")
            continue
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            problems.append(f"`{name}` failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return "; ".join(problems) or None


def workshop(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """Run `workshop ARGS` in a process group of its own; the whole group goes on a timeout."""
    process = subprocess.Popen(
        [*WORKSHOP, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"`workshop {' '.join(args)}` did not finish in {timeout:g} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")


@pytest.fixture(scope="module")
def kind_cluster():
    reason = missing()
    if reason:
        pytest.skip(f"needs docker and kind: {reason}")
    try:
        up = workshop("kind", "up", timeout=900)
        assert up.returncode == 0, up.stdout[-3000:]
        yield
    finally:
        down = workshop("kind", "down", timeout=300)
        assert down.returncode == 0, down.stdout[-3000:]


def test_a_rolling_update_on_kind_fails_no_request(kind_cluster, tmp_path):
    build = workshop("kind", "build", timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:]
    deploy = workshop("kind", "deploy", "--solution", timeout=900)
    assert deploy.returncode == 0, deploy.stdout[-3000:]

    timeline_file = tmp_path / "timeline.json"
    rollout = workshop("kind", "rollout", "--solution", "--rollouts", "2", "--json", str(timeline_file), timeout=1200)
    assert rollout.returncode == 0, rollout.stdout[-5000:]
    summary = json.loads(timeline_file.read_text())["summary"]
    assert summary["failed"] == 0, summary["failures_by_class"]
    assert len(summary["rollouts"]) == 2 and all(r["failed"] == 0 for r in summary["rollouts"])
    assert summary["requests"] >= 500 and all(r["requests"] >= 200 for r in summary["rollouts"]), summary
    events = json.loads(timeline_file.read_text())["events"]
    assert sum(e["event"] == "terminating" for e in events) == 6  # 3 replicas, twice
    assert "zero failed requests" in rollout.stdout and "Pod events" in rollout.stdout
