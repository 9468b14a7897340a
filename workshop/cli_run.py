"""The `workshop` commands that run a lab's system: start, top, demo, sweep, rollout;
and doctor, which checks this machine can run them."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from workshop.cli_common import LAB_ARG, SOLUTION_OPT, console, errors, resolve_lab, variant_of
from workshop.errors import BadInput
from workshop.layers import lab_files_dir


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


def top(
    run: str = typer.Option(None, "--run", help="the run to watch (default: the newest running lab)"),
    interval: float = typer.Option(1.0, "--interval", min=0.2, max=60, help="seconds between refreshes"),
    once: bool = typer.Option(False, "--once", help="print one snapshot and exit"),
    json_out: bool = typer.Option(False, "--json", help="print one snapshot as JSON and exit"),
) -> None:
    """A live view of the running lab (from `workshop start`): nodes, workers, beat lock, load balancer."""
    from workshop.top.view import watch

    raise typer.Exit(watch(console, errors, run=run, interval=interval, once=once, as_json=json_out))


def demo(lab_name: str = LAB_ARG, solution: bool = SOLUTION_OPT) -> None:
    """Reproduce the lab's failure (the evidence of its observe step)."""
    import importlib

    lab = resolve_lab(lab_name)
    scenario = importlib.import_module(f"workshop.scenarios.{lab.slug.split('-', 1)[1].replace('-', '_')}")
    scenario.demo(lab, lab_files_dir(lab, variant_of(solution)), console)


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


def doctor() -> None:
    """Check this machine: Python, every binary the labs run, ports, disk, optional docker/kind."""
    from workshop.doctor import run_doctor

    ok = run_doctor(console)
    raise typer.Exit(0 if ok else 1)
