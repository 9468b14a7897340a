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

import threading
import time
from pathlib import Path

from workshop import runs
from workshop.curriculum import Lab
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.rollout.lb import ALB_GATE, DEFAULT_LAGS, LB_KINDS, HttpLoadBalancer, Lags, TcpLoadBalancer
from workshop.rollout.load import Clock, LoadGenerator, LoadShape
from workshop.rollout.manifest import (
    ManifestError,
    gate_injection,
    load_deployment,
)
from workshop.rollout.pod import Pod, PodHost
from workshop.rollout.timeline import Event, LoadFloor, Timeline
from workshop.topology import Cluster
from workshop.waiting import wait_until

MANIFEST = "k8s/deployment.yaml"
CONTAINER_START_SECONDS = 1.0  # the cms container's entrypoint, before uWSGI runs
APP_WARMUP_SECONDS = 2.0  # after uWSGI loaded the app: it answers 503 (cms.wsgi.WarmingUp)


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
        self.pod_host = PodHost(
            deployment=self.deployment,
            files_dir=self.files_dir,
            pods_dir=self.run_dir / "pods",
            logs_dir=self.logs_dir,
            clock=self.clock,
            closing=self.closing,
            container_start=self.container_start,
            app_warmup=self.app_warmup,
            event=self.event,
            start_process=self.start_process,
            stop_process=self.stop_process,
            machine_env=self.cluster.machine_env,
            # the lags now, not at the pod's creation: use_load_balancer() changes them
            register=lambda pod: self.schedule(self.lags.registration, "add", pod),
            deregister=lambda pod: self.schedule(self.lags.deregistration, "remove", pod),
        )

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
                # each only if it still says what the pod is, ready to serve or not (its containers
                # ready, not terminating): a pod un-Ready for a moment (a probe that timed out on a
                # busy machine) and Ready again before its removal was due stays registered; else
                # that late removal would leave it out for good, as nothing would register it again
                serving = pod.containers_ready and not pod.terminating
                if action == "add" and pod.name not in self.endpoints and serving:
                    self.endpoints[pod.name] = pod.service_port
                    changed.append((pod, "registered"))
                elif action == "remove" and pod.name in self.endpoints and not serving:
                    del self.endpoints[pod.name]
                    changed.append((pod, "deregistered"))
            endpoints = dict(self.endpoints)
        if not changed:
            return
        # (un)registered once both ways in route by it: the proxy's reload takes a moment
        self.service.set_endpoints(endpoints)
        self.proxy.set_endpoints(endpoints)
        for pod, event in changed:
            pod.registered = event == "registered"
            self.event(pod.name, event, f"upstreams: {sorted(endpoints)}")
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
        pod = Pod(self.pod_host, name, in_service=in_service, alb_gate=self.lb_kind == "alb" and self.inject_gate)
        self.pods.append(pod)
        return pod.start()

    def wait_until(self, condition, timeout: float, what: str) -> None:
        def ready():
            if self.closing.is_set():  # Ctrl-C: the rehearsal is closing
                raise KeyboardInterrupt
            return condition()

        wait_until(
            ready,
            f"{what} getting ready",
            timeout,
            0.05,
            explain=lambda: f"pods: {self.pods_in_short()}; logs in {self.logs_dir}",
            error=ServiceFailed,
        )

    def pods_in_short(self) -> str:
        """Each pod's state, whether the load balancer has it, its containers' probes: what a
        wait that timed out saw."""
        described = []
        for pod in self.describe_pods():
            probes = ", ".join(f"{container['name']}: {container['probe']}" for container in pod["containers"])
            registered = "registered" if pod["registered"] else "not registered"
            described.append(f"{pod['name']} {pod['state']}, {registered} ({probes})")
        return "; ".join(described)

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

    def run_conclusive(self, floor: LoadFloor, attempts: int = 3, **run_args) -> Timeline:
        """One rolling update under load (`run(rollouts=1, ...)`), rolled again, up to `attempts`
        runs in all, while its load stayed below `floor` and no request failed: a failed request
        is proof enough, a run the load generator could not keep up with proves nothing."""
        attempt = 1
        while True:
            timeline = self.run(rollouts=1, **run_args)
            timeline.floor, timeline.attempts = floor, attempt
            summary = timeline.summary()
            rollout = summary["rollouts"][0]
            if summary["failed"] or floor.met(rollout) or attempt >= attempts:
                return timeline
            self.event(
                "deployment",
                "load-fell-behind",
                f"{rollout['requests']} requests at {rollout['rate']:g} /s, under the floor of {floor}: rolling again",
            )
            attempt += 1

    # -- what `workshop top` reads from another terminal --------------------------------------
    def describe_pods(self) -> list[dict]:
        return [pod.describe() for pod in self.pods if not pod.gone.is_set()]

    def publish(self) -> None:
        if not self.cluster.started or self.closing.is_set():
            return
        self._published = time.monotonic()
        runs.write_description(
            self.cluster.running_description(
                url=self.lb.url,
                nginx_conf=str(self.proxy.conf_path) if self.lb_kind != "l4" else None,
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
