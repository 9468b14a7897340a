"""A snapshot as rich tables: Nodes, Celery workers and their pool children, Beat, Load balancer.
Rendering reads only the snapshot, so a recorded one renders the same anywhere."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from workshop.top.snapshot import Snapshot

STATE_STYLE = {"up": "green", "running": "green", "stopped": "red", "gone": "red", "no stats": "yellow"}


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB" if kib else "-"


def age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def state(text: str) -> str:
    style = STATE_STYLE.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


def nodes_table(snapshot: Snapshot) -> Table:
    table = Table(title="Nodes (uWSGI stats server; RSS by psutil)", title_justify="left")
    for column in ("node", "pid", "state", "requests", "busy", "RSS", "respawns"):
        table.add_column(column, justify="right" if column in ("requests", "busy", "RSS", "respawns") else "left")
    for node in snapshot.nodes:
        busy = sum(worker.status == "busy" for worker in node.workers)
        table.add_row(
            f"[bold]{node.name}[/bold]",
            str(node.pid or "-"),
            state(node.state),
            str(node.requests) if node.state == "up" else "-",
            f"{busy}/{len(node.workers)}" if node.workers else "-",
            mib(node.rss_kib),
            str(sum(worker.respawns for worker in node.workers)) if node.workers else "-",
        )
        for number, worker in enumerate(node.workers, start=1):
            table.add_row(
                f"  worker {number}",
                str(worker.pid or "-"),
                worker.status,
                str(worker.requests),
                "",
                mib(worker.rss_kib),
                str(worker.respawns),
                style="dim",
            )
    table.caption = "node RSS = master + workers; requests = sum over its workers"
    return table


def workers_table(snapshot: Snapshot) -> Table:
    # Celery reports tasks per worker; which pool child ran how many is not reported.
    table = Table(title="Celery workers and their pool children (psutil; tasks by inspect)", title_justify="left")
    for column in ("process", "pid", "state", "RSS", "age", "tasks (per worker, not per child)"):
        table.add_column(column, justify="right" if column in ("RSS", "age") or column.startswith("tasks") else "left")
    for worker in snapshot.workers:
        tasks = "?" if worker.tasks is None else str(worker.tasks)
        name = f"[bold]{worker.name}[/bold]"
        table.add_row(name, str(worker.pid), state(worker.state), mib(worker.rss_kib), age(worker.age_s), tasks)
        for child in sorted(worker.children, key=lambda child: child.pid):
            table.add_row("  child", str(child.pid), "", mib(child.rss_kib), age(child.age_s), "", style="dim")
    return table


def workers_note(snapshot: Snapshot) -> str | None:
    if snapshot.inspect_error:
        return f"tasks unknown: Celery's inspect failed ({snapshot.inspect_error})"
    if any(worker.tasks is None for worker in snapshot.workers if worker.state == "running"):
        return "?: the worker did not answer inspect within 1 s"
    return None


def lock_text(snapshot: Snapshot) -> str:
    if snapshot.redis_error:
        return f"lock unknown: Redis did not answer ({snapshot.redis_error})"
    if not snapshot.locks:
        return "no RedBeat lock in Redis: no beat holds it (or beat does not use RedBeat)"
    lines = []
    for lock in snapshot.locks:
        ttl = f"ttl {lock.ttl_s:g} s" if lock.ttl_s is not None else "no ttl"
        holder = (
            f", by {lock.holder} (the beat run that made its token)"
            if lock.holder
            else " (its token matches no beat run in the logs)"
        )
        lines.append(f"{lock.key} held ({ttl}){holder}")
    return "\n".join(lines)


def beat_table(snapshot: Snapshot) -> Table:
    table = Table(title="Beat (RedBeat's lock in Redis; its holder named by the lock's token)", title_justify="left")
    for column in ("beat", "pid", "state", "acquired the lock (its log)", "lock"):
        table.add_column(column)
    holder = snapshot.locks[0].holder if snapshot.locks else None
    for beat in snapshot.beats:
        if beat.state != "running":
            lock = "-"
        elif snapshot.redis_error:
            lock = "?"
        else:
            lock = "[green]holds it[/green]" if beat.name == holder else "waits"
        table.add_row(f"[bold]{beat.name}[/bold]", str(beat.pid), state(beat.state), beat.acquired_at or "-", lock)
    return table


def load_balancer_table(snapshot: Snapshot) -> Table:
    lb = snapshot.load_balancer
    table = Table(title=f"Load balancer {lb.url} (upstreams of its nginx conf)", title_justify="left")
    for column in ("upstream", "node", "state", f"served of the last {lb.recent} requests"):
        table.add_column(column, justify="right" if column.startswith("served") else "left")
    for upstream in lb.upstreams:
        table.add_row(
            upstream.address,
            upstream.node or "-",
            "[green]up[/green]" if upstream.up else "[red]down[/red] (refuses connections)",
            "-" if upstream.served is None else str(upstream.served),
        )
    return table


POD_STYLE = {"ready": "green", "terminating": "red", "gone": "dim", "starting": "yellow"}


def pods_table(snapshot: Snapshot) -> Table:
    table = Table(title="Pods (the rehearsal's kubelet: probes, readiness, gates)", title_justify="left")
    for column in ("pod", "state", "container", "ready", "last probe", "stop signal", "requests", "busy", "RSS"):
        table.add_column(column, justify="right" if column in ("requests", "busy", "RSS") else "left")
    for pod in snapshot.pods:
        style = POD_STYLE.get(pod.state, "yellow")
        gates = "".join(f"\n  gate {name.split('/')[0]}: {value}" for name, value in pod.gates.items())
        registered = "registered" if pod.registered else "not registered"
        first = True
        for container in pod.containers:
            uwsgi = pod.uwsgi if container.name == "uwsgi" else None
            up = uwsgi is not None and uwsgi.state == "up"
            table.add_row(
                f"[bold]{pod.name}[/bold]" if first else "",
                f"[{style}]{pod.state}[/{style}]\n{registered}{gates}" if first else "",
                container.name,
                ("[green]yes[/green]" if container.ready else "[red]no[/red]")
                + ("" if container.running else " (exited)"),
                container.probe,
                container.stop_signal,
                str(uwsgi.requests) if up else "-",
                f"{sum(w.status == 'busy' for w in uwsgi.workers)}/{len(uwsgi.workers)}" if up else "-",
                mib(uwsgi.rss_kib) if up else "-",
            )
            first = False
    table.caption = "requests, busy, RSS: uWSGI's stats server (master + workers)"
    return table


def service_table(snapshot: Snapshot) -> Table:
    service = snapshot.service or {}
    kinds = {"l4": "the Service, as kube-proxy (per connection)", "alb": "the ALB", "l7": "a proxy (per request)"}
    table = Table(
        title=f"Load balancer: {kinds.get(service.get('kind'), service.get('kind'))}; registration after "
        f"{service.get('registration_lag')} s, deregistration after {service.get('deregistration_lag')} s",
        title_justify="left",
    )
    for column in ("pod", "registered", "open connections", "next change"):
        table.add_column(column, justify="right" if column == "open connections" else "left")
    pending = {}
    for change in service.get("pending", []):
        pending.setdefault(change["pod"], f"{change['action']} in {change['in_s']:g} s")
    names = [pod.name for pod in snapshot.pods if pod.state != "gone"]
    for name in names + sorted(set(service.get("registered", {})) - set(names)):
        registered = name in service.get("registered", {})
        connections = service.get("open_connections", {}).get(name)
        table.add_row(
            name,
            "[green]yes[/green]" if registered else "no",
            "-" if connections is None else str(connections),
            pending.get(name, ""),
        )
    return table


def render(snapshot: Snapshot) -> Group:
    parts = [Text(f"Lab {snapshot.lab}: {snapshot.title}   run {snapshot.run}   at {snapshot.taken_at}", style="bold")]
    if snapshot.nodes:
        parts.append(nodes_table(snapshot))
    if snapshot.workers:
        parts.append(workers_table(snapshot))
        if note := workers_note(snapshot):
            parts.append(Text(note, style="yellow"))
    if snapshot.beats:
        parts += [beat_table(snapshot), Text(lock_text(snapshot))]
    if snapshot.load_balancer:
        parts.append(load_balancer_table(snapshot))
    if snapshot.pods:
        parts += [pods_table(snapshot), service_table(snapshot)]
    return Group(*parts)
