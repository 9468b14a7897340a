"""The curriculum as data: each lab's lab.toml, loaded (workshop.curriculum_lint lints it).

A lab lives in labs/NN-slug/ with a lab.toml (title, minutes, the files the learner
edits, steps with their check and hints), the pristine starter files in starters/NN-slug/
(what `reset` restores, whatever the learner edited or committed) and the reference
solution in solutions/NN-slug/.

Hints come in two lists per step: `hints` teach (a failed check names the one that fits
what it saw) and `code_hints` tell (the exact lines, shown only on request, after the
others).

The corpus (the curriculum's mutation tests): `[[wrong_fixes]]` are plausible wrong fixes,
each proven to fail at its step's own check; `[[alternatives]]` are right fixes by another
route, which must pass every check. Their files live in solutions/NN-slug/wrong_fixes/<id>/
and solutions/NN-slug/alternatives/<id>/, laid over the reference solution.

Regression checks: a lab may name the key guarantee it establishes (`[guarantee]`:
id, title, the check that proves it), and a later lab may re-check an earlier lab's
guarantee in its own cluster (`[[regressions]]`: lab, guarantee, check). A regression
check is not a step: it passes on the later lab's starter too (the earlier labs'
solutions are underneath); it fails when the earlier guarantee breaks again.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workshop.errors import BadInput
from workshop.paths import LABS_DIR, SOLUTIONS_DIR, STARTERS_DIR


class UnknownLab(BadInput, LookupError):
    """Raised for a lab number or name that does not exist; its text names the labs that do."""


class UnknownStep(BadInput, KeyError):
    """A step id a lab does not have; its text names the steps it has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CurriculumError(BadInput, ValueError):
    """A lab.toml that cannot be read: its text names the file and the problem."""


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    hints: tuple[str, ...]
    code_hints: tuple[str, ...] = ()  # the exact lines: only on request, after `hints`
    check: str | None = None  # "checks/test_x.py::test_y", relative to the lab folder
    observe: bool = False  # reproduces the failure: no pass/fail check, evidence is `demo`
    demo: str | None = None  # the command that shows the failure
    cpu_bound: bool = False  # its check drives load: the lab's `cpu_bound`, unless the step says otherwise

    @property
    def check_file(self) -> str | None:
        return self.check.split("::")[0] if self.check else None

    @property
    def check_name(self) -> str | None:
        return self.check.split("::")[1] if self.check and "::" in self.check else None

    @property
    def all_hints(self) -> tuple[str, ...]:
        """What `workshop hint` walks through: the teaching hints, then the code-level ones."""
        return self.hints + self.code_hints


WRONG_FIXES, ALTERNATIVES = "wrong_fixes", "alternatives"


@dataclass(frozen=True)
class Variant:
    """A fix from the corpus: its files, laid over the reference solution, live in
    solutions/NN-slug/<kind>/<id>/. A wrong fix names the step whose check must fail on
    it (and, optionally, the hint that failure must name); an alternative must pass."""

    kind: str  # WRONG_FIXES or ALTERNATIVES
    id: str
    title: str
    why: str = ""
    step: str | None = None
    hint: int | None = None


@dataclass(frozen=True)
class Guarantee:
    """What a lab establishes for good, e.g. "every audit event reaches the report"."""

    id: str
    title: str
    check: str  # the lab's own check that proves it


@dataclass(frozen=True)
class Regression:
    """A later lab's check that an earlier lab's guarantee still holds in its cluster."""

    lab: str  # the earlier lab's code, "01"
    guarantee: str  # the earlier lab's guarantee id
    check: str  # "checks/test_regressions.py::test_...", relative to the later lab's folder

    @property
    def check_file(self) -> str:
        return self.check.split("::")[0]

    @property
    def check_name(self) -> str:
        return self.check.split("::")[-1]

    @property
    def key(self) -> str:
        """How progress files this regression: "01:audit-reaches-report"."""
        return f"{self.lab}:{self.guarantee}"


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
    guarantee: Guarantee | None = None
    regressions: tuple[Regression, ...] = ()
    wrong_fixes: tuple[Variant, ...] = ()
    alternatives: tuple[Variant, ...] = ()
    # Its checks drive load (lab 05's rolling updates at 120 requests/s): the test suite runs
    # them alone, so that their requests never queue behind another test's processes.
    cpu_bound: bool = False
    path: Path = field(default=Path())

    @property
    def code(self) -> str:
        return f"{self.number:02d}"

    @property
    def solution_path(self) -> Path:
        return SOLUTIONS_DIR / self.slug

    @property
    def starter_path(self) -> Path:
        return STARTERS_DIR / self.slug

    def variant_path(self, variant: Variant) -> Path:
        return self.solution_path / variant.kind / variant.id

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
        raise UnknownStep(f"lab {self.code} has no step {step_id!r}; its steps: {', '.join(s.id for s in self.steps)}")


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
            code_hints=tuple(raw.get("code_hints", ())),
            check=raw.get("check"),
            observe=raw.get("observe", False),
            demo=raw.get("demo"),
            cpu_bound=bool(raw.get("cpu_bound", data.get("cpu_bound", False))),
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
        guarantee=Guarantee(**data["guarantee"]) if "guarantee" in data else None,
        regressions=tuple(
            Regression(lab=f"{int(raw['lab']):02d}", guarantee=raw["guarantee"], check=raw["check"])
            for raw in data.get("regressions", ())
        ),
        wrong_fixes=tuple(_variant(WRONG_FIXES, raw) for raw in data.get(WRONG_FIXES, ())),
        alternatives=tuple(_variant(ALTERNATIVES, raw) for raw in data.get(ALTERNATIVES, ())),
        cpu_bound=bool(data.get("cpu_bound", False)),
        path=path,
    )


def _variant(kind: str, raw: dict) -> Variant:
    hint = raw.get("hint")
    return Variant(
        kind=kind,
        id=raw["id"],
        title=raw["title"],
        why=raw.get("why", ""),
        step=raw.get("step"),
        hint=None if hint is None else int(hint),
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
