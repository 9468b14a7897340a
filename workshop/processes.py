"""Processes the harness owns: started in their own process group, logged to one file
each, waited on until ready (mirakuru), and all stopped on exit, Ctrl-C or a failure.
"""

from __future__ import annotations

import atexit
import signal
import subprocess
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from mirakuru import HTTPExecutor, SimpleExecutor, TCPExecutor
from mirakuru.exceptions import AlreadyRunning, ExecutorError, ProcessFinishedWithError

from workshop.ports import PORT_CLASH


class ServiceFailed(RuntimeError):
    """A process did not become ready; the message carries the tail of its log."""


@dataclass
class ProcessSpec:
    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready_url: str | None = None  # ready when a GET answers 2xx
    ready_port: int | None = None  # ready when the port accepts connections
    # uWSGI treats SIGTERM as a brutal *reload*; each service says how it is stopped.
    stop_signal: int = signal.SIGTERM
    timeout: float = 60
    service: bool = False  # a backing service (Valkey, the CRM): stopped after everything that uses it


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


class ManagedProcess:
    def __init__(self, spec: ProcessSpec):
        self.spec = spec
        self._executor: SimpleExecutor | None = None
        self._log = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        process = self._executor.process if self._executor else None
        return process.pid if process else None

    def running(self) -> bool:
        return bool(self._executor and self._executor.running())

    def _make_executor(self) -> SimpleExecutor:
        spec = self.spec
        common = dict(
            cwd=str(spec.cwd) if spec.cwd else None,
            envvars=spec.env,
            stop_signal=spec.stop_signal,
            timeout=spec.timeout,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if spec.ready_url:
            return HTTPExecutor(spec.command, url=spec.ready_url, method="GET", **common)
        if spec.ready_port:
            return TCPExecutor(spec.command, host="127.0.0.1", port=spec.ready_port, **common)
        return SimpleExecutor(spec.command, **common)

    def start(self) -> "ManagedProcess":
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.spec.log_path, "a", buffering=1)
        self._executor = self._make_executor()
        try:
            self._executor.start()
        except AlreadyRunning as exc:
            # another program answers on the port this process was given (it took the port
            # after free_port() handed it out): the same clash as a failed bind
            self.kill()
            raise ServiceFailed(f"{self.name}: its port is taken by another program ({PORT_CLASH})") from exc
        except ExecutorError as exc:
            self.kill()
            raise ServiceFailed(
                f"{self.name} did not become ready ({type(exc).__name__}).\n"
                f"Last lines of {self.spec.log_path}:\n{log_tail(self.spec.log_path)}"
            ) from exc
        return self

    def send_signal(self, signum: int) -> None:
        """Send a signal to the main process only (not its group), as a kubelet would."""
        if self.pid and self.running():
            self._executor.process.send_signal(signum)

    def stop(self) -> None:
        """Stop with the service's own stop signal; SIGKILL the group if it lingers."""
        if self._executor is not None:
            try:
                self._executor.stop()
            except ProcessFinishedWithError:
                pass  # a non-zero exit on shutdown is not our concern here
            except ExecutorError:
                self._executor.kill()
        self._close_log()

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self._executor is not None:
            self._executor.kill(sig=signum)
        self._close_log()

    def wait(self, timeout: float | None = None) -> int | None:
        process = self._executor.process if self._executor else None
        return process.wait(timeout) if process else None

    def _close_log(self) -> None:
        if self._log and not self._log.closed:
            self._log.close()


_live_supervisors: "weakref.WeakSet[Supervisor]" = weakref.WeakSet()


class Supervisor:
    """Starts processes and guarantees they are all gone when it is closed."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []
        _live_supervisors.add(self)

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        process = ManagedProcess(spec)
        self.processes.append(process)
        return process.start()

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def close(self) -> None:
        """Stop everything, side by side (a uWSGI master takes a second to stop), the
        backing services last, so that no worker loses its broker while it shuts down."""
        from concurrent.futures import ThreadPoolExecutor

        processes, self.processes = list(self.processes), []
        for wave in ([p for p in processes if not p.spec.service], [p for p in processes if p.spec.service]):
            if wave:
                with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                    list(pool.map(ManagedProcess.stop, wave))

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@atexit.register
def _close_all_supervisors() -> None:
    for supervisor in list(_live_supervisors):
        supervisor.close()


def raise_keyboard_interrupt_on_sigterm() -> None:
    """Make SIGTERM (a closing terminal, a CI timeout) unwind like Ctrl-C, so cleanup runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
