"""The curriculum checks itself: lab.toml is sound, and every step's check fails on
the starter files and passes on the solution (`workshop verify`)."""

import subprocess

import pytest

from workshop.checking import verify_lab
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


CLUSTER_LABS = [pytest.param(lab, id=lab.slug, marks=[pytest.mark.cpu] if lab.cpu_bound else []) for lab in LABS]


@pytest.mark.cluster
@pytest.mark.timeout(1800)  # the starter, the solution and every fix of the corpus, one after the other
@pytest.mark.parametrize("lab", CLUSTER_LABS)
def test_every_check_fails_on_the_starter_and_passes_on_the_solution(lab, record_property):
    """Every step's own check fails in its assertion on the starter and passes on the
    solution; every wrong fix of the corpus fails at its step (naming the hint lab.toml
    expects); every alternative passes every step."""
    result = verify_lab(lab)
    assert result.problems == []
    table = {v.step_id: (v.starter, v.solution) for v in result.steps}
    saw = {v.step_id: v.solution_saw for v in result.steps if v.solution_saw}
    assert all(v.sound for v in result.steps), f"(starter, solution) per step: {table}; on the solution: {saw}"
    wrong = {v.variant.id: v.problem for v in result.wrong_fixes if not v.sound}
    assert not wrong, f"wrong fixes that did not fail at their step: {wrong}"
    alternatives = {v.variant.id: v.outcome for v in result.alternatives if not v.sound}
    assert not alternatives, f"right fixes by another route that did not pass: {alternatives}"
    assert len(result.wrong_fixes) == len(lab.wrong_fixes) and len(result.alternatives) == len(lab.alternatives)
    record_property(
        "proofs",
        {
            "steps with teeth": len(result.steps),
            "wrong fixes failing at their step": len(result.wrong_fixes),
            "alternatives passing": len(result.alternatives),
            "regression checks passing on the solution": len(result.regressions),
        },
    )
    assert len(result.steps) == len(lab.checked_steps)
    # regression checks are not steps: they must pass on the solution (their teeth are
    # proven in tests/test_regressions.py, with the earlier lab's starter underneath)
    regressions = {v.key: (v.starter, v.solution) for v in result.regressions}
    assert len(result.regressions) == len(lab.regressions)
    assert all(v.sound for v in result.regressions), f"(starter, solution) per regression: {regressions}"
