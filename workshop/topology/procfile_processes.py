"""The cluster's Procfile processes: the lab's worker and beat lines (read from the
nearest layer's Procfile, else the base one), each run as an instance with a disk of its
own (beat-1 and beat-2 when the entry runs twice) and waited on until its log says it is
ready. A daemon (`--detach`) is refused: it would escape the cluster's supervisor. Every
pid an instance ever had is remembered, so a task's sender is named even after a restart.
"""

from __future__ import annotations

import re
from pathlib import Path

from workshop.layers import find_in_layers
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.procfile import BASE_PROCFILE, read_procfile, resolve_command
from workshop.topology.helpers import side_by_side
from workshop.waiting import WaitTimedOut, wait_until


class ProcfileMixin:
    """The Cluster's Procfile processes (its `procfile_runs`, `instance_of_pid`, `supervisor`)."""

    def procfile(self) -> dict[str, list[str]]:
        return read_procfile(find_in_layers(self.layers, "Procfile", default=BASE_PROCFILE))

    def start_procfile_process(
        self,
        name: str,
        extra_args: tuple[str, ...] = (),
        ready_pattern: str = r"ready\.|beat: Starting",
        instance: str | None = None,
    ) -> ManagedProcess:
        """Start one Procfile entry (worker, beat) with the cluster's environment, as
        `instance` (default: the entry's name; "beat-2" for a second beat) with a disk of
        its own. `extra_args` are appended to its command line (a sweep over a flag)."""
        entries = self.procfile()
        if name not in entries:
            raise ServiceFailed(f"the Procfile has no {name!r} entry (it has: {', '.join(entries)})")
        if "--detach" in entries[name]:  # celery's daemon mode: forks into a session of its own, out of reach
            raise ServiceFailed(f"the Procfile's {name!r} line has --detach: a daemon escapes the workshop: remove it")
        instance = instance or name
        self.stop_procfile_process(instance)
        disk = self.run_dir / instance
        disk.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{instance}.log"
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        process = self.supervisor.start(
            ProcessSpec(
                name=instance,
                command=[*resolve_command(entries[name]), *extra_args],
                env=self.machine_env(instance, disk),
                cwd=disk,
                log_path=log_path,
            )
        )
        self.procfile_runs[instance] = process
        self.instance_of_pid[process.pid] = instance
        wait_for_log(log_path, ready_pattern, process, offset=log_offset)
        self.publish()
        return process

    def start_instances(self, entry: str, instances: tuple[str, ...]) -> None:
        """Start `entry` as each of `instances` at once (a Deployment's new pods start together)."""
        side_by_side(*(lambda name=name: self.start_procfile_process(entry, instance=name) for name in instances))

    def stop_procfile_process(self, name: str) -> None:
        process = self.procfile_runs.pop(name, None)
        if process:
            self.supervisor.stop(process)
            self.publish()


def wait_for_log(path: Path, pattern: str, process: ManagedProcess, timeout: float = 60, offset: int = 0) -> None:
    """Wait until the log, past `offset` bytes (an earlier run's lines), matches `pattern`."""
    regex = re.compile(pattern)

    def logged() -> bool:
        if not path.exists():
            return False
        with open(path, "rb") as log:
            log.seek(offset)
            return bool(regex.search(log.read().decode(errors="replace")))

    try:
        wait_until(logged, f"{process.name} logging /{pattern}/", timeout, 0.1, [path], lambda: not process.running())
    except WaitTimedOut as exc:
        raise ServiceFailed(str(exc)) from None
