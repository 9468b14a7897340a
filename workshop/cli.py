"""The `workshop` command: list, start, top, demo, check, watch, hint, solve, reset, verify, doctor."""

from __future__ import annotations

import difflib
import shutil
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from workshop import progress
from workshop.checking import run_checks, verify_lab
from workshop.curriculum import Lab, all_labs, find_lab
from workshop.errors import BadInput, WorkshopError
from workshop.layers import lab_files_dir, starter_text
from workshop.paths import backups_dir
from workshop.precheck import LabFileError
from workshop.room import client as room_client

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # messages stay one line, easy to copy


class WorkshopGroup(TyperGroup):
    """The one place where an error the workshop explains becomes a message and an exit
    code (as Django's BaseCommand.run_from_argv does with CommandError): a WorkshopError
    raised anywhere below any command, the `kind` and `room` ones included."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WorkshopError as exc:
            errors.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(cls=WorkshopGroup, add_completion=False, no_args_is_help=True, help=__doc__)

LAB_ARG = typer.Argument(..., help="lab number, e.g. 01")
SOLUTION_OPT = typer.Option(False, "--solution", help="use the reference solution instead of your files")


def resolve_lab(name: str) -> Lab:
    return find_lab(name)  # UnknownLab, CurriculumError: BadInput, exit 2


def variant_of(solution: bool) -> str:
    return "solution" if solution else "learner"


@app.command("list")
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


@app.command()
def start(
    lab_name: str = LAB_ARG,
    nodes: int = typer.Option(2, "--nodes", min=1, max=8, help="cms nodes behind the load balancer"),
    solution: bool = SOLUTION_OPT,
) -> None:
    """Run the lab's topology and print its URLs; Ctrl-C stops every process."""
    import importlib

    from workshop.processes import raise_keyboard_interrupt_on_sigterm
    from workshop.topology import Cluster

    lab = resolve_lab(lab_name)
    try:
        scenario = importlib.import_module(f"workshop.scenarios.{lab.slug.split('-', 1)[1].replace('-', '_')}")
    except ModuleNotFoundError:
        scenario = None
    if hasattr(scenario, "start"):  # a lab that runs something else than nodes (lab 05: its pods)
        raise typer.Exit(scenario.start(lab, lab_files_dir(lab, variant_of(solution)), console, errors))
    raise_keyboard_interrupt_on_sigterm()
    cluster = Cluster(lab, files_dir=lab_files_dir(lab, variant_of(solution)), nodes=nodes)
    try:
        with console.status(f"starting lab {lab.code} with {nodes} node(s)..."):
            cluster.start()
        table = Table(title=f"Lab {lab.code}: {lab.title} ({variant_of(solution)} files)")
        for column in ("process", "address", "log"):
            table.add_column(column)
        for row in cluster.describe():
            table.add_row(*row)
        console.print(table)
        console.print(
            f"Open [bold]{cluster.url}[/bold] and log in as alice / workshop (acme) or carol / workshop (globex)."
        )
        console.print("Watch it from a second terminal: [bold]workshop top[/bold]. Press Ctrl-C to stop everything.")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        started = time.monotonic()
        cluster.stop()
    console.print(f"stopped every process in {time.monotonic() - started:.1f} s")


@app.command()
def top(
    run: str = typer.Option(None, "--run", help="the run to watch (default: the newest running lab)"),
    interval: float = typer.Option(1.0, "--interval", min=0.2, max=60, help="seconds between refreshes"),
    once: bool = typer.Option(False, "--once", help="print one snapshot and exit"),
    json_out: bool = typer.Option(False, "--json", help="print one snapshot as JSON and exit"),
) -> None:
    """A live view of the running lab (from `workshop start`): nodes, workers, beat lock, load balancer."""
    from workshop.top.view import watch

    raise typer.Exit(watch(console, errors, run=run, interval=interval, once=once, as_json=json_out))


@app.command()
def demo(lab_name: str = LAB_ARG, solution: bool = SOLUTION_OPT) -> None:
    """Reproduce the lab's failure (the evidence of its observe step)."""
    import importlib

    lab = resolve_lab(lab_name)
    scenario = importlib.import_module(f"workshop.scenarios.{lab.slug.split('-', 1)[1].replace('-', '_')}")
    scenario.demo(lab, lab_files_dir(lab, variant_of(solution)), console)


@app.command()
def sweep(
    lab_name: str = LAB_ARG,
    tasks: int = typer.Option(1000, "--tasks", min=10, help="renders per run (enough for every limit to be reached)"),
    repeats: int = typer.Option(3, "--repeats", min=1, max=10, help="runs per setting: their spread is the noise"),
    json_out: Path = typer.Option(None, "--json", help="write the rows as JSON here"),
    csv_out: Path = typer.Option(None, "--csv", help="write the rows as CSV here"),
) -> None:
    """Measure a trade-off over a setting's values (lab 03: --max-tasks-per-child)."""
    import csv
    import dataclasses
    import importlib
    import json

    lab = resolve_lab(lab_name)
    scenario = importlib.import_module(f"workshop.scenarios.{lab.slug.split('-', 1)[1].replace('-', '_')}")
    if not hasattr(scenario, "run_sweep"):
        raise BadInput(f"lab {lab.code} has no sweep (lab 03 has one)")
    with console.status("sweeping...") as status:
        rows = scenario.run_sweep(
            lab, tasks, repeats=repeats, progress=lambda value: status.update(f"sweeping: {value}...")
        )
    records = [dataclasses.asdict(row) for row in rows]
    table = Table(title=f"Lab {lab.code}: up to {tasks} tasks per run, {repeats} run(s) per setting")
    shown = scenario.sweep_display(rows) if hasattr(scenario, "sweep_display") else records
    for column in shown[0]:
        table.add_column(column.replace("_", " "))
    for record in shown:
        table.add_row(*("unlimited" if value is None else str(value) for value in record.values()))
    console.print(table)
    for note in getattr(scenario, "sweep_notes", lambda rows: [])(rows):
        console.print(f"  {note}")
    if json_out:
        json_out.write_text(json.dumps(records, indent=2))
    if csv_out:
        with open(csv_out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)


@app.command()
def rollout(
    lab_name: str = LAB_ARG,
    solution: bool = SOLUTION_OPT,
    replicas: int = typer.Option(None, "--replicas", min=1, max=8, help="pods (default: the Deployment's replicas)"),
    rate: float = typer.Option(120.0, "--rate", min=1, max=400, help="requests per second through the load balancer"),
    rollouts: int = typer.Option(1, "--rollouts", min=1, max=5, help="rolling updates, one after the other"),
    lb: str = typer.Option(
        "l4",
        "--lb",
        help="the way in: l4 (the Service as kube-proxy makes it, connection by connection, as on kind), "
        "alb (the ALB of k8s/aws: a new connection per request, registration after 8 s, its readiness gate), "
        "l7 (a proxy like the ALB with kube-proxy's lags)",
    ),
    registration_lag: float = typer.Option(
        None, "--registration-lag", min=0, max=120, help="seconds from a pod's containers Ready to its first request"
    ),
    deregistration_lag: float = typer.Option(
        None, "--deregistration-lag", min=0, max=120, help="seconds from a pod's termination to its last new request"
    ),
    json_out: Path = typer.Option(None, "--json", help="write every request and pod event here"),
) -> None:
    """Rehearse a rolling update of the lab's Deployment under load; exit 1 if any request failed."""
    from workshop.processes import raise_keyboard_interrupt_on_sigterm
    from workshop.rollout.lb import DEFAULT_LAGS, LB_KINDS, Lags
    from workshop.rollout.load import LoadShape
    from workshop.rollout.rehearsal import Rehearsal
    from workshop.rollout.report import report_rollouts

    lab = resolve_lab(lab_name)
    if lb not in LB_KINDS:
        raise BadInput(f"--lb must be one of {', '.join(LB_KINDS)}, not {lb!r}")
    defaults = DEFAULT_LAGS[lb]
    lags = Lags(
        defaults.registration if registration_lag is None else registration_lag,
        defaults.deregistration if deregistration_lag is None else deregistration_lag,
    )
    raise_keyboard_interrupt_on_sigterm()
    rehearsal = Rehearsal(  # a malformed manifest: ManifestError, exit 2, nothing started
        lab,
        lab_files_dir(lab, variant_of(solution)),
        replicas=replicas,
        shape=LoadShape(rate=rate),
        lags=lags,
        lb=lb,
    )
    try:
        with console.status(f"starting the services and {rehearsal.replicas} pods..."):
            rehearsal.__enter__()
        console.print(f"Watch it from a second terminal: [bold]workshop top[/bold] (run {rehearsal.run_dir.name}).")
        with console.status(f"{rollouts} rolling update(s) under {rate:g} requests/s..."):
            timeline = rehearsal.run(rollouts=rollouts)
    except KeyboardInterrupt:
        console.print("stopping...")
        raise
    finally:
        rehearsal.close()
    code = report_rollouts(timeline, console, json_out)
    console.print(f"logs: {rehearsal.logs_dir}")
    raise typer.Exit(code)


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
def solve(lab_name: str = LAB_ARG, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Show the diff to the solution, back up your files, then copy the solution in."""
    _replace_files(resolve_lab(lab_name), "solution", yes)


@app.command()
def reset(lab_name: str = LAB_ARG, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Show the diff to the starter files, back up your files, then restore the starter."""
    _replace_files(resolve_lab(lab_name), "starter", yes)


@app.command()
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


@app.command()
def doctor() -> None:
    """Check this machine: Python, every binary the labs run, ports, disk, optional docker/kind."""
    from workshop.doctor import run_doctor

    ok = run_doctor(console)
    raise typer.Exit(0 if ok else 1)


from workshop.kind.cli import app as kind_app  # noqa: E402  (lab 05 part 2: `workshop kind ...`)

app.add_typer(kind_app, name="kind")

from workshop.room.cli import app as room_app  # noqa: E402  (`workshop room ...`: the facilitator's live view)

app.add_typer(room_app, name="room")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
