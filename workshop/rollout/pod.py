"""One pod of the rehearsal: its containers' real processes (uWSGI and the nginx sidecar,
rendered by workshop.rollout.render) and the kubelet thread that starts, probes and stops
them, in the kubelet's order (see workshop.rollout.rehearsal for the whole story)."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from workshop import nginx
from workshop.paths import PYTHON, venv_script
from workshop.ports import free_port
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.rollout.lb import ALB_GATE
from workshop.rollout.load import Clock
from workshop.rollout.manifest import (
    Container,
    Deployment,
)
from workshop.rollout.render import PodLayout


@dataclass(frozen=True)
class PodHost:
    """What a pod needs from what runs it (the rehearsal): the Deployment and the lab's
    files, the folders, the clock and event log, the processes' supervisor, each machine's
    environment, and the load balancer's controller, told when to (de)register the pod."""

    deployment: Deployment
    files_dir: Path  # the lab's uwsgi.ini and nginx.conf
    pods_dir: Path
    logs_dir: Path
    clock: Clock
    closing: threading.Event
    container_start: float
    app_warmup: float
    event: Callable[..., None]  # (pod, event, detail="")
    start_process: Callable[[ProcessSpec], ManagedProcess | None]
    stop_process: Callable[[ManagedProcess], None]
    machine_env: Callable[[str, Path], dict[str, str]]
    register: Callable[[Pod], None]  # after the registration lag
    deregister: Callable[[Pod], None]  # after the deregistration lag


class Pod:
    """One pod: its containers' processes and the kubelet thread that probes and stops them."""

    def __init__(self, host: PodHost, name: str, in_service: bool = True, alb_gate: bool = False):
        """`alb_gate`: the AWS Load Balancer Controller's webhook injects its readiness gate."""
        self.host = host
        self.deployment: Deployment = host.deployment
        self.name = name
        self.in_service = in_service
        self.dir = host.pods_dir / name
        self.layout = PodLayout.for_pod(self.deployment, self.dir)
        self.stats_port = free_port()  # uWSGI's stats server, for `workshop top`
        self.processes: dict[str, ManagedProcess] = {}  # container name -> process
        self.container_ready: dict[str, bool] = {c.name: False for c in self.deployment.containers}
        self.probe_results: dict[str, str] = {c.name: "-" for c in self.deployment.containers}
        # readiness gates: the manifest's, and the one the AWS controller's webhook injects
        gates = list(self.deployment.readiness_gates)
        if alb_gate and ALB_GATE not in gates:
            gates.append(ALB_GATE)
        self.gates: dict[str, bool] = {gate: False for gate in gates}
        self.serving = False
        self.registered = False
        self.terminating = False
        self.ready_since: float | None = None  # when the pod last became Ready (clock time)
        self.gone = threading.Event()
        self._containers_ready = False
        self._thread = threading.Thread(target=self._kubelet, name=f"kubelet-{name}", daemon=True)

    # -- addresses ------------------------------------------------------------------------
    def port_of(self, role: str) -> int:
        container = self.deployment.container(role)
        return self.layout.host_port(next(iter(container.ports.values())))

    @property
    def service_port(self) -> int:
        """Where the Service sends traffic: the sidecar if there is one, else uWSGI."""
        roles = {c.role for c in self.deployment.containers}
        return self.port_of("nginx" if "nginx" in roles else "uwsgi")

    @property
    def containers_ready(self) -> bool:
        return self._containers_ready

    @property
    def ready(self) -> bool:
        """The pod's Ready condition: every container ready and every readiness gate True."""
        return not self.terminating and self._containers_ready and all(self.gates.values())

    def available(self, min_ready_seconds: float) -> bool:
        """What the Deployment controller counts: Ready for at least minReadySeconds."""
        if not self.ready or self.ready_since is None:
            return False
        return self.host.clock.now() - self.ready_since >= min_ready_seconds

    def state(self) -> str:
        if self.gone.is_set():
            return "gone"
        if self.terminating:
            return "terminating"
        if self.ready:
            return "ready"
        if self._containers_ready:
            return "waiting for its gate" if self.gates else "ready"
        return "serving, not ready" if self.serving else "starting"

    def describe(self) -> dict:
        """The pod as `workshop top` shows it: its state, gates and containers."""
        return {
            "name": self.name,
            "state": self.state(),
            "in_service": self.in_service,
            "registered": self.registered,
            "gates": dict(self.gates),
            "containers": [
                {
                    "name": c.name,
                    "pid": self.processes[c.name].pid if c.name in self.processes else None,
                    "running": c.name in self.processes and self.processes[c.name].running(),
                    "ready": self.container_ready[c.name],
                    "probe": self.probe_results[c.name] if c.readiness else "no probe: ready once started",
                    "stop_signal": c.stop_signal.name,
                }
                for c in self.deployment.containers
            ],
            "service_port": self.service_port,
            "stats": f"127.0.0.1:{self.stats_port}",
        }

    # -- start ------------------------------------------------------------------------------
    def start(self) -> "Pod":
        self.layout.make_dirs()
        gates = f"; readiness gates {sorted(self.gates)}" if self.gates else ""
        self.host.event(self.name, "created", f"ports {self.layout.ports}{gates}")
        for container in self.deployment.containers:
            self.processes[container.name] = self.host.start_process(self._spec(container))
            self.host.event(self.name, "container-started", container.name)
        self._thread.start()
        return self

    def _spec(self, container: Container) -> ProcessSpec:
        files = self.host.files_dir
        logs = self.host.logs_dir
        if container.role == "nginx":
            prefix = self.dir / "nginx"
            (prefix / "logs").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            text = self.layout.render((files / "nginx.conf").read_text())
            conf.write_text(nginx.with_user(text))
            return ProcessSpec(
                name=f"{self.name}/{container.name}",
                command=nginx.command(prefix, conf),
                log_path=logs / f"{self.name}-{container.name}.log",
                timeout=10,
            )
        ini = self.dir / "uwsgi.ini"
        ini.write_text(self.layout.render((files / "uwsgi.ini").read_text()))
        disk = self.dir / "disk"
        disk.mkdir(parents=True, exist_ok=True)
        uwsgi = [
            venv_script("pyuwsgi"),
            "--ini",
            str(ini),
            "--binary-path",
            str(PYTHON),
            "--stats",
            f"127.0.0.1:{self.stats_port}",
        ]
        # The seconds a real cms container spends before uWSGI even starts (its entrypoint):
        # `exec` keeps the pid, so uWSGI is the container's main process.
        command = ["sh", "-c", f'sleep {self.host.container_start}; exec "$@"', "sh", *uwsgi]
        return ProcessSpec(
            name=f"{self.name}/{container.name}",
            command=command,
            env={
                **self.host.machine_env(self.name, disk),
                "CMS_WARMUP_SECONDS": f"{self.host.app_warmup:g}",
            },
            cwd=disk,
            log_path=logs / f"{self.name}-{container.name}.log",
            stop_signal=signal.SIGINT,  # the harness's own cleanup: uWSGI's brutal stop
            timeout=10,
        )

    # -- the kubelet's probes ---------------------------------------------------------------
    def _probe(self, container: Container, client: httpx.Client) -> bool:
        probe = container.readiness
        port = self.layout.host_port(probe.port)
        if probe.kind == "tcpSocket":
            import socket

            try:
                with socket.create_connection(("127.0.0.1", port), timeout=probe.timeout):
                    self.probe_results[container.name] = f"tcp :{probe.port} open"
                    return True
            except OSError:
                self.probe_results[container.name] = f"tcp :{probe.port} refused"
                return False
        try:
            response = client.get(f"http://127.0.0.1:{port}{probe.path}", timeout=probe.timeout)
        except httpx.HTTPError as exc:
            self.probe_results[container.name] = f"GET {probe.path}: {type(exc).__name__}"
            return False
        self.probe_results[container.name] = f"GET {probe.path}: {response.status_code}"
        return 200 <= response.status_code < 400

    def _kubelet(self) -> None:
        started = time.monotonic()
        state = {
            c.name: {"due": started + (c.readiness.initial_delay if c.readiness else 0), "ok": 0, "bad": 0}
            for c in self.deployment.containers
        }
        # the harness watching, not a probe: when the app first serves (warm-up over)
        app_url = f"http://127.0.0.1:{self.port_of('uwsgi')}/healthz/ready"
        with httpx.Client() as client:
            while not self.gone.is_set() and not self.host.closing.is_set():
                now = time.monotonic()
                if not self.serving:
                    try:
                        if client.get(app_url, timeout=5).status_code == 200:
                            self.serving = True
                            self.host.event(self.name, "serving", "the app answered")
                    except httpx.HTTPError:
                        pass
                for container in self.deployment.containers:
                    process = self.processes[container.name]
                    ready = self.container_ready[container.name]
                    if not process.running():
                        ready = False
                    elif container.readiness is None:
                        ready = True  # no probe: Ready as soon as the container runs
                    elif now >= state[container.name]["due"]:
                        s = state[container.name]
                        s["due"] = now + container.readiness.period
                        if self._probe(container, client):
                            s["ok"], s["bad"] = s["ok"] + 1, 0
                            ready = ready or s["ok"] >= container.readiness.success_threshold
                        else:
                            s["ok"], s["bad"] = 0, s["bad"] + 1
                            ready = ready and s["bad"] < container.readiness.failure_threshold
                    if ready != self.container_ready[container.name]:
                        self.container_ready[container.name] = ready
                        self.host.event(self.name, "container-ready" if ready else "container-unready", container.name)
                self._update_readiness()
                time.sleep(0.05)

    def _update_readiness(self) -> None:
        ready = all(self.container_ready.values()) and not self.terminating
        if ready == self._containers_ready:
            return
        self._containers_ready = ready
        self.host.event(self.name, "containers-ready" if ready else "containers-unready")
        self.note_ready()
        if self.in_service and not self.terminating:
            # the load balancer registers a pod whose containers are ready (with a gate, before it is Ready)
            if ready:
                self.host.register(self)
            else:
                self.host.deregister(self)

    def note_ready(self) -> None:
        """Record a change of the pod's Ready condition (containers, gates, termination)."""
        ready = self.ready
        if ready and self.ready_since is None:
            self.ready_since = self.host.clock.now()
            self.host.event(self.name, "ready")
        elif not ready and self.ready_since is not None:
            self.ready_since = None
            self.host.event(self.name, "unready")

    def set_gate(self, condition: str, value: bool) -> None:
        if condition in self.gates and self.gates[condition] != value:
            self.gates[condition] = value
            self.host.event(self.name, "gate-true" if value else "gate-false", condition)
            self.note_ready()

    # -- termination, in the kubelet's order -------------------------------------------------
    def terminate(self) -> None:
        """Delete the pod: returns at once; `gone` is set when every container has exited."""
        self.terminating = True
        self.host.event(self.name, "terminating", f"grace {self.deployment.grace_seconds:g} s")
        self.note_ready()
        if self.in_service:
            self.host.deregister(self)
        threading.Thread(target=self._terminate, name=f"terminate-{self.name}", daemon=True).start()

    def _terminate(self) -> None:
        deadline = time.monotonic() + self.deployment.grace_seconds
        threads = [
            threading.Thread(target=self.stop_container, args=(c, deadline), daemon=True)
            for c in self.deployment.containers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.gone.set()
        self.host.event(self.name, "gone")

    def run_pre_stop(self, container: Container, deadline: float, skip_sleeps: bool = False) -> None:
        """The container's preStop hook, as the kubelet runs it (inside the grace period).
        `skip_sleeps`: its `sleep`s return at once (a check that times its requests itself)."""
        hook = container.pre_stop
        self.host.event(self.name, "prestop-start", container.role)
        if hook.command:
            command = [self.layout.render(part) for part in hook.command]
            env = dict(os.environ)
            if skip_sleeps:
                env["PATH"] = f"{self._no_sleep_dir()}{os.pathsep}{env.get('PATH', '')}"
            try:
                process = self.host.start_process(
                    ProcessSpec(
                        name=f"{self.name}/{container.name}-prestop",
                        command=command,
                        env=env,
                        log_path=self.host.logs_dir / f"{self.name}-{container.name}-prestop.log",
                        one_shot=True,
                    )
                )
            except (ServiceFailed, OSError) as exc:  # the kubelet records FailedPreStopHook and stops the container
                self.host.event(self.name, "prestop-failed", f"{container.role}: {exc}")
                process = None
            if process is not None:
                while process.running() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.host.stop_process(process)
        elif not skip_sleeps:
            time.sleep(max(0.0, min(hook.sleep, deadline - time.monotonic())))
        self.host.event(self.name, "prestop-end", container.role)

    def _no_sleep_dir(self) -> Path:
        folder = self.dir / "no-sleep"
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "sleep"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return folder

    def stop_container(self, container: Container, deadline: float, skip_sleeps: bool = False) -> None:
        """preStop, then the container's stop signal, SIGKILL at the deadline: the kubelet's order."""
        process = self.processes[container.name]
        if container.pre_stop:
            self.run_pre_stop(container, deadline, skip_sleeps)
        if process.running() and time.monotonic() < deadline:
            process.send_signal(container.stop_signal)
            # after the signal: its time is never early (the SIGTERM check reads it)
            self.host.event(self.name, "stop-signal", f"{container.role} {container.stop_signal.name}")
        while process.running() and time.monotonic() < deadline and not self.host.closing.is_set():
            time.sleep(0.05)
        if process.running():
            self.host.event(self.name, "sigkill", container.role)
            process.kill()
        code = process.wait(5) if process.pid else None
        self.host.event(self.name, "exited", f"{container.role} {code}")
        self.host.stop_process(process)
