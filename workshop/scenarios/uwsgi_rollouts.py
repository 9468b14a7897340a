"""Lab 05: a rolling update of 3 cms pods under steady load, rehearsed locally with real
uWSGI and nginx processes (workshop.rollout). The failures, counted by class, are the
evidence of the observe step."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from workshop.curriculum import Lab
from workshop.processes import raise_keyboard_interrupt_on_sigterm
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
