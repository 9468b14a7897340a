"""The curriculum checks itself: lab.toml is sound, and every step's check fails on
the starter files and passes on the solution (`workshop verify`)."""

import subprocess

import pytest

from workshop.checking import try_alternative, try_wrong_fix, verify_lab
from workshop.curriculum import all_labs
from workshop.curriculum_lint import lint
from workshop.paths import ROOT

LABS = all_labs()


@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_lab_toml_is_sound(lab):
    assert lint(lab) == []


@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_lab_prose_names_every_step(lab):
    """The lab README walks through the same steps, in the same words, as lab.toml."""
    readme = (lab.path / "README.md").read_text()
    for step in lab.steps:
        assert step.title in readme, f"{lab.slug}/README.md does not mention step {step.title!r}"
        if step.demo:
            assert step.demo in readme
        if step.check:
            assert f"workshop check {lab.code}" in readme


@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_the_starters_are_the_lab_files_as_shipped(lab):
    """starters/ keeps the lab files as shipped, so that reset and verify never depend on
    what a learner edited or committed. In the shipped repository the two are the same."""
    for name in lab.edit:
        ours, shipped = lab.path / name, lab.starter_path / name
        changed = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", str(ours)], cwd=ROOT, capture_output=True
        ).returncode
        if changed:
            pytest.skip(f"{ours.relative_to(ROOT)} has uncommitted changes (a learner's work in progress)")
        assert ours.read_text() == shipped.read_text(), (
            f"{ours.relative_to(ROOT)} differs from {shipped.relative_to(ROOT)}: change both in the same commit. "
            f"(If this is your own committed work on lab {lab.code}, it is fine: `workshop reset {lab.code}` "
            "brings the starter back, with a backup.)"
        )


# a lab's checks on the starter, then on the solution: lab 05's roll twice each (the Service, the ALB)
CLUSTER_LABS = [
    pytest.param(lab, id=lab.slug, marks=[pytest.mark.cpu(rollouts=4)] if lab.cpu_bound else []) for lab in LABS
]


@pytest.mark.cluster
@pytest.mark.timeout(1200)  # the starter, then the solution
@pytest.mark.parametrize("lab", CLUSTER_LABS)
def test_every_check_fails_on_the_starter_and_passes_on_the_solution(lab, record_property):
    """Every step's own check fails in its assertion on the starter and passes on the solution."""
    result = verify_lab(lab, corpus=False)
    assert result.problems == []
    table = {v.step_id: (v.starter, v.solution) for v in result.steps}
    saw = {v.step_id: v.solution_saw for v in result.steps if v.solution_saw}
    assert all(v.sound for v in result.steps), f"(starter, solution) per step: {table}; on the solution: {saw}"
    record_property(
        "proofs",
        {"steps with teeth": len(result.steps), "regression checks passing on the solution": len(result.regressions)},
    )
    assert len(result.steps) == len(lab.checked_steps)
    # regression checks are not steps: they must pass on the solution (their teeth are
    # proven in tests/test_regressions.py, with the earlier lab's starter underneath)
    regressions = {v.key: (v.starter, v.solution) for v in result.regressions}
    assert len(result.regressions) == len(lab.regressions)
    assert all(v.sound for v in result.regressions), f"(starter, solution) per regression: {regressions}"


def corpus_params(kind: str) -> list:
    """One test per fix of the corpus, so that they spread over the test workers. A wrong fix
    runs its step's check alone (`cpu` if that step drives load), an alternative every check."""

    def marks(lab, variant) -> list:
        if variant.step:  # a wrong fix: its step's check, one rolling update at most
            return [pytest.mark.cpu] if lab.step(variant.step).cpu_bound else []
        return [pytest.mark.cpu(rollouts=2)] if lab.cpu_bound else []  # every check: lab 05's roll twice

    return [
        pytest.param(lab, variant, id=f"{lab.code}-{variant.id}", marks=marks(lab, variant))
        for lab in LABS
        for variant in getattr(lab, kind)
    ]


# The corpus proves what the checks tell apart; CI's external-services leg leaves it to the
# embedded leg (-m "not corpus"), where it runs in full.
@pytest.mark.cluster
@pytest.mark.corpus
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("lab", "variant"), corpus_params("wrong_fixes"))
def test_a_wrong_fix_fails_at_its_step(lab, variant, record_property):
    """The step the wrong fix names fails in its own assertion, naming the hint lab.toml expects."""
    verdict = try_wrong_fix(lab, variant)
    assert verdict.sound, verdict.problem
    record_property("proofs", {"wrong fixes failing at their step": 1})


@pytest.mark.cluster
@pytest.mark.corpus
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("lab", "variant"), corpus_params("alternatives"))
def test_a_right_fix_by_another_route_passes_every_step(lab, variant, record_property):
    verdict = try_alternative(lab, variant)
    assert verdict.sound, verdict.problem
    record_property("proofs", {"alternatives passing": 1})


@pytest.mark.cluster
def test_an_alternative_that_fails_says_what_its_check_saw():
    """A right fix by another route that fails a step (here a wrong fix tried as one) names the
    step and what its check saw, so a failure in CI can be read without running it again."""
    stateful = next(lab for lab in LABS if lab.code == "01")
    wrong = next(variant for variant in stateful.wrong_fixes if variant.id == "data-dir")
    verdict = try_alternative(stateful, wrong)
    assert not verdict.sound
    assert f"{wrong.step} failed" in verdict.problem and f"; {wrong.step} saw: " in verdict.problem, verdict.problem
