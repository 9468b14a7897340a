"""The learner's progress (check results, the hint each failure named, hints shown,
regression checks), kept in a small state file outside the learner's files.

Per lab, progress.json holds:
  steps        step id -> "passed" / "failed" (the last check run of that step)
  named        step id -> {"hint": 0-based index, "seen": one line, "fresh": not shown yet}:
               the hint the last failure of that step named
  hints        step id -> how many hints of the step were walked through (the next one to show)
  regressions  "01:guarantee-id" -> "passed" / "failed" (the last run of that regression check)
  blocked      the compact error of a lab file that did not compile or import (the checks did
               not run), until the next check run
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workshop.curriculum import Lab
from workshop.paths import state_dir

if TYPE_CHECKING:
    from workshop.checking import CheckRun


def progress_file() -> Path:
    return state_dir() / "progress.json"


def load(path: Path | None = None) -> dict:
    try:
        return json.loads((path or progress_file()).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save(data: dict, path: Path | None = None) -> None:
    path = path or progress_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
    temporary.replace(path)


def lab_state(data: dict, lab: Lab) -> dict:
    state = data.setdefault(lab.code, {})
    for key in ("steps", "hints", "named", "regressions"):
        state.setdefault(key, {})
    return state


def record_results(lab: Lab, run: CheckRun, path: Path | None = None) -> None:
    """Store each checked step's outcome from a check run, the hint each failure named,
    and the outcome of each regression check."""
    data = load(path)
    state = lab_state(data, lab)
    for step in lab.checked_steps:
        outcome = run.outcomes.get(step.check_name or "")
        if outcome is None:
            continue
        state["steps"][step.id] = outcome
        # a hint named by an earlier failure is never shown as the hint of this run's
        state["named"].pop(step.id, None)
        named = run.failure_of(step.check_name) if outcome == "failed" else None
        if named and named.get("lab", lab.code) == lab.code and named.get("step") in {s.id for s in lab.steps}:
            # a check may fail on an earlier step's ground (lab 02's checks all log in first)
            state["named"][named["step"]] = {"hint": int(named["hint"]), "seen": named["seen"], "fresh": True}
    for regression in lab.regressions:
        if regression.check_name in run.outcomes:
            state["regressions"][regression.key] = run.outcomes[regression.check_name]
    state["checked_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    state.pop("blocked", None)
    save(data, path)


def record_blocked(lab: Lab, error: str, path: Path | None = None) -> None:
    """A lab file did not compile or import: no check ran, so no earlier hint applies."""
    data = load(path)
    state = lab_state(data, lab)
    state["named"].clear()
    state["blocked"] = error
    save(data, path)


def blocked(data: dict, lab: Lab) -> str | None:
    return data.get(lab.code, {}).get("blocked")


def step_status(data: dict, lab: Lab, step_id: str) -> str:
    return data.get(lab.code, {}).get("steps", {}).get(step_id, "not run")


def regression_status(data: dict, lab: Lab, key: str) -> str:
    return data.get(lab.code, {}).get("regressions", {}).get(key, "not run")


def lab_done(data: dict, lab: Lab) -> bool:
    """Every checked step of the lab passed in its last run."""
    return bool(lab.checked_steps) and all(step_status(data, lab, s.id) == "passed" for s in lab.checked_steps)


def current_lab(data: dict, labs: list[Lab]) -> Lab:
    """The lab you are on: the first, in order, that is not done (the last when all are)."""
    return next((lab for lab in labs if not lab_done(data, lab)), labs[-1])


def current_step_id(data: dict, lab: Lab) -> str:
    """The first checked step that has not passed yet (the last step when all have)."""
    for step in lab.checked_steps:
        if step_status(data, lab, step.id) != "passed":
            return step.id
    return lab.steps[-1].id


def hint_step_id(data: dict, lab: Lab) -> str:
    """The step `workshop hint` is about: one whose last failure named a hint not shown
    yet (the first such, in order), else the step you are on."""
    named = data.get(lab.code, {}).get("named", {})
    for step in lab.steps:
        if named.get(step.id, {}).get("fresh"):
            return step.id
    return current_step_id(data, lab)


@dataclass
class HintShown:
    number: int  # 1-based, over the step's hints then its code hints
    of: int
    text: str
    seen: str | None = None  # what the last failure saw, when that failure named this hint
    code: bool = False  # a code-level hint: the exact lines


def next_hint(lab: Lab, step_id: str, path: Path | None = None) -> HintShown:
    """Reveal a hint of a step. The hint the step's last failure named comes first; asking
    again walks on from there, one at a time, through the teaching hints and then the
    code-level ones, and repeats the last one at the end."""
    data = load(path)
    state = lab_state(data, lab)
    step = lab.step(step_id)
    hints = step.all_hints
    named = state["named"].get(step_id)
    if named and named.get("fresh") and 0 <= named["hint"] < len(step.hints):
        index, seen = named["hint"], named["seen"]
        named["fresh"] = False
    else:
        index, seen = min(state["hints"].get(step_id, 0), len(hints) - 1), None
    state["hints"][step_id] = max(index + 1, state["hints"].get(step_id, 0))
    save(data, path)
    return HintShown(index + 1, len(hints), hints[index], seen, code=index >= len(step.hints))
