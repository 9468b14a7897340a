"""Lab 03: what becomes of a task when its process dies: a pool child SIGKILLed in the middle
of a render (as the OOM killer does), a poison message that kills every child that runs it, and
the whole worker lost, main process and children, as when a pod is killed.

Every run of a task is one task-started event (celery_workers.TaskEvents), whichever process
and whichever delivery it was.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from celery import Celery
from kombu.transport.redis import Channel as RedisChannel

from workshop.scenarios.celery_renders import HUGE, RENDER, SLOW_SECONDS
from workshop.scenarios.celery_workers import TaskEvents, broker, kill_between_sweeps, start_worker
from workshop.topology import Cluster
from workshop.waiting import wait_until


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

    def running_child() -> int | None:
        # limit=1: the answer comes as soon as a worker replies, not after the whole timeout
        for tasks in (app.control.inspect(timeout=1, limit=1).active() or {}).values():
            pid = next((task["worker_pid"] for task in tasks if task["id"] == result.id), None)
            if pid is not None:
                return pid
        return None

    pid = wait_until(running_child, "the slow task to show up as active on the worker", timeout=30, interval=0)
    os.kill(pid, signal.SIGKILL)
    try:
        value = result.get(timeout=timeout, propagate=False)
    except TimeoutError:
        return Kill(pid, result.state, None, f"no result within {timeout:g} s")
    if result.state == "SUCCESS":
        return Kill(pid, "SUCCESS", value["pid"])
    return Kill(pid, result.state, None, repr(value))


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


OTHER_REPLICA = "worker-2"


def lose_worker(cluster: Cluster, app: Celery, events: TaskEvents, within: float = COMES_BACK_WITHIN) -> WorkerLoss:
    """Two workers run, as two replicas of the worker Deployment: the one running and a
    second started now. Send the slow render, SIGKILL the whole worker that runs it halfway
    through (main process and children: nothing is left to reject its messages), and watch
    whether and when the other one runs it again, and how many times.

    No replacement starts: kombu sweeps overdue messages when a worker starts, so a
    replacement that happens to start after the visibility timeout has run out would bring
    the task back whatever the sweep period; the other replica's periodic sweeps are what
    decides. In the check both start moments before the render: their start-up sweeps
    (done before a worker logs "ready.") are over before the message can be overdue, and a
    sweep period of kombu's default (100 s) does not come round within the wait. The kill
    lands between two sweeps (kill_between_sweeps): one killed in the middle of its sweep
    would hold every sweep back for 300 s."""
    start_worker(cluster, instance=OTHER_REPLICA)
    result = app.send_task(RENDER, kwargs={"layout": "slow", "seconds": SLOW_SECONDS})
    if not events.wait(lambda _events: bool(events.runs(result.id)), timeout=30):
        raise RuntimeError("the slow render never started on a worker")
    first_run = events.runs(result.id)[0]
    runner = cluster.instance_of_pid.get(first_run["pid"])  # task-started comes from a worker's main process
    if runner not in ("worker", OTHER_REPLICA):
        raise RuntimeError(f"the slow render started in process {first_run['pid']}, neither worker's main process")
    time.sleep(max(0.0, first_run["seen_at"] + SLOW_SECONDS / 2 - time.monotonic()))  # halfway through the render
    client = broker(cluster)
    # the process group: main process and children
    kill_between_sweeps(client, lambda: cluster.procfile_runs[runner].kill(signal.SIGKILL))
    killed = time.monotonic()
    unacked, queued = client.hlen(RedisChannel.unacked_key), client.llen("celery")
    came_back = events.wait(lambda _events: bool(events.runs(result.id, since=killed)), timeout=within)
    waited = time.monotonic() - killed
    back_after = events.runs(result.id, since=killed)[0]["seen_at"] - killed if came_back else None
    if came_back:
        events.wait(lambda _events: events.ended(result.id) is not None, timeout=SLOW_SECONDS + 20)
        time.sleep(SETTLE)  # a copy handed out while the task ran would start within one sweep
    cluster.stop_procfile_process(OTHER_REPLICA)  # one worker, "worker", is left if it survived
    return WorkerLoss(
        killed_after=killed - first_run["seen_at"],
        unacked_after_kill=unacked,
        queued_after_kill=queued,
        back_after=back_after,
        runs_before_kill=len(events.runs(result.id)) - len(events.runs(result.id, since=killed)),
        runs_after_kill=len(events.runs(result.id, since=killed)),
        state=events.ended(result.id),
        waited=waited,
    )
