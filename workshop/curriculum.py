"""The curriculum as data: each lab's lab.toml, loaded and linted.

A lab lives in labs/NN-slug/ with a lab.toml (title, minutes, the files the learner
edits, steps with their check and hints) and a mirror in solutions/NN-slug/.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workshop.paths import LABS_DIR, SOLUTIONS_DIR


class UnknownLab(LookupError):
    """Raised for a lab number or name that does not exist; its text names the labs that do."""


class CurriculumError(ValueError):
    """A lab.toml that cannot be read: its text names the file and the problem."""


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    hints: tuple[str, ...]
    check: str | None = None  # "checks/test_x.py::test_y", relative to the lab folder
    observe: bool = False  # reproduces the failure: no pass/fail check, evidence is `demo`
    demo: str | None = None  # the command that shows the failure

    @property
    def check_file(self) -> str | None:
        return self.check.split("::")[0] if self.check else None

    @property
    def check_name(self) -> str | None:
        return self.check.split("::")[1] if self.check and "::" in self.check else None


@dataclass(frozen=True)
class Lab:
    number: int
    slug: str  # "01-stateful"
    title: str
    minutes: int
    edit: tuple[str, ...]
    steps: tuple[Step, ...]
    summary: str = ""
    # Settings modules the lab contributes to cms.settings (cms reads CMS_SETTINGS_LAYERS).
    settings: tuple[str, ...] = ()
    # Procfile processes that run beside the web nodes (worker, beat).
    processes: tuple[str, ...] = ()
    path: Path = field(default=Path())

    @property
    def code(self) -> str:
        return f"{self.number:02d}"

    @property
    def solution_path(self) -> Path:
        return SOLUTIONS_DIR / self.slug

    @property
    def checks_dir(self) -> Path:
        return self.path / "checks"

    @property
    def checked_steps(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.check)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"lab {self.code} has no step {step_id!r}")


def load_lab(path: Path) -> Lab:
    try:
        return _parse_lab(path, tomllib.loads((path / "lab.toml").read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise CurriculumError(f"{path / 'lab.toml'} is not valid TOML: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise CurriculumError(f"{path / 'lab.toml'} lacks or mistypes a field: {exc!r}") from None


def _parse_lab(path: Path, data: dict) -> Lab:
    steps = tuple(
        Step(
            id=raw["id"],
            title=raw["title"],
            hints=tuple(raw.get("hints", ())),
            check=raw.get("check"),
            observe=raw.get("observe", False),
            demo=raw.get("demo"),
        )
        for raw in data.get("steps", ())
    )
    return Lab(
        number=int(path.name.split("-", 1)[0]),
        slug=path.name,
        title=data["title"],
        minutes=int(data["minutes"]),
        edit=tuple(data.get("edit", ())),
        steps=steps,
        summary=data.get("summary", ""),
        settings=tuple(data.get("settings", ())),
        processes=tuple(data.get("processes", ())),
        path=path,
    )


def all_labs(labs_dir: Path = LABS_DIR) -> list[Lab]:
    folders = sorted(p for p in labs_dir.iterdir() if (p / "lab.toml").is_file())
    return [load_lab(folder) for folder in folders]


def find_lab(name: str | int, labs_dir: Path = LABS_DIR) -> Lab:
    """A lab by number ("1", "01"), folder name ("01-stateful") or slug ("stateful")."""
    labs = all_labs(labs_dir)
    wanted = str(name).strip().lower()
    for lab in labs:
        if wanted in {lab.slug, lab.slug.split("-", 1)[1]} or (wanted.isdigit() and int(wanted) == lab.number):
            return lab
    available = ", ".join(f"{lab.code} ({lab.slug})" for lab in labs)
    raise UnknownLab(f"there is no lab {name!r}. Available labs: {available}")


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def lint(lab: Lab) -> list[str]:
    """Problems with a lab's curriculum itself; an empty list means it is sound."""
    problems: list[str] = []
    if not lab.steps:
        problems.append("lab.toml has no steps")
    if not lab.edit:
        problems.append("lab.toml lists no editable files (edit = [...])")
    seen_ids: set[str] = set()
    for step in lab.steps:
        where = f"step {step.id!r}"
        if step.id in seen_ids:
            problems.append(f"{where}: duplicate id")
        seen_ids.add(step.id)
        if not step.hints:
            problems.append(f"{where}: no hints")
        if any(not hint.strip() for hint in step.hints):
            problems.append(f"{where}: an empty hint")
        if step.observe:
            if step.check:
                problems.append(f"{where}: an observe step has no pass/fail check")
            if not step.demo:
                problems.append(f"{where}: an observe step needs a demo command as evidence")
            continue
        if not step.check or not step.check_name:
            problems.append(f"{where}: no check (checks/test_file.py::test_name)")
            continue
        check_file = lab.path / step.check_file
        if not check_file.is_file():
            problems.append(f"{where}: check file {step.check_file} does not exist")
        elif step.check_name not in _test_functions(check_file):
            problems.append(f"{where}: {step.check_file} has no test {step.check_name}")
    for module in lab.settings:
        if f"{module}.py" not in lab.edit:
            problems.append(f"settings module {module} is not one of the editable files")
    for name in lab.edit:
        starter, solution = lab.path / name, lab.solution_path / name
        if not starter.is_file():
            problems.append(f"editable file {name} is missing from {lab.slug}/")
        elif "TODO" not in starter.read_text():
            problems.append(f"editable file {name} has no TODO for the learner")
        if not solution.is_file():
            problems.append(f"solutions/{lab.slug}/{name} is missing")
    if lab.solution_path.is_dir():
        extra = {
            str(p.relative_to(lab.solution_path))
            for p in lab.solution_path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        } - set(lab.edit)
        if extra:
            problems.append(f"solutions/{lab.slug}/ has files that are not editable: {sorted(extra)}")
    return problems
