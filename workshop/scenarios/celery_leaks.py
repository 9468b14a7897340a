"""Lab 03: a Celery worker running a task whose vendor library leaks memory, as the `workshop`
command shows it: `workshop sweep 03`, the trade-off of --max-tasks-per-child over its values,
and `workshop demo 03`, each child's memory live while renders run.

The renders are in celery_renders, the checks' worker and its task events in celery_workers,
and what becomes of a task whose process dies in celery_task_loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from workshop.celery_client import celery_client
from workshop.processes import ManagedProcess
from workshop.scenarios.celery_renders import SMALL, Batch, children_rss_kib, leak_kib, run_batch
from workshop.topology import Cluster

# -- the trade-off sweep ------------------------------------------------------------------

LIMITS = (1, 10, 100, 400, None)  # --max-tasks-per-child values of the sweep; None: unlimited
SWEEP_TASKS = 1000  # renders per run: more than 2 children x 400, so that every limit is reached
SWEEP_REPEATS = 3  # runs per limit, interleaved: their spread is the noise any difference must beat
RENDERS_PER_LIMIT = 50  # a limit N needs no more than 50 x N renders for a steady rate (1: 50 forks)


@dataclass
class SweepRow:
    max_tasks_per_child: int | None
    tasks: int  # renders per run
    repeats: int
    succeeded: int  # renders that succeeded, all runs together
    tasks_per_second: float  # the median run's
    tasks_per_second_min: float
    tasks_per_second_max: float
    children: int  # pool children that served renders, in the median run
    peak_child_rss_mib: float  # the largest child of every run
    recycled: bool  # every run replaced children: the limit was reached (never for unlimited)


def renders_for(limit: int | None, tasks: int) -> int:
    return tasks if limit is None else min(tasks, RENDERS_PER_LIMIT * limit)


def sweep(cluster: Cluster, tasks: int, limits=LIMITS, repeats: int = SWEEP_REPEATS, progress=None) -> list[SweepRow]:
    """For each --max-tasks-per-child value, restart the worker with it and run its renders;
    `repeats` rounds over every value (so that a drifting load touches them all alike)."""
    app = celery_client(cluster.redis.url)
    batches: dict[int | None, list[Batch]] = {limit: [] for limit in limits}
    pool_size = 0
    for round_number in range(1, repeats + 1):
        for limit in limits:
            if progress:
                progress(f"{'unlimited' if limit is None else limit} (run {round_number} of {repeats})")
            extra = (f"--max-tasks-per-child={limit}",) if limit else ()
            worker = cluster.start_procfile_process(
                "worker", extra_args=(*extra, "--without-mingle", "--without-gossip")
            )
            pool_size = pool_size or len(children_rss_kib(worker))
            batches[limit].append(run_batch(app, renders_for(limit, tasks)))
    cluster.stop_procfile_process("worker")
    rows = []
    for limit, runs in batches.items():
        by_rate = sorted(runs, key=lambda batch: batch.tasks_per_second)
        median = by_rate[len(by_rate) // 2]
        rows.append(
            SweepRow(
                max_tasks_per_child=limit,
                tasks=renders_for(limit, tasks),
                repeats=len(runs),
                succeeded=sum(batch.succeeded for batch in runs),
                tasks_per_second=round(median.tasks_per_second, 1),
                tasks_per_second_min=round(by_rate[0].tasks_per_second, 1),
                tasks_per_second_max=round(by_rate[-1].tasks_per_second, 1),
                children=len(median.children),
                peak_child_rss_mib=round(max(batch.peak_rss_kib for batch in runs) / 1024, 1),
                recycled=all(len(batch.children) > pool_size for batch in runs),
            )
        )
    return rows


def run_sweep(
    lab, tasks: int = SWEEP_TASKS, limits=LIMITS, repeats: int = SWEEP_REPEATS, progress=None
) -> list[SweepRow]:
    """The sweep on the lab's starter worker line (no limits of its own), with no web nodes."""
    import shutil

    from workshop.layers import lab_files_dir

    starter = lab_files_dir(lab, "starter")
    try:
        with Cluster(lab, files_dir=starter, nodes=0, procfile_processes=()) as cluster:
            return sweep(cluster, tasks, limits, repeats, progress)
    finally:
        shutil.rmtree(starter, ignore_errors=True)


def sweep_display(rows: list[SweepRow]) -> list[dict[str, str]]:
    """The rows as `workshop sweep` prints them: the spread of the runs beside the median."""
    return [
        {
            "--max-tasks-per-child": "unlimited" if row.max_tasks_per_child is None else str(row.max_tasks_per_child),
            "renders per run": str(row.tasks),
            "runs": str(row.repeats),
            "tasks/s (median)": f"{row.tasks_per_second:.0f}",
            "slowest-fastest": f"{row.tasks_per_second_min:.0f}-{row.tasks_per_second_max:.0f}",
            "children": str(row.children),
            "peak child RSS": f"{row.peak_child_rss_mib:.0f} MiB",
            "limit reached": "-" if row.max_tasks_per_child is None else ("yes" if row.recycled else "NO"),
        }
        for row in rows
    ]


def sweep_notes(rows: list[SweepRow]) -> list[str]:
    """What a reader must know before comparing the rows."""
    notes = [
        f"{row.max_tasks_per_child}: no child reached the limit in a run of {row.tasks} renders: "
        "this row measured the same worker as unlimited (raise --tasks)"
        for row in rows
        if row.max_tasks_per_child is not None and not row.recycled
    ]
    if any(row.repeats > 1 for row in rows):
        notes.append("tasks/s: the median run, and the slowest and fastest; a difference inside that spread is noise")
    return notes


# -- workshop demo 03 -----------------------------------------------------------------------


def live_children_table(worker: ManagedProcess, started: dict[int, int]):
    """A table of the worker's children right now: RSS, and growth since first seen."""
    from rich.table import Table

    table = Table(title="worker children, live (psutil)")
    for column in ("child pid", "RSS now", "grown since first seen"):
        table.add_column(column)
    for pid, kib in sorted(children_rss_kib(worker).items()):
        first = started.setdefault(pid, kib)
        table.add_row(str(pid), f"{kib / 1024:.0f} MiB", f"{(kib - first) / 1024:+.0f} MiB")
    return table


def demo(lab, files_dir, console, tasks: int = 400) -> None:
    """`workshop demo 03`: run renders on the lab's worker, watching each child's memory live."""
    import threading

    from rich.live import Live
    from rich.table import Table

    with Cluster(lab, files_dir=files_dir, nodes=0) as cluster:
        worker = cluster.procfile_runs["worker"]
        baseline = children_rss_kib(worker)
        outcome: list[Batch] = []
        runner = threading.Thread(target=lambda: outcome.append(run_batch(celery_client(cluster.redis.url), tasks)))
        runner.start()
        first_seen: dict[int, int] = dict(baseline)
        with Live(live_children_table(worker, first_seen), console=console, refresh_per_second=4) as live:
            while runner.is_alive():
                runner.join(0.25)
                live.update(live_children_table(worker, first_seen))
        batch = outcome[0]
    console.print()
    table = Table(title=f"{batch.succeeded} of {batch.tasks} renders succeeded, {batch.tasks_per_second:.0f} tasks/s")
    for column in ("child pid", "tasks", "RSS after its last task", "growth per task"):
        table.add_column(column)
    first_rss = {}
    for result in batch.results:
        first_rss.setdefault(result["pid"], result["rss_kib"] - result["leaked_kib"])
    counts = batch.tasks_by_child()
    for pid, peak in sorted(batch.peak_rss_kib_by_child().items()):
        growth = (peak - first_rss[pid]) / max(counts[pid] - 1, 1)
        table.add_row(str(pid), str(counts[pid]), f"{peak / 1024:.0f} MiB", f"{growth:.0f} KiB")
    console.print(table)
    console.print(
        f"  children at start: {', '.join(f'{kib / 1024:.0f} MiB' for kib in baseline.values())}; "
        f"the library leaks {leak_kib(SMALL)} KiB per render, and nothing gives it back until the child exits."
    )
