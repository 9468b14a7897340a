"""What `workshop check` and `workshop watch` print about a check run: the steps, the
regression checks in a section of their own, and the hint each failure named."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workshop import progress
from workshop.checking import CheckRun, LabVerification
from workshop.curriculum import Lab, Regression, find_lab

COLOURS = {"passed": "green", "failed": "red"}
SYMBOLS = {"passed": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[yellow]-[/yellow]"}


def coloured(outcome: str) -> str:
    colour = COLOURS.get(outcome, "dim")
    return f"[{colour}]{outcome}[/{colour}]"


def guarantee_title(regression: Regression) -> str:
    earlier = find_lab(regression.lab)
    return earlier.guarantee.title if earlier.guarantee else regression.guarantee


def earlier_guarantee_passed(data: dict, regression: Regression) -> bool:
    """Did the learner pass the earlier lab's guarantee (its check's step, else the whole lab)?"""
    earlier = find_lab(regression.lab)
    if earlier.guarantee:
        for step in earlier.checked_steps:
            if step.check == earlier.guarantee.check:
                return progress.step_status(data, earlier, step.id) == "passed"
    return progress.lab_done(data, earlier)


def regression_verdict(lab: Lab, regression: Regression, outcome: str, data: dict) -> str | None:
    """The plain sentence for a failed regression check, None when it did not fail."""
    if outcome != "failed":
        return None
    title = guarantee_title(regression)
    if earlier_guarantee_passed(data, regression):
        return f"Lab {regression.lab}'s guarantee {title!r} broke again in lab {lab.code}'s cluster."
    return f"Lab {regression.lab}'s guarantee {title!r} does not hold in lab {lab.code}'s cluster."


def named_hint_text(named: dict, fallback_lab: Lab) -> str:
    """ "the last check saw: ...; hint 2 of 3 fits that: ..." for a failure's record."""
    owner = find_lab(named.get("lab") or fallback_lab.code)
    step = owner.step(named["step"])
    index = int(named["hint"])
    return (
        f"the last check saw: {named['seen']}\n"
        f"  hint {index + 1} of {len(step.all_hints)} (lab {owner.code}, step {step.id}) fits that: {step.hints[index]}"
    )


def print_check_result(console: Console, lab: Lab, run: CheckRun, title: str) -> None:
    table = Table(title=title)
    for column in ("step", "check", "result"):
        table.add_column(column)
    for item in lab.checked_steps:
        table.add_row(item.id, item.check_name, coloured(run.step_outcome(item.check_name)))
    console.print(table)
    if lab.regressions:
        data = progress.load()
        section = Table(title=f"Regression checks: earlier labs' guarantees in lab {lab.code}'s cluster")
        for column in ("lab", "guarantee", "check", "result"):
            section.add_column(column)
        verdicts = []
        for regression in lab.regressions:
            outcome = run.step_outcome(regression.check_name)
            section.add_row(regression.lab, guarantee_title(regression), regression.check_name, coloured(outcome))
            verdict = regression_verdict(lab, regression, outcome, data)
            if verdict:
                verdicts.append((verdict, run.failure_of(regression.check_name)))
        console.print(section)
        for verdict, named in verdicts:
            console.print(f"[red]{verdict}[/red]")
            if named:
                console.print("  " + escape(named_hint_text(named, lab)), highlight=False)
    for item in lab.checked_steps:
        named = run.failure_of(item.check_name)
        if run.step_outcome(item.check_name) == "failed" and named:
            console.print(f"[bold]{item.id}[/bold]: " + escape(named_hint_text(named, lab)), highlight=False)


def progress_line(lab: Lab, data: dict) -> str:
    """One compact line: each checked step's mark, then the regression checks'."""
    marks = [f"{SYMBOLS.get(progress.step_status(data, lab, s.id), '[dim]·[/dim]')} {s.id}" for s in lab.checked_steps]
    marks += [
        f"{SYMBOLS.get(progress.regression_status(data, lab, r.key), '[dim]·[/dim]')} regression {r.key}"
        for r in lab.regressions
    ]
    done = sum(progress.step_status(data, lab, s.id) == "passed" for s in lab.checked_steps)
    return f"lab {lab.code} {done}/{len(lab.checked_steps)}: " + "  ".join(marks)


def print_verification(console: Console, result: LabVerification) -> None:
    """`workshop verify`'s table for one lab, and its counts in one line."""
    lab = result.lab
    table = Table(title=f"Lab {lab.code}: {lab.title}")
    for column in ("what", "on", "result", "verdict"):
        table.add_column(column)
    ok, broken = "[green]ok[/green]", "[red]NO TEETH or BROKEN[/red]"
    for verdict in result.steps:
        table.add_row(
            f"step {verdict.step_id}", "starter", verdict.starter, ok if verdict.starter == "failed" else broken
        )
        table.add_row("", "solution", verdict.solution, ok if verdict.solution == "passed" else broken)
    for regression in result.regressions:  # not steps: they must pass on the solution
        table.add_row(
            f"regression {regression.key}", "solution", regression.solution, ok if regression.sound else broken
        )
    for trial in result.wrong_fixes:
        named = "" if trial.named_hint is None else f", named hint {trial.named_hint + 1}"
        table.add_row(
            f"wrong fix {trial.variant.id}",
            f"step {trial.variant.step}",
            escape(trial.outcome + named),
            ok if trial.sound else f"[red]{escape(trial.problem)}[/red]",
        )
    for trial in result.alternatives:
        table.add_row(
            f"alternative {trial.variant.id}", "every step", escape(trial.outcome), ok if trial.sound else broken
        )
    console.print(table)
    for problem in result.problems:
        console.print(f"[red]lab.toml problem:[/red] {escape(problem)}")
    console.print(
        f"lab {lab.code}: {sum(v.sound for v in result.steps)}/{len(result.steps)} steps fail on the starter and "
        f"pass on the solution; {sum(v.sound for v in result.wrong_fixes)}/{len(result.wrong_fixes)} wrong fixes "
        f"fail at their step; {sum(v.sound for v in result.alternatives)}/{len(result.alternatives)} alternatives "
        f"pass; {sum(v.sound for v in result.regressions)}/{len(result.regressions)} regression checks pass"
    )
