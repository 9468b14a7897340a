"""The learner's progress (check results, hints shown), kept in a small state file
outside the learner's files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from workshop.curriculum import Lab
from workshop.paths import state_dir


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
    return data.setdefault(lab.code, {"steps": {}, "hints": {}})


def record_results(lab: Lab, outcomes: dict[str, str], path: Path | None = None) -> None:
    """Store each checked step's outcome ("passed"/"failed") from a check run."""
    data = load(path)
    state = lab_state(data, lab)
    for step in lab.checked_steps:
        if step.check_name in outcomes:
            state["steps"][step.id] = outcomes[step.check_name]
    state["checked_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save(data, path)


def step_status(data: dict, lab: Lab, step_id: str) -> str:
    return data.get(lab.code, {}).get("steps", {}).get(step_id, "not run")


def current_step_id(data: dict, lab: Lab) -> str:
    """The first checked step that has not passed yet (the last step when all have)."""
    for step in lab.checked_steps:
        if step_status(data, lab, step.id) != "passed":
            return step.id
    return lab.steps[-1].id


def next_hint(lab: Lab, step_id: str, path: Path | None = None) -> tuple[int, str]:
    """Reveal the next hint of a step: (its 1-based number, its text). Repeats the last one."""
    data = load(path)
    hints = lab_state(data, lab)["hints"]
    step = lab.step(step_id)
    shown = min(hints.get(step_id, 0), len(step.hints) - 1)
    hints[step_id] = shown + 1
    save(data, path)
    return shown + 1, step.hints[shown]
