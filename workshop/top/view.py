"""`workshop top`: find the running lab, then print one snapshot or refresh a live view."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.live import Live

from workshop.runs import NoRunningCluster, find_running
from workshop.top.collect import Collector
from workshop.top.render import render


def watch(console: Console, errors: Console, run: str | None, interval: float, once: bool, as_json: bool) -> int:
    """The exit code: 0, or 2 when there is no running lab to watch."""
    try:
        cluster = find_running(run)
    except NoRunningCluster as exc:
        errors.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return 2
    collector = Collector(cluster)
    try:
        if as_json:
            print(json.dumps(collector.collect().to_dict(), indent=2))  # plain: for scripts, never wrapped
            return 0
        if once:
            console.print(render(collector.collect()))
            return 0
        with Live(render(collector.collect()), console=console, auto_refresh=False) as live:
            while collector.still_running():
                time.sleep(interval)
                live.update(render(collector.collect()), refresh=True)
        console.print(f"lab {cluster.lab} ({cluster.run}) has stopped.")
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        collector.close()
