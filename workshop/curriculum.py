"""The curriculum as data: each lab's lab.toml, loaded and linted.

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

import ast
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
    # Its checks drive load (lab 05's rolling updates) or time processes against a short
    # clock (lab 04's beats): the test suite runs them alone.
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


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def _literal_ints(node: ast.expr) -> list[int] | None:
    """The int values an expression can take, when they are literals (`2`, `0 if x else 2`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_ints(node.body), _literal_ints(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def hint_references(path: Path) -> list[tuple[int, str, list[int] | None, str | None]]:
    """(line, step id, hint indices, lab) of every `failure("step", ..., hint=N, lab="NN")`
    call in a check file (lab None: the check's own lab). Hint indices of None are computed
    at run time: the failure fixture checks their range then."""
    references = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "failure"):
            continue
        if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            continue
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        indices = [0] if "hint" not in keywords else _literal_ints(keywords["hint"])
        owner = keywords.get("lab")
        lab_code = owner.value if isinstance(owner, ast.Constant) and isinstance(owner.value, str) else None
        references.append((node.lineno, node.args[0].value, indices, lab_code))
    return references


def _lint_hint_references(lab: Lab, labs_dir: Path | None) -> list[str]:
    problems = []
    for check_file in sorted(lab.checks_dir.glob("test_*.py")) if lab.checks_dir.is_dir() else ():
        where = f"{check_file.relative_to(lab.path).as_posix()}"
        for line, step_id, indices, lab_code in hint_references(check_file):
            try:
                owner = find_lab(lab_code, labs_dir or lab.path.parent) if lab_code else lab
            except UnknownLab:
                problems.append(f"{where}:{line}: failure() names lab {lab_code!r}, which does not exist")
                continue
            step = next((step for step in owner.steps if step.id == step_id), None)
            if step is None:
                problems.append(f"{where}:{line}: failure() names step {step_id!r}, which lab {owner.code} lacks")
                continue
            for index in indices or ():
                if not 0 <= index < len(step.hints):
                    problems.append(
                        f"{where}:{line}: failure() names hint={index} of step {step_id!r}, "
                        f"which has hints 0 to {len(step.hints) - 1}"
                    )
    return problems


def _lint_guarantees(lab: Lab, labs_dir: Path | None) -> list[str]:
    problems = []
    if lab.guarantee and not _check_exists(lab, lab.guarantee.check):
        problems.append(f"guarantee {lab.guarantee.id!r}: check {lab.guarantee.check} does not exist")
    if not lab.regressions:
        return problems
    earlier = {other.code: other for other in all_labs(labs_dir or lab.path.parent) if other.number < lab.number}
    for regression in lab.regressions:
        where = f"regression {regression.key!r}"
        other = earlier.get(regression.lab)
        if other is None:
            problems.append(f"{where}: lab {regression.lab} is not an earlier lab")
        elif other.guarantee is None or other.guarantee.id != regression.guarantee:
            problems.append(f"{where}: lab {regression.lab} declares no guarantee {regression.guarantee!r}")
        if "::" not in regression.check or not _check_exists(lab, regression.check):
            problems.append(f"{where}: check {regression.check} does not exist")
    return problems


def _check_exists(lab: Lab, check: str) -> bool:
    check_file, _, name = check.partition("::")
    return (lab.path / check_file).is_file() and name in _test_functions(lab.path / check_file)


def _files_in(folder: Path, skip: tuple[str, ...] = ()) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.relative_to(folder).parts[0] not in skip
    }


def _lint_corpus(lab: Lab) -> list[str]:
    problems = []
    steps = {step.id: step for step in lab.steps}
    for kind, variants in ((WRONG_FIXES, lab.wrong_fixes), (ALTERNATIVES, lab.alternatives)):
        declared = [variant.id for variant in variants]
        if len(set(declared)) != len(declared):
            problems.append(f"{kind}: duplicate ids in {declared}")
        folder = lab.solution_path / kind
        present = (
            {p.name for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"} if folder.is_dir() else set()
        )
        for undeclared in sorted(present - set(declared)):
            problems.append(f"solutions/{lab.slug}/{kind}/{undeclared}/ is not declared in lab.toml")
        for variant in variants:
            where = f"{kind} {variant.id!r}"
            files = _files_in(lab.variant_path(variant)) if lab.variant_path(variant).is_dir() else set()
            if not files:
                problems.append(f"{where}: solutions/{lab.slug}/{kind}/{variant.id}/ holds no file")
            if files - set(lab.edit):
                problems.append(f"{where}: files that are not editable: {sorted(files - set(lab.edit))}")
            if kind == ALTERNATIVES:
                if variant.step or variant.hint is not None:
                    problems.append(f"{where}: an alternative passes every step; it names no step or hint")
                continue
            step = steps.get(variant.step or "")
            if step is None or not step.check:
                problems.append(f"{where}: names step {variant.step!r}, which is not a checked step of this lab")
            elif variant.hint is not None and not 0 <= variant.hint < len(step.hints):
                problems.append(
                    f"{where}: names hint={variant.hint} of step {step.id!r} (hints 0 to {len(step.hints) - 1})"
                )
            if not variant.why.strip():
                problems.append(f"{where}: says nothing of why it is wrong (why = ...)")
    return problems


def lint(lab: Lab, labs_dir: Path | None = None) -> list[str]:
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
        if any(not hint.strip() for hint in step.all_hints):
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
        starter, solution = lab.starter_path / name, lab.solution_path / name
        if not (lab.path / name).is_file():
            problems.append(f"editable file {name} is missing from {lab.slug}/")
        if not starter.is_file():
            problems.append(f"starters/{lab.slug}/{name} is missing")
        elif "TODO" not in starter.read_text():
            problems.append(f"starters/{lab.slug}/{name} has no TODO for the learner")
        if not solution.is_file():
            problems.append(f"solutions/{lab.slug}/{name} is missing")
    if lab.solution_path.is_dir():
        extra = _files_in(lab.solution_path, skip=(WRONG_FIXES, ALTERNATIVES)) - set(lab.edit)
        if extra:
            problems.append(f"solutions/{lab.slug}/ has files that are not editable: {sorted(extra)}")
    problems += _lint_corpus(lab)
    problems += _lint_hint_references(lab, labs_dir)
    problems += _lint_guarantees(lab, labs_dir)
    return problems
