"""Lab 03 checks: a real Celery worker (prefork, 2 children) from the lab's Procfile,
running renders whose vendor library leaks 506 KiB each (8100 KiB for a full-HD one).

Each task returns the pid of the child that ran it and that child's RSS afterwards.
"""

import pytest

from workshop.celery_client import celery_client
from workshop.scenarios.celery_leaks import (
    LARGE,
    SMALL,
    assert_kill_loses_no_task,
    children_rss_kib,
    leak_kib,
    run_batch,
)

CLUSTER_OPTIONS = {"nodes": 0}  # no web nodes: a worker, Valkey and the database
TASKS = 1000
# The budget: a child may hold at most 450 renders' worth of leak (the talk recycled at 400).
BUDGET_RENDERS = 450
LARGE_RENDERS = 120
MEMORY_CEILING_MIB = 300  # no child above this, whatever its tasks leak


@pytest.fixture
def worker(cluster):
    """A fresh worker for each check, with the Procfile's command line."""
    process = cluster.start_procfile_process("worker")
    yield process
    cluster.stop_procfile_process("worker")


@pytest.fixture
def app(cluster):
    return celery_client(cluster.redis.url)


def mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def test_children_are_recycled_and_memory_stays_bounded(worker, app, failure):
    baseline = max(children_rss_kib(worker).values())
    batch = run_batch(app, TASKS)
    ceiling = baseline + BUDGET_RENDERS * leak_kib(SMALL)
    assert batch.succeeded == TASKS, failure("max-tasks", f"{dict(batch.states)} of {TASKS} renders.", hint=1)
    recycled = len(batch.children) >= 3
    assert batch.peak_rss_kib <= ceiling and recycled, failure(
        "max-tasks",
        f"after {TASKS} renders the largest child reached {mib(batch.peak_rss_kib)}; the ceiling is "
        f"{mib(ceiling)} (a fresh child's {mib(baseline)} + {BUDGET_RENDERS} renders x {leak_kib(SMALL)} KiB). "
        f"Tasks per child: {dict(batch.tasks_by_child())}: {len(batch.children)} children served tasks "
        "(at least 3 means children were replaced).",
        # never recycled: the flag is missing; recycled but too big: N is above the budget
        hint=2 if recycled else 1,
    )


def test_a_memory_limit_catches_uneven_leaks(worker, app, failure):
    batch = run_batch(app, LARGE_RENDERS, size=LARGE)
    assert batch.succeeded == LARGE_RENDERS, failure("memory-safety-net", f"{dict(batch.states)}.", hint=1)
    limited = any(arg.startswith("--max-memory-per-child") for arg in worker.spec.command)
    assert batch.peak_rss_kib <= MEMORY_CEILING_MIB * 1024, failure(
        "memory-safety-net",
        f"{LARGE_RENDERS} full-HD renders ({leak_kib(LARGE)} KiB leaked each) took a child to "
        f"{mib(batch.peak_rss_kib)}; no child may pass {MEMORY_CEILING_MIB} MiB. "
        f"Tasks per child: {dict(batch.tasks_by_child())}. "
        f"The worker's command line {'has' if limited else 'has no'} --max-memory-per-child.",
        # no limit: the flag; a limit: it is too close to the ceiling (checked after a task)
        hint=2 if limited else 1,
    )


def test_a_child_killed_mid_task_loses_no_task(worker, app, setting, failure):
    assert_kill_loses_no_task(app, setting, failure)
