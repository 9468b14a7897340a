"""`workshop watch`: a save of an edit file triggers exactly one check cycle, saves in one
burst or during a run are coalesced, other files trigger nothing, and a stop ends it.

The runner is a stand-in (no cluster): it counts its calls and answers like run_checks."""

import io
import shutil
import threading
import time
from pathlib import Path

import pytest
import watchfiles
from rich.console import Console

from workshop import progress
from workshop.checking import CheckRun
from workshop.curriculum import find_lab
from workshop.watch import Watcher

LAB = find_lab("01")  # edit = audit_sink.py, crm_token_store.py
TIMEOUT = 60  # generous: counting, not timing


class Runner:
    """Answers like run_checks: the current step fails naming hint 2 (index 1) until `passing`."""

    def __init__(self, passing=False, during_first_run=None):
        self.calls: list[list[str] | None] = []
        self.passing = passing
        self.during_first_run = during_first_run
        self.called = threading.Event()

    def __call__(self, lab, files_dir, select):
        self.calls.append(select)
        self.called.set()
        if len(self.calls) == 1 and self.during_first_run:
            self.during_first_run()
        steps = [s for s in lab.checked_steps if select is None or s.check in select]
        if self.passing:
            return CheckRun(0, {s.check_name: "passed" for s in steps})
        first = steps[0]
        named = {"lab": lab.code, "step": first.id, "hint": 1, "seen": "3 events missing from node-2's report"}
        return CheckRun(1, {s.check_name: "failed" for s in steps}, {first.check_name: named})


def change(path: Path):
    return (watchfiles.Change.modified, str(path))


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "lab"
    folder.mkdir()
    for name in LAB.edit:
        shutil.copy(LAB.path / name, folder / name)
    return folder


def watcher_for(files, runner, batches=None, tmp_path=None, **options):
    output = io.StringIO()
    watcher = Watcher(
        LAB,
        files,
        runner=runner,
        console=Console(file=output, width=200),
        changes=batches,
        progress_path=(tmp_path or files.parent) / "progress.json",
        **options,
    )
    return watcher, output


# -- the loop, with batches of changes handed in -----------------------------------------


def test_one_save_runs_the_current_steps_check_once(files):
    runner = Runner()
    watcher, output = watcher_for(files, runner, batches=[{change(files / "audit_sink.py")}])
    watcher.run()
    assert watcher.runs == 1 and runner.calls == [[LAB.step("audit-to-db").check]]
    text = output.getvalue()
    assert "saved audit_sink.py" in text
    assert "the last check saw: 3 events missing from node-2's report" in text
    assert "hint 2 of 6 (lab 01, step audit-to-db) fits that" in text
    assert "More hints: workshop hint 01" in text
    data = progress.load(files.parent / "progress.json")
    assert progress.step_status(data, LAB, "audit-to-db") == "failed"
    # the hint was shown: `workshop hint` walks on to the next one
    assert progress.next_hint(LAB, "audit-to-db", files.parent / "progress.json").number == 3


def test_three_quick_saves_in_one_batch_run_once(files):
    runner = Runner()
    batch = {change(files / "audit_sink.py"), change(files / "crm_token_store.py"), change(files / "audit_sink.py")}
    watcher, _ = watcher_for(files, runner, batches=[batch])
    watcher.run()
    assert watcher.runs == 1 and len(runner.calls) == 1


def test_a_save_of_another_file_runs_nothing(files):
    runner = Runner()
    (files / "notes.txt").write_text("mine")
    batches = [{change(files / "notes.txt")}, {change(files.parent / "audit_sink.py")}]
    watcher, _ = watcher_for(files, runner, batches=batches)
    watcher.run()
    assert watcher.runs == 0 and runner.calls == []


def test_when_the_step_passes_the_labs_other_checks_run_too(files):
    runner = Runner(passing=True)
    watcher, output = watcher_for(files, runner, batches=[{change(files / "audit_sink.py")}])
    watcher.run()
    steps = [step.check for step in LAB.checked_steps]
    assert runner.calls == [steps[:1], steps[1:]]  # the step, then the others
    assert "lab 01 3/3" in output.getvalue() and "all checks passed" in output.getvalue()


def test_once_every_step_passed_a_save_runs_every_check(files):
    runner = Runner(passing=True)
    batches = [{change(files / "audit_sink.py")}, {change(files / "crm_token_store.py")}]
    watcher, _ = watcher_for(files, runner, batches=batches)
    watcher.run()
    steps = [step.check for step in LAB.checked_steps]
    assert runner.calls == [steps[:1], steps[1:], None]


def test_a_set_stop_event_ends_the_loop_before_the_next_batch(files):
    runner = Runner()
    stop = threading.Event()
    stop.set()
    watcher, _ = watcher_for(files, runner, batches=[{change(files / "audit_sink.py")}], stop_event=stop)
    watcher.run()
    assert watcher.runs == 0


# -- real files, watched by watchfiles, the watcher in a thread ------------------------------


class Running:
    """A watcher in a thread; `live()` saves a file that is not watched until the watcher
    has noticed a change, so the test's saves cannot happen before it watches."""

    def __init__(self, files, runner, tmp_path):
        self.files = files
        self.stop = threading.Event()
        self.watcher, self.output = watcher_for(files, runner, stop_event=self.stop, tmp_path=tmp_path)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        probe = self.files / "probe.txt"
        deadline = time.monotonic() + TIMEOUT
        while not self.watcher.noticed and time.monotonic() < deadline:
            probe.write_text(str(time.monotonic()))
            time.sleep(0.2)
        assert self.watcher.noticed, "the watcher never noticed a change"
        return self

    def settle(self):
        """Wait past the debounce, so a run that a save would cause has started."""
        time.sleep(3 * self.watcher.debounce_ms / 1000 + 1)

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the watcher did not stop"


def wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(), what


def test_real_saves_one_run_each_and_none_for_other_files(files, tmp_path):
    runner = Runner()
    with Running(files, runner, tmp_path) as running:
        running.settle()
        assert running.watcher.runs == 0  # the probe file is not an edit file

        (files / "audit_sink.py").write_text("# saved once\n")
        wait_for(lambda: running.watcher.runs == 1, "a save did not trigger a run")
        running.settle()
        assert running.watcher.runs == 1 and len(runner.calls) == 1

        for number in range(3):  # three quick saves
            (files / "crm_token_store.py").write_text(f"# save {number}\n")
        wait_for(lambda: running.watcher.runs == 2, "three saves did not trigger a run")
        running.settle()
    assert running.watcher.runs == 2 and len(runner.calls) == 2


def test_saves_during_a_run_make_exactly_one_run_after_it(files, tmp_path):
    release = threading.Event()

    def save_twice_while_running():
        (files / "audit_sink.py").write_text("# saved during the run\n")
        (files / "crm_token_store.py").write_text("# this one too\n")
        release.wait(TIMEOUT)  # the run goes on until the test has seen both saves land

    runner = Runner(during_first_run=save_twice_while_running)
    with Running(files, runner, tmp_path) as running:
        (files / "audit_sink.py").write_text("# first save\n")
        wait_for(runner.called.is_set, "the first save did not trigger a run")
        time.sleep(3 * running.watcher.debounce_ms / 1000 + 1)  # the saves are seen while the run lasts
        release.set()
        wait_for(lambda: running.watcher.runs == 2, "the saves during the run did not trigger one run after it")
        running.settle()
    assert running.watcher.runs == 2 and len(runner.calls) == 2


def test_a_failed_regression_check_is_said_plainly_with_the_earlier_labs_hint(tmp_path):
    lab = find_lab("04")
    regression = lab.regressions[0]
    path = tmp_path / "progress.json"
    progress.record_results(lab, CheckRun(0, {s.check_name: "passed" for s in lab.checked_steps}), path)
    named = {"lab": "03", "step": "no-lost-tasks", "hint": 1, "seen": "the task ended FAILURE"}

    def runner(lab, files_dir, select):
        runner.calls.append(select)
        outcomes = {s.check_name: "passed" for s in lab.checked_steps} | {regression.check_name: "failed"}
        return CheckRun(1, outcomes, {regression.check_name: named})

    runner.calls = []
    output = io.StringIO()
    (tmp_path / "Procfile").write_text("")
    watcher = Watcher(
        lab,
        tmp_path,
        runner=runner,
        console=Console(file=output, width=300),
        changes=[{change(tmp_path / "Procfile")}],
        progress_path=path,
    )
    watcher.run()
    assert runner.calls == [None]  # every step passed: every check runs
    text = output.getvalue()
    assert "✗ regression 03:no-lost-tasks" in text
    assert "Lab 03's guarantee 'a pool child killed mid-task loses no task' does not hold in lab 04's cluster." in text
    hints = len(find_lab("03").step("no-lost-tasks").all_hints)
    assert f"hint 2 of {hints} (lab 03, step no-lost-tasks) fits that" in text
