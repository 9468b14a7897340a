"""The `workshop` commands of a learner's way through a lab: list, check, hint, watch,
solve, reset; and verify, the curriculum check over the starter, solution and corpus."""

from __future__ import annotations

import difflib
import shutil
import time

import typer
from rich.markup import escape
from rich.table import Table

from workshop import progress
from workshop.checking import run_checks, verify_lab
from workshop.cli_common import LAB_ARG, SOLUTION_OPT, console, resolve_lab, variant_of
from workshop.curriculum import Lab, all_labs
from workshop.errors import BadInput
from workshop.layers import lab_files_dir, starter_text
from workshop.paths import backups_dir
from workshop.precheck import LabFileError
from workshop.room import client as room_client


def list_labs() -> None:
    """Labs and their steps, with your progress."""
    from workshop.check_report import coloured, guarantee_title

    data = progress.load()
    table = Table(title="Workshop labs")
    for column in ("lab", "step", "title", "status"):
        table.add_column(column)
    for lab in all_labs():
        done = "[green]done[/green]" if progress.lab_done(data, lab) else ""
        table.add_row(f"[bold]{lab.code}[/bold]", "", f"[bold]{lab.title}[/bold] ({lab.minutes} min)", done)
        for number, step in enumerate(lab.steps, start=1):
            status = "observe: " + step.demo if step.observe else coloured(progress.step_status(data, lab, step.id))
            table.add_row("", f"{number}. {step.id}", step.title, status)
        for regression in lab.regressions:
            table.add_row(
                "",
                "regression",
                f"lab {regression.lab}'s guarantee: {guarantee_title(regression)}",
                coloured(progress.regression_status(data, lab, regression.key)),
            )
    console.print(table)


def check(
    lab_name: str = LAB_ARG,
    solution: bool = SOLUTION_OPT,
    step: str = typer.Option(None, "--step", help="check only this step"),
) -> None:
    """Run the lab's checks against your files; exit 0 only if all pass."""
    lab = resolve_lab(lab_name)
    select = None
    if step:
        chosen = lab.step(step)  # UnknownStep names the steps
        if not chosen.check:
            raise BadInput(f"step {step!r} only reproduces the failure: run `{chosen.demo}`")
        select = [chosen.check]
    from workshop.check_report import print_check_result

    result = run_checks(lab, lab_files_dir(lab, variant_of(solution)), select=select)
    if result.blocked:
        if not solution:
            progress.record_blocked(lab, result.blocked)
        raise LabFileError(f"{result.blocked}\nNo check ran: fix that line first (no cluster was started).")
    if not solution:
        progress.record_results(lab, result)
        room_client.report(lab, result)  # to the facilitator's room, if joined; never waits for it
    print_check_result(console, lab, result, f"Lab {lab.code} checks ({variant_of(solution)} files)")
    if result.returncode != 0:
        console.print(f"Stuck? [bold]workshop hint {lab.code}[/bold] shows the hint the failure named, then the next.")
    raise typer.Exit(0 if result.returncode == 0 else 1)


def hint(
    lab_name: str = LAB_ARG,
    step: str = typer.Option(
        None, "--step", help="a hint for this step (default: the step a failure named, else the first unfinished)"
    ),
) -> None:
    """The next hint for the step you are on, one at a time."""
    lab = resolve_lab(lab_name)
    data = progress.load()
    blocked = progress.blocked(data, lab)
    if blocked and not step:
        console.print(f"Your last check did not run: {escape(blocked)}")
        console.print("Fix that first; then `workshop check` names the hint that fits what it sees.")
        return
    if progress.lab_done(data, lab) and not step:
        console.print(f"[green]Lab {lab.code} passed[/green]: every step's check passed in its last run.")
        console.print(
            f"Hints of a step anyway: workshop hint {lab.code} --step ID ({', '.join(s.id for s in lab.steps)})"
        )
        return
    step_id = step or progress.hint_step_id(data, lab)
    chosen = lab.step(step_id)  # UnknownStep names the steps
    shown = progress.next_hint(lab, step_id)
    console.print(f"[bold]Lab {lab.code}, step {chosen.id}[/bold] ({chosen.title})")
    if shown.seen is not None:
        seen = escape(shown.seen.rstrip("."))
        console.print(f"The last check saw: {seen}; hint {shown.number} of {shown.of} fits that.")
    kind = " (the exact lines)" if shown.code else ""
    console.print(f"Hint {shown.number} of {shown.of}{kind}: {escape(shown.text)}")
    if shown.number < shown.of:
        following = "shows the exact lines" if shown.number >= len(chosen.hints) else "teaches one more thing"
        console.print(f"[dim]The next hint {following}: workshop hint {lab.code}[/dim]")


def watch(lab_name: str = typer.Argument(None, help="lab number (default: the first lab not done)")) -> None:
    """Re-run the step's check each time you save one of the lab's files; Ctrl-C stops."""
    from workshop.watch import Watcher

    lab = resolve_lab(lab_name) if lab_name else progress.current_lab(progress.load(), all_labs())
    files = ", ".join(f"{lab.path.name}/{name}" for name in lab.edit)
    console.print(f"[bold]Watching lab {lab.code}[/bold] ({files}): save a file to run the check of your step.")
    console.print("Press Ctrl-C to stop.")
    watcher = Watcher(lab, lab_files_dir(lab, "learner"), console=console)
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop_event.set()
    console.print(f"stopped watching after {watcher.runs} check run(s)")


def _replace_files(lab: Lab, target: str, yes: bool) -> None:
    """Show the diff from the learner's files to the target's, ask, back up, copy."""
    texts: dict[str, str] = {}
    for name in lab.edit:
        texts[name] = (lab.solution_path / name).read_text() if target == "solution" else starter_text(lab, name)
    diff = []
    for name, new in texts.items():
        current = lab.path / name
        old = current.read_text() if current.exists() else ""
        diff += difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"yours/{name}", f"{target}/{name}"
        )
    if not diff:
        console.print(f"Your files already match the {target}; nothing to do.")
        return
    console.print("".join(diff), markup=False, highlight=False)
    if not yes and not typer.confirm(f"Replace your files in {lab.path.name}/ with the {target}?", default=False):
        console.print("Nothing changed.")
        raise typer.Exit(1)
    backup = backups_dir() / f"{lab.slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    for name, new in texts.items():
        current = lab.path / name
        if current.exists():
            (backup / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(current, backup / name)
        current.parent.mkdir(parents=True, exist_ok=True)
        current.write_text(new)
    console.print(f"Done. Your previous files are in {backup}")


def solve(lab_name: str = LAB_ARG, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Show the diff to the solution, back up your files, then copy the solution in."""
    _replace_files(resolve_lab(lab_name), "solution", yes)


def reset(lab_name: str = LAB_ARG, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Show the diff to the starter files, back up your files, then restore the starter."""
    _replace_files(resolve_lab(lab_name), "starter", yes)


def verify(
    lab_name: str = typer.Argument(None, help="one lab (default: all)"),
    corpus: bool = typer.Option(True, "--corpus/--no-corpus", help="also try the wrong fixes and alternatives"),
) -> None:
    """The curriculum check: every step fails on the starter and passes on the solution;
    every wrong fix of the corpus fails at its step; every alternative passes."""
    from workshop.check_report import print_verification

    labs = [resolve_lab(lab_name)] if lab_name else all_labs()
    results = []
    for lab in labs:
        with console.status(f"verifying lab {lab.code} (starter, solution, then the corpus)..."):
            results.append(verify_lab(lab, corpus=corpus))
        print_verification(console, results[-1])
    all_ok = all(result.ok for result in results)
    console.print("[green]curriculum verified[/green]" if all_ok else "[red]curriculum NOT verified[/red]")
    raise typer.Exit(0 if all_ok else 1)
