"""Lab 03: a Celery worker running a task whose vendor library leaks memory.

Every render_screen_preview task returns the pid of the child that ran it and that
child's RSS afterwards, so memory per child over tasks comes from the tasks
themselves: no sampling, nothing missed.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psutil
from celery import Celery

from workshop.celery_client import celery_client
from workshop.processes import ManagedProcess
from workshop.topology import Cluster

RENDER = "cms.signage.tasks.render_screen_preview"
SMALL = (360, 360)  # a screen thumbnail: the library leaks 506 KiB per render
LARGE = (1920, 1080)  # a full-HD preview: 8100 KiB per render
LIMITS = (1, 10, 100, 400, None)  # --max-tasks-per-child values of the sweep; None: unlimited


def leak_kib(size: tuple[int, int]) -> int:
    width, height = size
    return width * height * 4 // 1024


@dataclass
class Batch:
    """A batch of renders: what each task returned, in the order they were sent."""

    results: list[dict] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def tasks(self) -> int:
        return sum(self.states.values())

    @property
    def succeeded(self) -> int:
        return self.states["SUCCESS"]

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.seconds if self.seconds else 0.0

    @property
    def children(self) -> set[int]:
        return {result["pid"] for result in self.results}

    def peak_rss_kib_by_child(self) -> dict[int, int]:
        peaks: dict[int, int] = defaultdict(int)
        for result in self.results:
            peaks[result["pid"]] = max(peaks[result["pid"]], result["rss_kib"])
        return dict(peaks)

    @property
    def peak_rss_kib(self) -> int:
        return max(self.peak_rss_kib_by_child().values(), default=0)

    def tasks_by_child(self) -> Counter[int]:
        return Counter(result["pid"] for result in self.results)


def run_batch(app: Celery, tasks: int, size: tuple[int, int] = SMALL, timeout: float = 600) -> Batch:
    """Send `tasks` renders at once and wait for every result."""
    width, height = size
    batch = Batch()
    started = time.perf_counter()
    pending = [
        app.send_task(RENDER, kwargs={"layout": f"screen-{i}", "width": width, "height": height}) for i in range(tasks)
    ]
    for result in pending:
        value = result.get(timeout=timeout, propagate=False)
        batch.states[result.state] += 1
        if result.state == "SUCCESS":
            batch.results.append(value)
    batch.seconds = time.perf_counter() - started
    return batch


def children_rss_kib(worker: ManagedProcess) -> dict[int, int]:
    """The RSS of each pool child of a worker, now."""
    return {child.pid: child.memory_info().rss // 1024 for child in psutil.Process(worker.pid).children()}


@dataclass
class Kill:
    killed_pid: int
    state: str  # of the task after the kill: SUCCESS if it was delivered again
    ran_on: int | None  # the child that finally ran it
    error: str = ""


def kill_mid_task(app: Celery, seconds: float = 4, timeout: float = 60) -> Kill:
    """Start a slow render, SIGKILL the child running it (as the OOM killer would), and
    wait to see what becomes of the task."""
    result = app.send_task(RENDER, kwargs={"layout": "slow", "seconds": seconds})
    deadline = time.monotonic() + 30
    pid = None
    while pid is None and time.monotonic() < deadline:
        for tasks in (app.control.inspect(timeout=1).active() or {}).values():
            pid = next((task["worker_pid"] for task in tasks if task["id"] == result.id), pid)
    if pid is None:
        raise RuntimeError("the slow task never showed up as active on the worker")
    os.kill(pid, signal.SIGKILL)
    try:
        value = result.get(timeout=timeout, propagate=False)
    except TimeoutError:
        return Kill(pid, result.state, None, f"no result within {timeout:g} s")
    if result.state == "SUCCESS":
        return Kill(pid, "SUCCESS", value["pid"])
    return Kill(pid, result.state, None, repr(value))


# -- the trade-off sweep ------------------------------------------------------------------


@dataclass
class SweepRow:
    max_tasks_per_child: int | None
    tasks: int
    succeeded: int
    seconds: float
    tasks_per_second: float
    children: int
    peak_child_rss_mib: float


def assert_kill_loses_no_task(app: Celery, setting, failure, **where) -> None:
    """The check of lab 03's last guarantee, for lab 03 and the later labs that re-check it:
    a pool child SIGKILLed in the middle of a render loses no task."""
    kill = kill_mid_task(app)
    acks_late = kill.state == "SUCCESS" or setting("CELERY_TASK_ACKS_LATE")
    assert kill.state == "SUCCESS" and kill.ran_on != kill.killed_pid, failure(
        "no-lost-tasks",
        f"child {kill.killed_pid} was SIGKILLed in the middle of a render; the task then ended "
        f"{kill.state} {kill.error}".rstrip()
        + f" (CELERY_TASK_ACKS_LATE is {acks_late}).",
        # acks_late alone still loses the task: the other half is reject_on_worker_lost
        hint=2 if acks_late else 1,
        **where,
    )


def sweep(cluster: Cluster, tasks: int, limits=LIMITS, progress=None) -> list[SweepRow]:
    """For each --max-tasks-per-child value, restart the worker with it and run `tasks`."""
    app = celery_client(cluster.redis.url)
    rows = []
    for limit in limits:
        if progress:
            progress(limit)
        extra = (f"--max-tasks-per-child={limit}",) if limit else ()
        cluster.start_procfile_process("worker", extra_args=extra)
        batch = run_batch(app, tasks)
        rows.append(
            SweepRow(
                max_tasks_per_child=limit,
                tasks=batch.tasks,
                succeeded=batch.succeeded,
                seconds=round(batch.seconds, 2),
                tasks_per_second=round(batch.tasks_per_second, 1),
                children=len(batch.children),
                peak_child_rss_mib=round(batch.peak_rss_kib / 1024, 1),
            )
        )
    cluster.stop_procfile_process("worker")
    return rows


def run_sweep(lab, tasks: int, limits=LIMITS, progress=None) -> list[SweepRow]:
    """The sweep on the lab's starter worker line (no limits of its own), with no web nodes."""
    import shutil

    from workshop.layers import lab_files_dir

    starter = lab_files_dir(lab, "starter")
    try:
        with Cluster(lab, files_dir=starter, nodes=0, procfile_processes=()) as cluster:
            return sweep(cluster, tasks, limits, progress)
    finally:
        shutil.rmtree(starter, ignore_errors=True)


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
