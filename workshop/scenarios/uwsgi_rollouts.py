"""Lab 05: a rolling update of 3 cms pods under steady load, rehearsed locally with real
uWSGI and nginx processes (workshop.rollout). The failures, counted by class, are the
evidence of the observe step. `workshop start 05` runs the same pods without a rollout."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from workshop.curriculum import Lab
from workshop.processes import ServiceFailed, raise_keyboard_interrupt_on_sigterm
from workshop.rollout.manifest import ManifestError
from workshop.rollout.rehearsal import Rehearsal
from workshop.rollout.report import print_summary


def demo(lab: Lab, files_dir: Path, console: Console) -> None:
    raise_keyboard_interrupt_on_sigterm()
    with console.status("starting the services and 3 pods..."):
        rehearsal = Rehearsal(lab, files_dir).__enter__()
    try:
        with console.status("one rolling update under load..."):
            timeline = rehearsal.run(rollouts=1)
    finally:
        rehearsal.close()
    print_summary(timeline, console)
    console.print(f"Logs of every pod: {rehearsal.logs_dir}")


def start(lab: Lab, files_dir: Path, console: Console, errors: Console) -> int:
    """Your pods (your uwsgi.ini, nginx.conf and Deployment) behind the Service, no rollout:
    click around, watch them with `workshop top`; Ctrl-C stops everything. The exit code."""
    raise_keyboard_interrupt_on_sigterm()
    try:
        rehearsal = Rehearsal(lab, files_dir)
    except ManifestError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        with console.status(f"starting the services and {rehearsal.replicas} pods..."):
            rehearsal.__enter__()
        table = Table(title=f"Lab {lab.code}: your Deployment's pods ({files_dir.name})")
        for column in ("pod", "containers", "ports", "logs"):
            table.add_column(column)
        for pod in rehearsal.live_pods():
            table.add_row(
                pod.name,
                ", ".join(f"{c.name} ({c.stop_signal.name} to stop)" for c in rehearsal.deployment.containers),
                ", ".join(f"{inside} -> {outside}" for inside, outside in pod.layout.ports.items()),
                str(rehearsal.logs_dir / f"{pod.name}-*.log"),
            )
        console.print(table)
        console.print(
            f"Open [bold]{rehearsal.lb.url}[/bold] (the Service, as kube-proxy makes it) and log in as alice / "
            "workshop. Watch the pods, their probes and the load balancer from a second terminal: "
            "[bold]workshop top[/bold]. `workshop rollout 05` rolls them out under load. Ctrl-C stops everything."
        )
        while True:
            time.sleep(1)
    except ServiceFailed as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("stopping...")
        return 0
    finally:
        rehearsal.close()
