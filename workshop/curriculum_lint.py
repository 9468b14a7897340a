"""The curriculum's static check: does a lab's lab.toml agree with its files?

Each step's check exists, every hint a check names (`failure("step", hint=N)`) exists,
the starters have their TODOs, the corpus folders match what lab.toml declares, and the
guarantees and regressions name checks and labs that exist. `workshop verify` runs these
before it runs any check.
"""

from __future__ import annotations

import ast
from pathlib import Path

from workshop.curriculum import ALTERNATIVES, WRONG_FIXES, Lab, UnknownLab, all_labs, find_lab


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
