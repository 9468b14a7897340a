"""Processes the harness owns: started in their own process group, logged to one file
each, waited on until ready (mirakuru), and all stopped on exit, Ctrl-C or a failure.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mirakuru.base
import psutil
from mirakuru import Executor, HTTPExecutor, SimpleExecutor, TCPExecutor
from mirakuru.exceptions import ExecutorError, ProcessFinishedWithError

from workshop.errors import WorkshopError
from workshop.ports import PORT_CLASH


class ServiceFailed(WorkshopError, RuntimeError):
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
    timeout: float = 60  # to become ready
    stop_timeout: float = 20  # to exit after its stop signal, before it is killed
    # a command that runs to its end (a preStop hook): started once spawned, however soon it exits
    one_shot: bool = False


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


class NewSession:
    """Each process in a session of its own (mirakuru stops it with its whole group), set up by
    Popen's `start_new_session` in the child, where mirakuru passes `preexec_fn=os.setsid`. A
    `preexec_fn` makes Popen fork in Python, running the interpreter's at-fork hooks (logging
    takes its lock before the fork and releases it after): a Ctrl-C that lands in one of them
    raises KeyboardInterrupt there, where it is printed and dropped ("Exception ignored in"), and
    can leave logging's lock held for good. The check then went on as if never interrupted, and
    a thread that logged hung (a check run that outlived its Ctrl-C)."""

    @property
    def _popen_kwargs(self) -> dict:
        kwargs = super()._popen_kwargs
        kwargs.pop("preexec_fn", None)
        kwargs["start_new_session"] = True
        return kwargs


class _SimpleExecutor(NewSession, SimpleExecutor):
    pass


class _TCPExecutor(NewSession, TCPExecutor):
    pass


class _HTTPExecutor(NewSession, HTTPExecutor):
    pass


class ManagedProcess:
    def __init__(self, spec: ProcessSpec):
        self.spec = spec
        self._executor: SimpleExecutor | None = None
        self._log = None
        self._lock = threading.Lock()
        self._stopped = False
        self._ready = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        process = self._executor.process if self._executor else None
        return process.pid if process else None

    def running(self) -> bool:
        return bool(self._executor and self._executor.running())

    def how_it_ended(self) -> str | None:
        """ "exit code 1", "ended by SIGTERM" once it has ended on its own; None while it runs."""
        process = self._executor.process if self._executor else None
        code = process.poll() if process else None
        if code is None:
            return None
        if code >= 0:
            return f"exit code {code}"
        try:
            return f"ended by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal has no name
            return f"ended by signal {-code}"

    def _make_executor(self) -> SimpleExecutor:
        """mirakuru's executor for the spec's readiness, spawning as `NewSession` does."""
        spec = self.spec
        common = dict(
            cwd=str(spec.cwd) if spec.cwd else None,
            envvars=spec.env,
            stop_signal=spec.stop_signal,
            timeout=spec.stop_timeout,  # mirakuru's stop waits this long; the readiness wait is ours
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if spec.ready_url:
            return _HTTPExecutor(spec.command, url=spec.ready_url, method="GET", **common)
        if spec.ready_port:
            return _TCPExecutor(spec.command, host="127.0.0.1", port=spec.ready_port, **common)
        return _SimpleExecutor(spec.command, **common)

    def start(self) -> "ManagedProcess":
        """Spawn the process and wait until it is ready. A stop() from another thread (Ctrl-C
        while a cluster starts side by side) ends the wait at once."""
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._stopped:
                raise ServiceFailed(f"{self.name} was not started: everything is stopping")
            self._log = open(self.spec.log_path, "a", buffering=1)
            self._executor = executor = self._make_executor()
            if isinstance(executor, Executor) and executor.pre_start_check():
                # another program answers on the port this process was given (it took the
                # port after free_port() handed it out): the same clash as a failed bind
                self._executor = None
                self._close_log()
                raise ServiceFailed(f"{self.name}: its port is taken by another program ({PORT_CLASH})")
            SimpleExecutor.start(executor)  # spawn only: the wait below can be cancelled
        if self.spec.one_shot:
            self._ready = True
        else:
            self._wait_until_ready(executor)
        return self

    def _wait_until_ready(self, executor: SimpleExecutor) -> None:
        deadline = time.monotonic() + self.spec.timeout
        while True:
            if self._stopped:
                raise ServiceFailed(f"{self.name} was stopped while it started")
            process = executor.process
            if process is None or process.poll() is not None:
                self.kill()
                raise ServiceFailed(
                    f"{self.name} exited before it was ready.\n"
                    f"Last lines of {self.spec.log_path}:\n{log_tail(self.spec.log_path)}"
                )
            if not isinstance(executor, Executor) or executor.after_start_check():
                self._ready = True
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceFailed(
                    f"{self.name} did not become ready in {self.spec.timeout:g} s.\n"
                    f"Last lines of {self.spec.log_path}:\n{log_tail(self.spec.log_path)}"
                )
            time.sleep(0.1)

    def send_signal(self, signum: int) -> None:
        """Send a signal to the main process only (not its group), as a kubelet would."""
        if self.pid and self.running():
            self._executor.process.send_signal(signum)

    def stop(self) -> None:
        """Stop with the service's own stop signal; SIGKILL the group if it lingers. A process
        that is not ready yet is killed at once: it has served nothing, and its stop signal can be
        lost (a SIGINT that reaches a uWSGI master while it forks its workers can leave the master
        and a worker running; the workers print a KeyboardInterrupt from Python's fork hook).

        A process that has ended on its own (a one-shot hook, a crash) is sent nothing: its pid is
        also its process group's id, and once it was reaped both may be another process's, since
        pids are reused (32768 of them on many Linux machines). mirakuru's stop signals the group
        without looking, and so could stop a process of another cluster that had been given that pid.
        What it left running is found by mirakuru's mark in their environment, and killed."""
        if self._executor is None or not self._ready or not self._executor.running():
            self.discard()
            return
        with self._lock:
            self._stopped = True
        try:
            self._executor.stop()
        except ProcessFinishedWithError:
            pass  # a non-zero exit on shutdown is not our concern here
        except ExecutorError:
            self._executor.kill()
        self._close_log()

    def discard(self) -> None:
        """Kill it and its group at once: what a cluster that ends does with its processes. A
        graceful stop costs seconds there for nothing: a uWSGI master notices that its workers
        have stopped about once a second, a Celery worker's warm shutdown waits for its tasks."""
        with self._lock:
            self._stopped = True
        self.kill()

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


def processes_whose_environment(variable: str, matches: Callable[[str], bool]) -> list[psutil.Process]:
    """Every process whose environment sets `variable` to a value `matches` accepts: how what a
    run started is found wherever it went (its own session, an orphan). A process that is not
    ours to read, or that ends meanwhile, is left out."""
    found = []
    for process in psutil.process_iter(["environ"]):
        value = (process.info.get("environ") or {}).get(variable)
        if value is not None and matches(value):
            found.append(process)
    return found


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_with_descendants(pid: int, known: list[psutil.Process] | None = None) -> int:
    """SIGKILL a process and every process it started, wherever they run (a service runs in a
    session of its own), and those `known` to be its (listed earlier: they outlive it, if it
    dies first). Frozen first, so it starts nothing more while they are listed. Returns how
    many of its descendants were still running."""
    try:
        process = psutil.Process(pid)
        process.suspend()
        found = process.children(recursive=True)
    except psutil.NoSuchProcess:
        process, found = None, []
    victims = {victim.pid: victim for victim in [*(known or []), *found]}
    running = 0
    for victim in [*([process] if process else []), *victims.values()]:
        with contextlib.suppress(psutil.NoSuchProcess):
            running += victim is not process and victim.status() != psutil.STATUS_ZOMBIE
            victim.kill()
    return running


_live_supervisors: "weakref.WeakSet[Supervisor]" = weakref.WeakSet()


class Supervisor:
    """Starts processes and guarantees they are all gone when it is closed."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []
        self.closed = False
        self._lock = threading.Lock()  # processes may be started from several threads at once
        _live_supervisors.add(self)

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        process = ManagedProcess(spec)
        with self._lock:
            if self.closed:  # Ctrl-C while a start was on its way: start nothing more
                raise ServiceFailed(f"{spec.name} was not started: everything is stopping")
            self.processes.append(process)
        return process.start()

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def close(self) -> None:
        """Everything goes, side by side: each process is killed with its group (`discard`). A
        graceful stop here would serve nobody: the cluster is over, its logs stay."""
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            self.closed = True
            processes, self.processes = list(self.processes), []
        # a process still starting goes too: the thread that waits for it to be ready then
        # sees it exit, and ends at once
        if processes:
            with ThreadPoolExecutor(max_workers=len(processes)) as pool:
                list(pool.map(ManagedProcess.discard, processes))

    def __enter__(self) -> "Supervisor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# mirakuru 3.1.0 registers an exit handler in every process that imports it: it SIGKILLs each
# process whose mark (`mirakuru_uuid=<pid>:<uuid4>`, set by every executor in the environment of
# what it starts) *contains* the exiting process's pid as a substring. So a harness process (a
# check run, a notebook's kernel, a `workshop` command) whose pid is 2345 killed, as it ended, the
# processes of any other cluster whose mark holds "2345": started by pid 12345 or 23451, or a uuid
# with those digits in it. Rare for one exit, but a test suite ends hundreds of them beside tens
# of live clusters. The same, exact: only what this process started, after (atexit runs the
# last registered first) every supervisor has closed its own.
atexit.unregister(mirakuru.base.cleanup_subprocesses)


@atexit.register
def _kill_what_this_process_left() -> None:
    mine = f"{os.getpid()}:"
    for process in processes_whose_environment(mirakuru.base.ENV_UUID, lambda mark: mark.startswith(mine)):
        with contextlib.suppress(psutil.Error):
            process.kill()


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
