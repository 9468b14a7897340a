"""Hints chosen by what failed: a failed check names the hint that fits what it saw,
the name travels (report -> results JSON -> progress), `workshop hint` shows that hint
first, and the curriculum lint catches a check naming a hint that does not exist."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workshop import progress
from workshop.checking import CheckRun
from workshop.curriculum import all_labs, find_lab, load_lab
from workshop.curriculum_lint import hint_references, lint
from workshop.paths import LABS_DIR, ROOT

WORKSHOP = [sys.executable, "-m", "workshop.cli"]


def workshop(*args, state_dir):
    from cli_support import run_workshop

    return run_workshop(*args, env={"WORKSHOP_STATE_DIR": str(state_dir)})


def failed_run(lab, step_id, hint, seen="2 of 4 reports lacked events"):
    step = lab.step(step_id)
    return CheckRun(
        1,
        {step.check_name: "failed"},
        {step.check_name: {"lab": lab.code, "step": step_id, "hint": hint, "seen": seen}},
    )


def test_the_hint_a_failure_named_comes_first_then_the_next_ones(tmp_path):
    lab = find_lab("01")
    step = lab.step("audit-to-db")
    total = len(step.all_hints)
    progress.record_results(lab, failed_run(lab, "audit-to-db", hint=2), tmp_path / "progress.json")

    first = workshop("hint", "01", state_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"The last check saw: 2 of 4 reports lacked events; hint 3 of {total} fits that." in first.stdout
    assert f"Hint 3 of {total}: " + step.hints[2][:40] in first.stdout
    assert "The next hint shows the exact lines" in first.stdout

    second = workshop("hint", "01", state_dir=tmp_path)
    assert f"Hint 4 of {total} (the exact lines): " + step.code_hints[0][:20] in second.stdout
    assert "The last check saw" not in second.stdout
    for _ in range(total - 4):
        workshop("hint", "01", state_dir=tmp_path)
    last = workshop("hint", "01", state_dir=tmp_path)
    assert f"Hint {total} of {total} (the exact lines)" in last.stdout  # the last one repeats


def test_a_failure_never_names_a_code_hint():
    """Code-level hints (the exact lines) come only on request: every hint a check can name
    is a teaching hint, and every lab with code hints keeps them out of `hints`."""
    for lab in all_labs():
        for step in lab.checked_steps:
            for hint in step.hints:
                assert "objects.create(" not in hint and "update_or_create" not in hint, (lab.code, step.id, hint)


def test_a_new_failure_naming_another_hint_is_shown_again(tmp_path):
    lab = find_lab("01")
    path = tmp_path / "progress.json"
    progress.record_results(lab, failed_run(lab, "audit-to-db", hint=2), path)
    assert progress.next_hint(lab, "audit-to-db", path).number == 3
    progress.record_results(lab, failed_run(lab, "audit-to-db", hint=1, seen="local files"), path)
    shown = progress.next_hint(lab, "audit-to-db", path)
    assert (shown.number, shown.seen) == (2, "local files")
    assert progress.next_hint(lab, "audit-to-db", path).number == 4  # walks on from the furthest shown


def test_a_failure_without_a_named_hint_forgets_the_earlier_one(tmp_path):
    lab = find_lab("01")
    path = tmp_path / "progress.json"
    progress.record_results(lab, failed_run(lab, "audit-to-db", hint=2), path)
    check = lab.step("audit-to-db").check_name
    progress.record_results(lab, CheckRun(1, {check: "failed"}), path)  # an error: no hint named
    assert progress.next_hint(lab, "audit-to-db", path).seen is None


def test_after_a_lab_passes_hint_says_so(tmp_path):
    lab = find_lab("01")
    progress.record_results(lab, CheckRun(0, {s.check_name: "passed" for s in lab.checked_steps}), tmp_path / "p.json")
    (tmp_path / "progress.json").write_text((tmp_path / "p.json").read_text())
    shown = workshop("hint", "01", state_dir=tmp_path)
    assert "Lab 01 passed" in shown.stdout and "Hint " not in shown.stdout


def test_a_passed_step_forgets_its_named_hint(tmp_path):
    lab = find_lab("01")
    path = tmp_path / "progress.json"
    progress.record_results(lab, failed_run(lab, "audit-to-db", hint=2), path)
    check = lab.step("audit-to-db").check_name
    progress.record_results(lab, CheckRun(0, {check: "passed"}), path)
    assert "audit-to-db" not in progress.load(path)["01"]["named"]
    assert progress.step_status(progress.load(path), lab, "audit-to-db") == "passed"


def test_without_a_failure_hints_come_in_order(tmp_path):
    lab = find_lab("02")
    total = len(lab.step("cached-db").all_hints)
    numbers = [progress.next_hint(lab, "cached-db", tmp_path / "p.json").number for _ in range(total + 1)]
    assert numbers == [*range(1, total + 1), total]


# -- the name travels: failure() -> report -> --workshop-results JSON --------------------


@pytest.fixture
def lab_copy(tmp_path):
    """A copy of the labs (lab.toml and checks) whose check files a test may rewrite: lab 01's."""
    labs = tmp_path / "labs"
    shutil.copytree(LABS_DIR, labs, ignore=shutil.ignore_patterns("__pycache__"))
    return labs / "01-stateful"


def run_pytest(check_file: Path, results: Path):
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(check_file), "--workshop-results", str(results)]
        + ["-p", "no:cacheprovider", "-p", "no:django", "--rootdir", str(ROOT), "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_a_failed_check_writes_the_hint_it_named_next_to_its_outcome(lab_copy, tmp_path):
    check = lab_copy / "checks" / "test_named.py"
    check.write_text(
        "def test_names_a_hint(failure):\n"
        "    seen = 'files on node-1: 3'\n"
        "    assert False, failure('audit-to-db', seen, hint=1 + 1)\n"
        "\n"
        "def test_passes(failure):\n"
        "    assert True, failure('crm-token', 'never evaluated', hint=2)\n"
        "\n"
        "def test_names_a_hint_that_does_not_exist(failure):\n"
        "    assert False, failure('crm-token', 'anything', hint=len('seven..'))\n"
    )
    results = tmp_path / "results.json"
    run = run_pytest(check, results)
    data = json.loads(results.read_text())
    assert data["outcomes"] == {
        "test_names_a_hint": "failed",
        "test_passes": "passed",
        "test_names_a_hint_that_does_not_exist": "failed",
    }, run.stdout
    assert data["failures"] == {
        "test_names_a_hint": {"lab": "01", "step": "audit-to-db", "hint": 2, "seen": "files on node-1: 3"}
    }
    assert f"Hint 3 of {len(find_lab('01').step('audit-to-db').all_hints)}: " in run.stdout
    assert "the check names hint=7 of step 'crm-token', which has hints 0 to 2" in run.stdout

    run = CheckRun.from_results(1, results)
    assert run.failure_of("test_names_a_hint")["hint"] == 2 and run.failure_of("test_passes") is None


# -- the lint: every hint a check names exists --------------------------------------------


def test_the_lint_catches_a_hint_index_out_of_range(lab_copy):
    checks = lab_copy / "checks" / "test_stateful.py"
    text = checks.read_text()
    assert "hint=1,\n    )" in text
    checks.write_text(text.replace("hint=1,\n    )", "hint=4,\n    )", 1))
    problems = lint(load_lab(lab_copy), labs_dir=lab_copy.parent)
    assert len(problems) == 1, problems
    assert "failure() names hint=4 of step 'wipe-a-node', which has hints 0 to 1" in problems[0]
    assert problems[0].startswith("checks/test_stateful.py:")


def test_the_lint_reads_both_branches_of_a_conditional_hint_and_unknown_steps(lab_copy):
    (lab_copy / "checks" / "test_extra.py").write_text(
        "def test_x(failure, seen):\n"
        "    assert seen, failure('crm-token', 'x', hint=0 if seen else 5)\n"
        "    assert seen, failure('no-such-step', 'x')\n"
        "    assert seen, failure('shared-cache', 'x', hint=2, lab='02')\n"
        "    assert seen, failure('shared-cache', 'x', hint=4, lab='02')\n"
    )
    problems = lint(load_lab(lab_copy), labs_dir=lab_copy.parent)
    assert len(problems) == 3, problems
    assert "test_extra.py:2: failure() names hint=5 of step 'crm-token', which has hints 0 to 2" in problems[0]
    assert "test_extra.py:3: failure() names step 'no-such-step', which lab 01 lacks" in problems[1]
    assert "test_extra.py:5: failure() names hint=4 of step 'shared-cache', which has hints 0 to 3" in problems[2]


@pytest.mark.parametrize("lab", all_labs(), ids=lambda lab: lab.slug)
def test_checks_name_hints_by_state_somewhere(lab):
    """Each lab has at least one check whose hint depends on what it saw (not a constant)."""
    references = [ref for path in sorted(lab.checks_dir.glob("test_*.py")) for ref in hint_references(path)]
    assert references, f"{lab.slug}: no failure() calls found"
    assert any(indices is None or len(set(indices)) > 1 for _, _, indices, _ in references), references


def test_hint_goes_to_the_step_whose_failure_named_a_hint(tmp_path):
    lab = find_lab("01")
    progress.record_results(lab, failed_run(lab, "crm-token", hint=2, seen="2 tokens"), tmp_path / "progress.json")
    shown = workshop("hint", "01", state_dir=tmp_path)
    total = len(lab.step("crm-token").all_hints)
    assert "step crm-token" in shown.stdout and f"hint 3 of {total} fits that" in shown.stdout
    after = workshop("hint", "01", state_dir=tmp_path)  # nothing fresh any more: the first unfinished step
    assert "step audit-to-db" in after.stdout and "Hint 1 of 6" in after.stdout
