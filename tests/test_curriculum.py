"""The curriculum checks itself: lab.toml is sound, and every step's check fails on
the starter files and passes on the solution (`workshop verify`)."""

import pytest

from workshop.checking import verify_lab
from workshop.curriculum import all_labs, lint

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


@pytest.mark.cluster
@pytest.mark.parametrize("lab", LABS, ids=[lab.slug for lab in LABS])
def test_every_check_fails_on_the_starter_and_passes_on_the_solution(lab):
    result = verify_lab(lab)
    assert result.problems == []
    table = {v.step_id: (v.starter, v.solution) for v in result.steps}
    assert all(v.sound for v in result.steps), f"(starter, solution) per step: {table}"
    assert len(result.steps) == len(lab.checked_steps)
    # regression checks are not steps: they must pass on the solution (their teeth are
    # proven in tests/test_regressions.py, with the earlier lab's starter underneath)
    regressions = {v.key: (v.starter, v.solution) for v in result.regressions}
    assert len(result.regressions) == len(lab.regressions)
    assert all(v.sound for v in result.regressions), f"(starter, solution) per regression: {regressions}"
