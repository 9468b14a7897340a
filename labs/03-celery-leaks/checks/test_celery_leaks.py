"""Lab 03 checks: a real Celery worker (prefork, 2 children) from the lab's Procfile,
running renders whose vendor library leaks 506 KiB each (8100 KiB for a full-HD one).

Each task returns the pid of the child that ran it and that child's RSS afterwards; what
becomes of a task whose process dies is read from Celery's task events. The checks measure
behaviour, never the shape of a fix: the limits may be flags on the worker line or
CELERY_WORKER_* settings, and they read your values only to tell you what they saw.
"""

from workshop.scenarios.celery_renders import LARGE, SMALL, children_rss_kib, leak_kib, run_batch
from workshop.scenarios.celery_task_loss import (
    MAX_POISON_RUNS,
    assert_kill_loses_no_task,
    send_poison,
)
from workshop.scenarios.celery_workers import celery_values, worker_limit

CLUSTER_OPTIONS = {"nodes": 0, "procfile_processes": ()}  # Valkey and the database; each check starts its worker
TASKS = 1000
# The budget: a child may hold at most 450 renders' worth of leak (the talk recycled at 400).
BUDGET_RENDERS = 450
LARGE_RENDERS = 120
MEMORY_CEILING_MIB = 300  # no child above this, whatever its tasks leak
# A limit that replaces a child after every render or two is --max-tasks-per-child=1 in
# disguise (a fork per task): the children must serve this many full-HD renders each, on average.
MIN_RENDERS_PER_CHILD = 4


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def test_children_are_recycled_and_memory_stays_bounded(cluster, worker, app, failure):
    baseline = max(children_rss_kib(worker).values())
    batch = run_batch(app, TASKS)
    ceiling = baseline + BUDGET_RENDERS * leak_kib(SMALL)
    assert batch.succeeded == TASKS, failure("max-tasks", f"{dict(batch.states)} of {TASKS} renders.", hint=0)
    recycled = len(batch.children) >= 3
    if batch.peak_rss_kib <= ceiling and recycled:
        return
    limit, where = worker_limit(cluster, "max-tasks-per-child", "CELERY_WORKER_MAX_TASKS_PER_CHILD")
    memory, memory_where = worker_limit(cluster, "max-memory-per-child", "CELERY_WORKER_MAX_MEMORY_PER_CHILD")
    raise AssertionError(
        failure(
            "max-tasks",
            f"after {TASKS} renders the largest child reached {mib(batch.peak_rss_kib)}; the ceiling is "
            f"{mib(ceiling)} (a fresh child's {mib(baseline)} + {BUDGET_RENDERS} renders x {leak_kib(SMALL)} KiB). "
            f"Tasks per child: {dict(batch.tasks_by_child())}: {len(batch.children)} children served tasks "
            f"(at least 3 means children were replaced). Your worker: {where}; {memory_where}.",
            # no limit at all: what could replace a child; a limit that was not low enough: the budget
            hint=2 if recycled or limit or memory else 1,
        )
    )


def test_a_memory_limit_catches_uneven_leaks(cluster, worker, app, failure):
    batch = run_batch(app, LARGE_RENDERS, size=LARGE)
    assert batch.succeeded == LARGE_RENDERS, failure("memory-safety-net", f"{dict(batch.states)}.", hint=0)
    renders_per_child = LARGE_RENDERS / len(batch.children)
    bounded = batch.peak_rss_kib <= MEMORY_CEILING_MIB * 1024
    if bounded and renders_per_child >= MIN_RENDERS_PER_CHILD:
        return
    limit, where = worker_limit(cluster, "max-memory-per-child", "CELERY_WORKER_MAX_MEMORY_PER_CHILD")
    seen = (
        f"{LARGE_RENDERS} full-HD renders ({leak_kib(LARGE)} KiB leaked each) ran on {len(batch.children)} "
        f"children ({renders_per_child:.1f} renders per child); the largest reached {mib(batch.peak_rss_kib)}. "
        f"Your worker: {where}."
    )
    assert bounded, failure(
        "memory-safety-net",
        f"{seen} No child may pass {MEMORY_CEILING_MIB} MiB.",
        # no memory limit: count memory, not tasks; a limit: it is too high for the ceiling
        hint=1 if limit else 0,
    )
    assert renders_per_child >= MIN_RENDERS_PER_CHILD, failure(
        "memory-safety-net",
        f"{seen} A child holds about {mib(min(batch.peak_rss_kib_by_child().values()))} after a single render: "
        f"a limit that replaces children after fewer than {MIN_RENDERS_PER_CHILD} renders each costs a fork "
        "per task or two, like --max-tasks-per-child=1.",
        hint=2,
    )


def test_a_child_killed_mid_task_loses_no_task(worker, app, setting, failure):
    assert_kill_loses_no_task(app, setting, failure)


def test_a_task_that_kills_every_child_is_given_up(cluster, app, events, failure):
    poison = send_poison(app, events)
    if poison.state == "FAILURE" and 2 <= poison.runs <= MAX_POISON_RUNS:
        return
    values = celery_values(
        cluster,
        "CELERY_TASK_ACKS_LATE",
        "CELERY_TASK_REJECT_ON_WORKER_LOST",
        "CELERY_TASK_RETRY_ON_WORKER_LOST",
        "CELERY_TASK_ANNOTATIONS",
    )
    yours = ", ".join(f"{name} = {value!r}" for name, value in values.items() if value is not None)
    seen = (
        f"a render whose frame can never fit (every child that runs it is killed, as by the OOM killer) ran "
        f"{poison.runs} time(s) in {poison.seconds:.0f} s: given back to the queue {poison.rejected} time(s), "
        f"retried {poison.retried} time(s), and it {'ended ' + poison.state if poison.state else 'had not ended'}. "
        f"Your settings: {yours or 'none of the CELERY_TASK_* that decide it'}."
    )
    looping = poison.runs > MAX_POISON_RUNS or not poison.state
    assert not looping, failure(
        "poison-message",
        f"{seen} "
        + (f"More than {MAX_POISON_RUNS} runs and still coming back: a message loop." if poison.runs else ""),
        # looping with retries on: their limit is what is missing; without: at-least-once has no bound
        hint=1 if values.get("CELERY_TASK_RETRY_ON_WORKER_LOST") else 0,
    )
    assert poison.runs >= 2, failure(
        "poison-message",
        f"{seen} One run and no second try: a killed task must be tried again, a bounded number of times.",
        hint=2,
    )
