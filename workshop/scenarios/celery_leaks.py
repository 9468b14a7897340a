"""Lab 03: a Celery worker running a task whose vendor library leaks memory.

Every render_screen_preview task returns the pid of the child that ran it and that
child's RSS afterwards, so memory per child over tasks comes from the tasks
themselves: no sampling, nothing missed.

What happens to a task when its process dies is watched through Celery's own task
events (the worker runs with --task-events, as a monitor like Flower needs): every run
of a task is one task-started event, whichever process and whichever delivery it was.
"""

from __future__ import annotations

import ast
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psutil
import redis
from celery import Celery

from workshop.celery_client import celery_client
from workshop.processes import ManagedProcess
from workshop.topology import Cluster

RENDER = "cms.signage.tasks.render_screen_preview"
SMALL = (360, 360)  # a screen thumbnail: the library leaks 506 KiB per render
LARGE = (1920, 1080)  # a full-HD preview: 8100 KiB per render
HUGE = (20000, 20000)  # a partner's absurd upload: a frame over the worker's memory limit kills its process
LIMITS = (1, 10, 100, 400, None)  # --max-tasks-per-child values of the sweep; None: unlimited
SLOW_SECONDS = 2  # the longest render of this lab: the slow one, caught mid-task by the kills

# The checks' worker: the Procfile's line, plus task events (to watch every run of a task)
# and no start-up sync with other workers (mingle, gossip: there are none to sync with).
WATCH_FLAGS = ("--task-events", "--without-mingle", "--without-gossip")


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


def kill_mid_task(app: Celery, seconds: float = SLOW_SECONDS, timeout: float = 60) -> Kill:
    """Start a slow render, SIGKILL the child running it (as the OOM killer would), and
    wait to see what becomes of the task."""
    result = app.send_task(RENDER, kwargs={"layout": "slow", "seconds": seconds})
    deadline = time.monotonic() + 30
    pid = None
    while pid is None and time.monotonic() < deadline:
        # limit=1: the answer comes as soon as a worker replies, not after the whole timeout
        for tasks in (app.control.inspect(timeout=1, limit=1).active() or {}).values():
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


def assert_kill_loses_no_task(app: Celery, setting, failure, **where) -> None:
    """The check of lab 03's guarantee, for lab 03 and the later labs that re-check it:
    a pool child SIGKILLed in the middle of a render loses no task."""
    kill = kill_mid_task(app)
    if kill.state == "SUCCESS" and kill.ran_on != kill.killed_pid:
        return
    acks_late, reject = bool(setting("CELERY_TASK_ACKS_LATE")), bool(setting("CELERY_TASK_REJECT_ON_WORKER_LOST"))
    if acks_late:
        hint = 1  # acknowledged late, yet failed: nothing gives the message back
    else:
        hint = 2 if reject else 0  # reject_on_worker_lost only acts on late acknowledgements
    raise AssertionError(
        failure(
            "no-lost-tasks",
            f"child {kill.killed_pid} was SIGKILLed in the middle of a render; the task then ended "
            f"{kill.state} {kill.error}".rstrip()
            + f" (CELERY_TASK_ACKS_LATE is {acks_late}, CELERY_TASK_REJECT_ON_WORKER_LOST is {reject}).",
            hint=hint,
            **where,
        )
    )


# -- the checks' workers and what they see -------------------------------------------------


def start_worker(cluster: Cluster, extra_args: tuple[str, ...] = ()) -> ManagedProcess:
    """The Procfile's worker, watched (task events on), as the checks run it."""
    return cluster.start_procfile_process("worker", extra_args=(*extra_args, *WATCH_FLAGS))


def broker(cluster: Cluster) -> redis.Redis:
    return redis.Redis.from_url(cluster.redis.url)


def discard_worker(cluster: Cluster) -> None:
    """SIGKILL the worker, and empty the broker of what it left (queued, reserved and
    unacknowledged messages: a poison message still looping, a lost task): nothing of one
    check reaches the next."""
    process = cluster.procfile_runs.get("worker")
    if process:
        process.kill(signal.SIGKILL)
    cluster.stop_procfile_process("worker")
    client = broker(cluster)
    queues = [key for key in client.scan_iter(match="celery*") if client.type(key) == b"list"]
    client.delete("unacked", "unacked_index", "unacked_mutex", *queues)


class TaskEvents:
    """Celery's events, received as they happen, in a thread of their own (a monitor, as
    Flower is): `runs(task_id)` are its task-started events, one per run of the task."""

    def __init__(self, app: Celery):
        self.app = app
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self._receiver = None
        self._thread = threading.Thread(target=self._capture, name="task-events", daemon=True)

    def _capture(self) -> None:
        try:
            with self.app.connection_for_read() as connection:
                self._receiver = self.app.events.Receiver(connection, handlers={"*": self._on_event})
                self._receiver.capture(limit=None, timeout=None, wakeup=True)
        except Exception:
            if not (self._receiver and self._receiver.should_stop):
                raise  # stopped, the broker may be gone already (the cluster stops right after a check)

    def _on_event(self, event: dict) -> None:
        with self._changed:
            self.events.append({**event, "seen_at": time.monotonic()})
            self._changed.notify_all()

    def __enter__(self) -> "TaskEvents":
        """Start receiving, and return once the worker's events arrive (it is asked for a
        heartbeat until one does)."""
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.wait(lambda events: bool(events), timeout=0.3):
            if time.monotonic() > deadline:
                raise RuntimeError("no event from the worker within 20 s: does it run with --task-events?")
            self.app.control.heartbeat()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._receiver:
            self._receiver.should_stop = True  # the thread ends within a second, on its own

    def wait(self, predicate, timeout: float) -> bool:
        """Wait until predicate(events) holds (True), or `timeout` seconds (False)."""
        with self._changed:
            return bool(self._changed.wait_for(lambda: predicate(self.events), timeout))

    def of(self, task_id: str, *types: str, since: float = 0.0) -> list[dict]:
        with self._changed:
            return [
                event
                for event in self.events
                if event.get("uuid") == task_id and event["type"] in types and event["seen_at"] >= since
            ]

    def runs(self, task_id: str, since: float = 0.0) -> list[dict]:
        return self.of(task_id, "task-started", since=since)

    def ended(self, task_id: str) -> str | None:
        """SUCCESS or FAILURE once the task has ended for good, else None."""
        final = self.of(task_id, "task-succeeded", "task-failed")
        return None if not final else ("SUCCESS" if final[-1]["type"] == "task-succeeded" else "FAILURE")


def celery_values(cluster: Cluster, *names: str) -> dict:
    """Settings as the worker's processes see them (literals; None when unset), in one go:
    only to tell the learner what their files say."""
    code = (
        "from django.conf import settings; "
        f"print('SETTINGS', repr({{name: getattr(settings, name, None) for name in {list(names)!r}}}))"
    )
    return ast.literal_eval(cluster.manage("shell", "-c", code).split("SETTINGS", 1)[1].strip())


def worker_limit(cluster: Cluster, flag: str, setting_name: str) -> tuple[int | None, str]:
    """A child limit as the worker gets it: the flag on its command line wins over the
    setting. (value or None, where it came from)."""
    for arg in cluster.procfile()["worker"]:
        if arg.startswith(f"--{flag}="):
            return int(arg.split("=", 1)[1]), f"--{flag}={arg.split('=', 1)[1]} on the worker line"
    value = celery_values(cluster, setting_name)[setting_name]
    return (int(value), f"{setting_name} = {value}") if value else (None, f"no --{flag} and no {setting_name}")


# -- a poison message: a task that kills every child that runs it --------------------------

MAX_POISON_RUNS = 5  # more runs than this, and the check calls it a loop
POISON_PATIENCE = 45  # seconds: a bound on the wait, never reached by a bounded policy


@dataclass
class Poison:
    runs: int  # task-started events: each run killed its child
    state: str | None  # SUCCESS / FAILURE once it ended for good, else None
    rejected: int  # task-rejected: the message given back to the queue
    retried: int  # task-retried: sent again as a retry
    seconds: float


def send_poison(app: Celery, events: TaskEvents) -> Poison:
    """Send a render whose frame can never fit (every child that tries it is killed, as by
    the OOM killer) and watch it until it ends, or until it has run more than MAX_POISON_RUNS
    times."""
    width, height = HUGE
    started = time.monotonic()
    result = app.send_task(RENDER, kwargs={"layout": "an absurd upload", "width": width, "height": height})

    def settled(_events) -> bool:
        return events.ended(result.id) is not None or len(events.runs(result.id)) > MAX_POISON_RUNS

    events.wait(settled, timeout=POISON_PATIENCE)
    return Poison(
        runs=len(events.runs(result.id)),
        state=events.ended(result.id),
        rejected=len(events.of(result.id, "task-rejected")),
        retried=len(events.of(result.id, "task-retried")),
        seconds=time.monotonic() - started,
    )


# -- the whole worker lost: its main process and every child, as when a pod is killed ------

COMES_BACK_WITHIN = 10  # seconds after the kill: how long a user waits for the lost preview, in this lab
SETTLE = 0.5  # after the success: a copy handed out while the task ran starts at once; half a second to see it


@dataclass
class WorkerLoss:
    killed_after: float  # seconds into the render when the worker was SIGKILLed
    unacked_after_kill: int  # messages the broker still held as delivered, unacknowledged
    queued_after_kill: int
    back_after: float | None  # seconds from the kill to the task's next run, if it came back
    runs_before_kill: int
    runs_after_kill: int
    state: str | None  # SUCCESS / FAILURE once it ended, else None
    waited: float  # seconds the check waited for it to come back


def lose_worker(cluster: Cluster, app: Celery, events: TaskEvents, within: float = COMES_BACK_WITHIN) -> WorkerLoss:
    """Send the slow render, SIGKILL the whole worker halfway through it (main process and
    children: nothing is left to reject its messages), start a fresh worker as the pod's
    replacement, and watch whether and when the task runs again, and how many times."""
    result = app.send_task(RENDER, kwargs={"layout": "slow", "seconds": SLOW_SECONDS})
    if not events.wait(lambda _events: bool(events.runs(result.id)), timeout=30):
        raise RuntimeError("the slow render never started on the worker")
    first_run = events.runs(result.id)[0]["seen_at"]
    time.sleep(max(0.0, first_run + SLOW_SECONDS / 2 - time.monotonic()))  # halfway through the render
    cluster.procfile_runs["worker"].kill(signal.SIGKILL)  # the process group: main process and children
    killed = time.monotonic()
    client = broker(cluster)
    unacked, queued = client.hlen("unacked"), client.llen("celery")
    start_worker(cluster)  # the replacement pod
    came_back = events.wait(lambda _events: bool(events.runs(result.id, since=killed)), timeout=within)
    waited = time.monotonic() - killed
    back_after = events.runs(result.id, since=killed)[0]["seen_at"] - killed if came_back else None
    if came_back:
        events.wait(lambda _events: events.ended(result.id) is not None, timeout=SLOW_SECONDS + 20)
        time.sleep(SETTLE)  # a copy handed out while the task ran would start within one sweep
    return WorkerLoss(
        killed_after=killed - first_run,
        unacked_after_kill=unacked,
        queued_after_kill=queued,
        back_after=back_after,
        runs_before_kill=len(events.runs(result.id)) - len(events.runs(result.id, since=killed)),
        runs_after_kill=len(events.runs(result.id, since=killed)),
        state=events.ended(result.id),
        waited=waited,
    )


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
