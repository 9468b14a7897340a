"""Regression checks: later labs re-check an earlier lab's guarantee in their own cluster.

The mechanism (lab.toml's [guarantee] and [[regressions]], the lint, the layer override
that puts an earlier lab's starter in place of its solution, progress and the report's
"broke again" sentence) is tested here without a cluster; the `cluster` tests prove
each regression check has teeth: it fails with the earlier lab's starter underneath and
passes on the normal stack of solutions."""

import io
import shutil

import pytest
from rich.console import Console

from workshop import progress
from workshop.check_report import print_check_result, regression_verdict
from workshop.checking import CheckRun, prove_regression_teeth, run_checks
from workshop.curriculum import all_labs, find_lab, load_lab
from workshop.curriculum_lint import lint
from workshop.layers import lab_files_dir, layer_dirs
from workshop.paths import LABS_DIR
from workshop.pytest_plugin import parse_earlier_files

LABS = all_labs()
REGRESSIONS = [(lab, regression) for lab in LABS for regression in lab.regressions]


def test_the_curriculum_has_a_few_regression_checks_each_on_a_declared_guarantee():
    assert 2 <= len(REGRESSIONS) <= 3  # each costs a cluster per run of the lab's checks: keep them few
    for lab, regression in REGRESSIONS:
        earlier = find_lab(regression.lab)
        assert earlier.number < lab.number and earlier.guarantee.id == regression.guarantee
        assert regression.check_file == "checks/test_regressions.py"
        # a regression check is not a step: `workshop verify` treats it apart
        assert regression.check not in {step.check for step in lab.steps}


def test_an_earlier_labs_files_can_replace_its_solution_in_the_layers(tmp_path):
    lab = find_lab("04")
    normal = layer_dirs(lab, tmp_path)
    assert normal[0] == tmp_path and find_lab("03").solution_path in normal
    broken = layer_dirs(lab, tmp_path, {"03": tmp_path / "starter-03"})
    assert tmp_path / "starter-03" in broken and find_lab("03").solution_path not in broken
    solution = find_lab("03").solution_path
    assert broken == [tmp_path / "starter-03" if p == solution else p for p in normal]


def test_earlier_files_option_is_parsed_and_bad_values_are_refused(tmp_path):
    assert parse_earlier_files([f"3={tmp_path}"]) == {"03": tmp_path.resolve()}
    for bad in ("03", "x=folder", "03="):
        with pytest.raises(pytest.UsageError, match="--earlier-files expects NN=FOLDER"):
            parse_earlier_files([bad])


@pytest.fixture
def labs_copy(tmp_path):
    labs = tmp_path / "labs"
    shutil.copytree(LABS_DIR, labs, ignore=shutil.ignore_patterns("__pycache__"))
    return labs


@pytest.mark.parametrize(
    "replace, problem",
    [
        ('guarantee = "no-lost-tasks"', "lab 03 declares no guarantee 'no-such-guarantee'"),
        ('lab = "03"', "lab 05 is not an earlier lab"),
        ("test_a_killed_child_still_loses_no_task", "check checks/test_regressions.py::test_gone does not exist"),
    ],
)
def test_the_lint_catches_a_regression_that_points_nowhere(labs_copy, replace, problem):
    toml = labs_copy / "04-beat" / "lab.toml"
    text = toml.read_text()
    substitute = {
        'guarantee = "no-lost-tasks"': 'guarantee = "no-such-guarantee"',
        'lab = "03"': 'lab = "05"',
        "test_a_killed_child_still_loses_no_task": "test_gone",
    }[replace]
    # the [[regressions]] table comes after the [guarantee] one: replace its occurrence
    head, _, tail = text.partition("[[regressions]]")
    toml.write_text(head + "[[regressions]]" + tail.replace(replace, substitute, 1))
    problems = lint(load_lab(labs_copy / "04-beat"), labs_dir=labs_copy)
    assert any(problem in p for p in problems), problems


def outcome_run(lab, outcome, hint=2):
    regression = lab.regressions[0]
    named = {"lab": regression.lab, "step": "no-lost-tasks", "hint": hint, "seen": "the task ended FAILURE"}
    failures = {regression.check_name: named} if outcome == "failed" else {}
    return CheckRun(1 if outcome == "failed" else 0, {regression.check_name: outcome}, failures)


def test_progress_keeps_the_regression_outcome_and_list_shows_it(tmp_path):
    lab = find_lab("04")
    path = tmp_path / "progress.json"
    progress.record_results(lab, outcome_run(lab, "failed"), path)
    assert progress.regression_status(progress.load(path), lab, "03:no-lost-tasks") == "failed"
    # a failure on an earlier lab's ground names that lab's hint, not one of this lab's steps
    assert progress.load(path)["04"]["named"] == {}


def test_a_regression_that_fails_after_the_earlier_lab_passed_broke_again(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path))
    lab, earlier = find_lab("04"), find_lab("03")
    regression = lab.regressions[0]
    assert regression_verdict(lab, regression, "passed", progress.load()) is None
    never_passed = regression_verdict(lab, regression, "failed", progress.load())
    assert never_passed == (
        "Lab 03's guarantee 'a pool child killed mid-task loses no task' does not hold in lab 04's cluster."
    )

    passed = CheckRun(0, {step.check_name: "passed" for step in earlier.checked_steps})
    progress.record_results(earlier, passed)
    output = io.StringIO()
    print_check_result(Console(file=output, width=300), lab, outcome_run(lab, "failed"), "Lab 04 checks")
    text = output.getvalue()
    assert "Regression checks: earlier labs' guarantees in lab 04's cluster" in text
    assert "Lab 03's guarantee 'a pool child killed mid-task loses no task' broke again in lab 04's cluster." in text
    assert "the last check saw: the task ended FAILURE" in text
    step = earlier.step("no-lost-tasks")
    assert f"hint 3 of {len(step.all_hints)} (lab 03, step no-lost-tasks) fits that: " + step.hints[2] in text


# -- teeth, with real processes -------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize(
    "lab, regression",
    [
        pytest.param(lab, r, id=f"{lab.code}-{r.key}", marks=[pytest.mark.cpu] if lab.cpu_bound else [])
        for lab, r in REGRESSIONS
    ],
)
def test_a_regression_check_fails_when_the_earlier_guarantee_breaks(lab, regression, record_property):
    assert prove_regression_teeth(lab, regression) == "failed"
    record_property("proofs", {"regression checks with teeth": 1})


@pytest.mark.cluster
def test_the_same_regression_check_passes_on_the_normal_stack():
    """The other half of the proof, for one check (`workshop verify`, in the curriculum
    tests, runs every regression check on every lab's solution)."""
    lab = find_lab("04")
    regression = lab.regressions[0]
    normal = run_checks(lab, lab_files_dir(lab, "solution"), select=[regression.check], quiet=True)
    assert normal.step_outcome(regression.check_name) == "passed"
