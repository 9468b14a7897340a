"""The `workshop` command as a learner uses it, run as a real subprocess."""

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psutil
import pytest
from process_support import has_ended

from workshop.curriculum import all_labs
from workshop.paths import ROOT
from workshop.processes import processes_whose_environment
from workshop.waiting import wait_until

WORKSHOP = [sys.executable, "-m", "workshop.cli"]


def workshop(*args, env=None, input=None, timeout=120):
    from cli_support import run_workshop

    return run_workshop(*args, env=env, input=input, timeout=timeout)


@pytest.mark.parametrize(
    "args",
    [["check", "9"], ["check", "abc"], ["hint", "9"], ["start", "7"], ["reset", "x"], ["verify", "6"], ["watch", "9"]],
)
def test_an_unknown_lab_gets_a_clear_message_and_exit_2(args):
    result = workshop(*args)
    assert result.returncode == 2, result
    assert "Available labs: " + ", ".join(f"{lab.code} ({lab.slug})" for lab in all_labs()) in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_hints_come_one_at_a_time(tmp_path):
    env = {"WORKSHOP_STATE_DIR": str(tmp_path)}
    first = workshop("hint", "01", env=env)
    second = workshop("hint", "01", env=env)
    assert "step audit-to-db" in first.stdout and "Hint 1 of 6" in first.stdout
    assert "Hint 2 of 6" in second.stdout
    other = workshop("hint", "01", "--step", "crm-token", env=env)
    assert "Hint 1 of 5" in other.stdout


def test_list_shows_every_step():
    result = workshop("list")
    assert result.returncode == 0
    for step in ("observe", "audit-to-db", "crm-token", "wipe-a-node"):
        assert step in result.stdout


def test_list_shows_progress_regressions_and_labs_done(tmp_path):
    from workshop import progress
    from workshop.checking import CheckRun
    from workshop.curriculum import find_lab

    lab01, lab04 = find_lab("01"), find_lab("04")
    path = tmp_path / "progress.json"
    progress.record_results(lab01, CheckRun(0, {s.check_name: "passed" for s in lab01.checked_steps}), path)
    regression = lab04.regressions[0]
    progress.record_results(lab04, CheckRun(1, {regression.check_name: "failed"}), path)
    result = subprocess.run(
        [*WORKSHOP, "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "WORKSHOP_STATE_DIR": str(tmp_path), "COLUMNS": "250"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    lab_line = next(line for line in lines if "Stateless nodes" in line)
    assert "done" in lab_line
    assert all("passed" in next(line for line in lines if f". {s.id} " in line) for s in lab01.checked_steps)
    regression_line = next(line for line in lines if "lab 03's guarantee" in line)
    assert "regression" in regression_line and "failed" in regression_line
    assert "done" not in next(line for line in lines if "Sessions that" in line)


def test_watch_stops_cleanly_on_ctrl_c(tmp_path):
    process = subprocess.Popen(
        [*WORKSHOP, "watch", "02"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "WORKSHOP_STATE_DIR": str(tmp_path)},
    )
    try:
        output = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if line.startswith("lab 02 ") or not line:  # the progress line: the watcher is running
                break
        assert "Watching lab 02" in "".join(output), "".join(output)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    rest = process.stdout.read()
    assert returncode == 0, "".join(output) + rest
    assert "stopped watching after 0 check run(s)" in rest and "Traceback" not in rest
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


@pytest.fixture
def workshop_copy(tmp_path):
    """A git clone of this repository's curriculum, so solve/reset edit a copy."""
    root = tmp_path / "repo"
    for folder in ("labs", "starters", "solutions"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Procfile", root / "Procfile")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "starter"], check=True)
    return {"WORKSHOP_ROOT": str(root), "WORKSHOP_STATE_DIR": str(tmp_path / "state")}


def test_solve_then_reset_back_up_the_learners_files(workshop_copy):
    lab_dir = Path(workshop_copy["WORKSHOP_ROOT"]) / "labs" / "01-stateful"
    solution_dir = Path(workshop_copy["WORKSHOP_ROOT"]) / "solutions" / "01-stateful"
    (lab_dir / "audit_sink.py").write_text((lab_dir / "audit_sink.py").read_text() + "# my work in progress\n")

    declined = workshop("solve", "01", env=workshop_copy, input="n\n")
    assert declined.returncode == 1 and "Nothing changed" in declined.stdout
    assert "my work in progress" in (lab_dir / "audit_sink.py").read_text()
    assert "+class AuditSink(BaseAuditSink):" in declined.stdout  # the diff was shown

    solved = workshop("solve", "01", "--yes", env=workshop_copy)
    assert solved.returncode == 0, solved.stderr
    assert (lab_dir / "audit_sink.py").read_text() == (solution_dir / "audit_sink.py").read_text()
    backups = list((Path(workshop_copy["WORKSHOP_STATE_DIR"]) / "backups").glob("01-stateful-*"))
    assert len(backups) == 1 and "my work in progress" in (backups[0] / "audit_sink.py").read_text()

    time.sleep(1.1)  # backups are named by the second
    reset = workshop("reset", "01", "--yes", env=workshop_copy)
    assert reset.returncode == 0, reset.stderr
    assert "TODO" in (lab_dir / "audit_sink.py").read_text()
    assert "my work in progress" not in (lab_dir / "audit_sink.py").read_text()
    assert len(list((Path(workshop_copy["WORKSHOP_STATE_DIR"]) / "backups").glob("01-stateful-*"))) == 2

    again = workshop("reset", "01", "--yes", env=workshop_copy)
    assert "nothing to do" in again.stdout


@pytest.mark.cluster
def test_start_stops_every_process_on_ctrl_c():
    """How long the stop takes is a benchmark (docs/benchmarks.md), not an assertion."""
    process = subprocess.Popen(
        [*WORKSHOP, "start", "01", "--nodes", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "Press Ctrl-C" in line or not line:
                break
        assert "Press Ctrl-C" in "".join(output), "".join(output)
        started = psutil.Process(process.pid).children(recursive=True)
        assert len(started) >= 2 * 4 + 3  # 2 uWSGI masters with 3 workers, nginx, valkey, crm

        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # a zombie has ended: killed with its group, a uWSGI master's workers are left for the
    # system's init to reap (their master died with them), as after any kill of a group
    running = lambda: [p for p in started if not has_ended(p)]  # noqa: E731
    wait_until(lambda: not running(), "every process's end", timeout=10, raise_on_timeout=False)
    assert not running(), f"left behind: {[p.pid for p in running()]}"
    assert "stopped every process" in process.stdout.read()


def test_a_malformed_lab_toml_gets_a_clear_message(workshop_copy):
    toml = Path(workshop_copy["WORKSHOP_ROOT"]) / "labs" / "01-stateful" / "lab.toml"
    toml.write_text(toml.read_text().replace('title = "Stateless', "title = Stateless", 1))
    for args in (["list"], ["check", "01"], ["hint", "01"]):
        result = workshop(*args, env=workshop_copy)
        assert result.returncode == 2, result
        assert "lab.toml is not valid TOML" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def _session_processes(marker: str) -> list[psutil.Process]:
    return processes_whose_environment("WORKSHOP_CTRL_C_TEST", marker.__eq__)


def _runs_with_a_process(state_dir: Path) -> set[Path]:
    return {log.parent.parent for log in state_dir.glob("runs/*/logs/*.log")}


@pytest.mark.cluster
@pytest.mark.parametrize(("lab", "clusters"), [("01", 1), ("03", 3)])  # 03: a pytest per check module, side by side
def test_ctrl_c_during_a_check_stops_the_cluster(tmp_path, lab, clusters):
    """Ctrl-C reaches the CLI and pytest alike (one process group): nothing may survive."""
    marker = f"ctrl-c-{os.getpid()}-{lab}"
    env = {**os.environ, "WORKSHOP_STATE_DIR": str(tmp_path), "WORKSHOP_CTRL_C_TEST": marker}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as said:
        process = subprocess.Popen(
            [*WORKSHOP, "check", lab, "--solution"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=said,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob("runs/*/logs/lb.log")):
            time.sleep(0.2)
        assert list(tmp_path.glob("runs/*/logs/lb.log")), "the check's cluster never started"
        while time.monotonic() < deadline and len(_runs_with_a_process(tmp_path)) < clusters:
            time.sleep(0.2)
        assert len(_runs_with_a_process(tmp_path)) == clusters
        while time.monotonic() < deadline and len(_session_processes(marker)) <= 8:
            time.sleep(0.2)  # the nodes start side by side with the load balancer
        assert len(_session_processes(marker)) > 8
        os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    leftovers = [p for p in _session_processes(marker) if not has_ended(p)]
    described = [" ".join(p.cmdline())[:100] for p in leftovers]
    for leftover in leftovers:  # a failing run must not leave them behind either
        leftover.kill()
    assert not leftovers, f"{described}; the check said: {stderr.read_text()[-3000:]}"
    if "had not stopped" in stderr.read_text():  # stopped by the CLI's last resort: show why it had to
        warnings.warn(f"a check run needed killing after Ctrl-C: {stderr.read_text()}", stacklevel=1)


def test_a_typo_in_the_learners_file_is_one_error_and_no_cluster_starts(workshop_copy):
    sink = Path(workshop_copy["WORKSHOP_ROOT"]) / "labs" / "01-stateful" / "audit_sink.py"
    line = len(sink.read_text().splitlines()) + 2
    sink.write_text(sink.read_text() + "\nthis is not python\n")
    result = workshop("check", "01", "--step", "audit-to-db", env=workshop_copy)
    assert result.returncode == 1
    assert f"audit_sink.py, line {line}: NameError: name 'this' is not defined" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and result.stderr.count("NameError") == 1
    assert not (Path(workshop_copy["WORKSHOP_STATE_DIR"]) / "runs").exists()  # no cluster was started

    hint = workshop("hint", "01", env=workshop_copy)  # no stale hint from an earlier failure
    assert "Your last check did not run: audit_sink.py, line" in hint.stdout and "Hint " not in hint.stdout


def test_a_syntax_error_is_named_by_file_and_line(workshop_copy):
    store = Path(workshop_copy["WORKSHOP_ROOT"]) / "labs" / "01-stateful" / "crm_token_store.py"
    store.write_text(store.read_text().replace("class TokenStore(FileTokenStore):", "class TokenStore(FileTokenStore)"))
    result = workshop("check", "01", env=workshop_copy)
    assert result.returncode == 1 and "crm_token_store.py, line " in result.stderr and "expected ':'" in result.stderr
    assert not (Path(workshop_copy["WORKSHOP_STATE_DIR"]) / "runs").exists()


def test_committed_work_does_not_change_the_starter(workshop_copy):
    """A learner commits a solved lab: reset still brings the starter back (with a backup),
    and the curriculum's lint still finds the starter's TODOs."""
    root = Path(workshop_copy["WORKSHOP_ROOT"])
    lab_dir, solution_dir = root / "labs" / "01-stateful", root / "solutions" / "01-stateful"
    for name in ("audit_sink.py", "crm_token_store.py"):
        shutil.copy(solution_dir / name, lab_dir / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "commit", "-qam", "my solution"], check=True)

    reset = workshop("reset", "01", "--yes", env=workshop_copy)
    assert reset.returncode == 0, reset.stderr
    assert "TODO" in (lab_dir / "audit_sink.py").read_text()
    assert (lab_dir / "audit_sink.py").read_text() == (root / "starters" / "01-stateful" / "audit_sink.py").read_text()
    backups = list((Path(workshop_copy["WORKSHOP_STATE_DIR"]) / "backups").glob("01-stateful-*"))
    assert (
        len(backups) == 1 and (backups[0] / "audit_sink.py").read_text() == (solution_dir / "audit_sink.py").read_text()
    )
    lint = subprocess.run(
        [
            sys.executable,
            "-c",
            "from workshop.curriculum import find_lab; from workshop.curriculum_lint import lint; "
            "print(lint(find_lab('01')))",
        ],
        env={**os.environ, **workshop_copy},
        capture_output=True,
        text=True,
    )
    assert lint.stdout.strip() == "[]", lint


def uwsgi_started(processes: list[psutil.Process]) -> bool:
    try:
        return any("pyuwsgi" in " ".join(process.cmdline()) for process in processes)
    except psutil.Error:
        return False


@pytest.mark.cluster
@pytest.mark.parametrize("moment", ["while its cluster starts", "once its cluster runs"])
def test_a_check_run_stopped_with_sigterm_leaves_no_process(tmp_path, moment):
    """A lab check's pytest that gets SIGTERM (a CI job cancelled, a terminal closed) tears its
    cluster down as after Ctrl-C: Python's default would end it at once, every node left running.
    While the cluster starts, the stop must not first wait for every process to be ready."""
    lab = ROOT / "labs" / "01-stateful"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(lab / "checks")]
        + ["--lab-files", str(ROOT / "solutions" / "01-stateful")],
        cwd=ROOT,
        stdout=(log := open(tmp_path / "pytest.log", "w")),
        stderr=subprocess.STDOUT,
        env={**os.environ, "WORKSHOP_STATE_DIR": str(tmp_path)},
    )
    log.close()
    # the first uWSGI process: the nodes are starting; the run description: start() is done
    reached = {
        "while its cluster starts": uwsgi_started,
        "once its cluster runs": lambda _: any((tmp_path / "running").glob("*.json")),
    }[moment]
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            children = psutil.Process(process.pid).children(recursive=True)
            seen.update((child.pid, child) for child in children)
            if reached(children):
                break
            time.sleep(0.05)
        assert process.poll() is None and reached(children), (
            f"the check never got {moment}; its output:\n{(tmp_path / 'pytest.log').read_text()[-3000:]}"
        )
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)  # a start's readiness timeouts are longer than this
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after SIGTERM; its output:\n{(tmp_path / 'pytest.log').read_text()}")
    finally:
        if process.poll() is None:
            process.kill()
    gone, alive = psutil.wait_procs(list(seen.values()), timeout=10)
    assert not alive, [p.info for p in alive] if alive else None
