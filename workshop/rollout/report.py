"""The rehearsal's summary, as the CLI and the demo print it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from workshop.rollout.timeline import Timeline


def print_summary(timeline: Timeline, console: Console) -> dict:
    summary = timeline.summary()
    settings = timeline.settings
    lags = (
        f"; LB lags: registration {settings.get('registration_lag')} s, deregistration "
        f"{settings.get('deregistration_lag')} s"
        if "registration_lag" in settings
        else ""  # a real cluster: the lags are whatever kube-proxy takes
    )
    console.print(
        f"{settings.get('replicas')} replicas, maxSurge {settings.get('max_surge')}, maxUnavailable "
        f"{settings.get('max_unavailable')}, grace {settings.get('grace_seconds')} s{lags}"
    )
    table = Table(title="Rolling update under load")
    for column in ("rollout", "seconds", "requests", "rate /s", "failed"):
        table.add_column(column, justify="right")
    for number, rollout in enumerate(summary["rollouts"], start=1):
        colour = "red" if rollout["failed"] else "green"
        table.add_row(
            str(number),
            f"{rollout['seconds']:.1f}",
            str(rollout["requests"]),
            f"{rollout['rate']:.0f}",
            f"[{colour}]{rollout['failed']}[/{colour}]",
        )
    console.print(table)
    console.print(
        f"requests {summary['requests']}, ok {summary['ok']}, 5xx {summary['http_5xx']}, connection errors "
        f"{summary['connection_errors']}; p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms"
    )
    console.print(
        f"slow requests in flight when uWSGI was told to stop: {summary['slow_in_flight_at_shutdown']}, "
        f"of which ok: {summary['slow_in_flight_at_shutdown_ok']}"
    )
    if summary["failed"]:
        classes = Table(title="Failed requests by class")
        classes.add_column("class")
        classes.add_column("requests", justify="right")
        classes.add_column("the step that removes it")
        steps = {
            "in-flight-at-shutdown": "2: graceful SIGTERM (and the sidecar's preStop)",
            "after-termination": "3: master FIFO + preStop",
            "not-serving-yet": "4: a readiness probe on each container",
            "other": "-",
        }
        for name, count in summary["failures_by_class"].items():
            if count:
                classes.add_row(name, str(count), steps[name])
        console.print(classes)
    else:
        console.print("[green]zero failed requests[/green]")
    return summary


def print_events(timeline: Timeline, console: Console) -> None:
    """Every pod event of the run, in time order (the kind path: what the watch saw)."""
    table = Table(title="Pod events")
    for column in ("time (s)", "pod", "event", "detail"):
        table.add_column(column, justify="right" if column.startswith("time") else "left")
    for event in sorted(timeline.events, key=lambda e: e.t):
        table.add_row(f"{event.t:.2f}", event.pod, event.event, event.detail)
    console.print(table)


def report_rollouts(timeline: Timeline, console: Console, json_out: Path | None, pod_events: bool = False) -> int:
    """The summary (and the pod events), the timeline as JSON if asked; the exit code:
    1 if any request failed."""
    summary = print_summary(timeline, console)
    if pod_events:
        print_events(timeline, console)
    if json_out:
        timeline.write_json(json_out)
        console.print(f"timeline written to {json_out}")
    return 1 if summary["failed"] else 0
