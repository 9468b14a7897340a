"""Lab 03: the checks' worker and what it tells them: Celery's task events, received as they
happen (the worker runs with --task-events, as a monitor like Flower needs), the settings and
child limits it runs with, and a broker emptied of what one check left for the next.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import redis
from celery import Celery
from kombu.transport.redis import Channel as RedisChannel

from workshop.processes import ManagedProcess
from workshop.topology import Cluster
from workshop.waiting import wait_until

# The checks' worker: the Procfile's line, plus task events (to watch every run of a task)
# and no start-up sync with other workers (mingle, gossip: there are none to sync with).
WATCH_FLAGS = ("--task-events", "--without-mingle", "--without-gossip")


def start_worker(cluster: Cluster, extra_args: tuple[str, ...] = (), instance: str = "worker") -> ManagedProcess:
    """The Procfile's worker, watched (task events on), as the checks run it; a second
    `instance` (another replica) gets a node name of its own."""
    name = () if instance == "worker" else ("--hostname", f"{instance}@%h")
    return cluster.start_procfile_process("worker", extra_args=(*extra_args, *name, *WATCH_FLAGS), instance=instance)


# kombu's Redis transport (5.7) sweeps overdue unacknowledged messages back to the queue
# under this lock in the broker, taken with a 300 s expiry (`unacked_mutex_expire`) and
# released when the sweep ends: kombu/transport/redis.py, QoS.restore_visible and Mutex.
RESTORE_LOCK = RedisChannel.unacked_mutex_key


def broker(cluster: Cluster) -> redis.Redis:
    return redis.Redis.from_url(cluster.redis.url)


def kill_between_sweeps(client: redis.Redis, kill: Callable[[], None]) -> None:
    """Kill a worker between two of its sweeps, never during one: a worker SIGKILLed while it
    holds the restore lock leaves it held for its 300 s expiry, and until then no worker brings
    any message back. With sweeps every second that is a matter of luck (a sweep holds the
    lock for milliseconds, longer on a busy machine); the check holds the lock itself for the
    instant of the kill, so no worker is in a sweep then."""
    with client.lock(RESTORE_LOCK, timeout=5, blocking_timeout=5):
        kill()


def discard_worker(cluster: Cluster) -> None:
    """SIGKILL the worker (every replica), and empty the broker of what it left (queued, reserved and
    unacknowledged messages: a poison message still looping, a lost task): nothing of one
    check reaches the next."""
    for instance in [name for name in cluster.procfile_runs if name == "worker" or name.startswith("worker-")]:
        cluster.procfile_runs[instance].kill(signal.SIGKILL)
        cluster.stop_procfile_process(instance)
    client = broker(cluster)
    queues = [key for key in client.scan_iter(match="celery*") if client.type(key) == b"list"]
    client.delete(RedisChannel.unacked_key, RedisChannel.unacked_index_key, RESTORE_LOCK, *queues)


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

        def arrived() -> bool:
            if self.wait(lambda events: bool(events), timeout=0.3):
                return True
            self.app.control.heartbeat()
            return False

        wait_until(arrived, "an event from the worker (does it run with --task-events?)", timeout=20, interval=0)
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
    return cluster.shell_value(
        "from django.conf import settings", f"{{name: getattr(settings, name, None) for name in {list(names)!r}}}"
    )


def worker_limit(cluster: Cluster, flag: str, setting_name: str) -> tuple[int | None, str]:
    """A child limit as the worker gets it: the flag on its command line wins over the
    setting. (value or None, where it came from)."""
    for arg in cluster.procfile()["worker"]:
        if arg.startswith(f"--{flag}="):
            return int(arg.split("=", 1)[1]), f"--{flag}={arg.split('=', 1)[1]} on the worker line"
    value = celery_values(cluster, setting_name)[setting_name]
    return (int(value), f"{setting_name} = {value}") if value else (None, f"no --{flag} and no {setting_name}")
