"""Lab 03: the render task whose vendor library leaks memory: its frame sizes, batches of
renders, and the memory of each pool child.

Every render_screen_preview task returns the pid of the child that ran it and that
child's RSS afterwards, so memory per child over tasks comes from the tasks
themselves: no sampling, nothing missed.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psutil
from celery import Celery

from workshop.processes import ManagedProcess

RENDER = "cms.signage.tasks.render_screen_preview"
SMALL = (360, 360)  # a screen thumbnail: the library leaks 506 KiB per render
LARGE = (1920, 1080)  # a full-HD preview: 8100 KiB per render
HUGE = (20000, 20000)  # a partner's absurd upload: a frame over the worker's memory limit kills its process
SLOW_SECONDS = 2  # the longest render of this lab: the slow one, caught mid-task by the kills


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
