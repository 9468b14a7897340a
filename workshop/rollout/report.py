"""The rehearsal's summary, as the CLI and the demo print it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from workshop.rollout.timeline import Timeline

LB_NAMES = {
    "l4": "the Service as kube-proxy makes it (connection by connection)",
    "alb": "the ALB (a new connection per request)",
    "l7": "a proxy (a new connection per request)",
}
STEP_OF_CLASS = {
    "in-flight-at-shutdown": "2: a graceful stop (and the sidecar's preStop)",
    "after-termination": "3: master FIFO + preStop, the sidecar stopping first",
    "not-serving-yet": "4: readiness probes that ask the app",
    "no-target": "6: the readiness gate behind the ALB",
    "other": "-",
}


def print_summary(timeline: Timeline, console: Console) -> dict:
    summary = timeline.summary()
    settings = timeline.settings
    way_in = LB_NAMES.get(settings.get("load_balancer"), "")
    lags = (
        f"; way in: {way_in}, registration after {settings.get('registration_lag')} s, deregistration after "
        f"{settings.get('deregistration_lag')} s"
        if "registration_lag" in settings
        else ""  # a real cluster: the lags are whatever kube-proxy takes
    )
    signals = settings.get("stop_signals")
    stop = f"; stop signals {signals}" if signals else ""
    console.print(
        f"{settings.get('replicas')} replicas, maxSurge {settings.get('max_surge')}, maxUnavailable "
        f"{settings.get('max_unavailable')}, grace {settings.get('grace_seconds')} s{stop}{lags}"
    )
    console.print("Each rolling update: the requests due from its start until its last old pod exited.")
    table = Table(title="Rolling updates under load")
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
        f"The whole run ({summary['run_seconds']:.0f} s: the load before, during and after the rolling updates): "
        f"requests {summary['requests']}, ok {summary['ok']}, failed {summary['failed']} (5xx "
        f"{summary['http_5xx']}, connection errors {summary['connection_errors']}); latency from when each "
        f"request was due: p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms"
    )
    if summary["late_requests"]:
        console.print(
            f"[yellow]{summary['late_requests']} requests went out late (every sender was busy): "
            "their wait is in the latencies[/yellow]"
        )
    if summary["retried_on_closed_keep_alive"]:
        console.print(
            f"keep-alive connections the server had closed, reopened and retried once (as a browser does): "
            f"{summary['retried_on_closed_keep_alive']}"
        )
    console.print(
        f"slow requests in flight when their pod stopped taking requests: {summary['slow_in_flight_at_shutdown']}, "
        f"of which ok: {summary['slow_in_flight_at_shutdown_ok']}"
    )
    if summary["failed"]:
        classes = Table(title="Failed requests of the whole run, by class")
        classes.add_column("class")
        classes.add_column("requests", justify="right")
        classes.add_column("the step that removes it")
        for name, count in summary["failures_by_class"].items():
            if count:
                classes.add_row(name, str(count), STEP_OF_CLASS[name])
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
