"""A rolling update of the web Deployment `cms` on kind, under the rehearsal's load.

    timeline = run_rollouts(api, LoadShape(rate=120), rollouts=2)

The load goes through the kind port mapping (kind-config.yaml: 127.0.0.1:30080 -> NodePort 30080 -> the
Service `cms`). A watch on the pods (label app=cms) records their lifecycle into the same
Timeline the rehearsal fills, so the same summary applies; the watch events are raw dicts
(`Watch.stream(..., deserialize=False)`), and turning one into timeline events is a pure
function (`pod_changes`), tested with recorded events.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from workshop.errors import WorkshopError
from workshop.kind.apply import NAMESPACE
from workshop.rollout.load import Clock, LoadGenerator, LoadShape
from workshop.rollout.manifest import surge_and_unavailable
from workshop.rollout.timeline import Event, Request, Timeline

DEPLOYMENT = "cms"
SELECTOR = "app=cms"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
WARMING_SECONDS = 10.0  # after a pod turns Ready, how long a failure may be blamed on its warm-up


# -- from a watch event to timeline events (pure) ----------------------------------------------------
def _ready(pod: dict | None) -> bool:
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _scheduled_on(pod: dict | None) -> str | None:
    pod = pod or {}
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return (pod.get("spec") or {}).get("nodeName") or "a node"
    return None


def _containers(pod: dict | None) -> dict[str, dict]:
    return {c["name"]: c for c in ((pod or {}).get("status") or {}).get("containerStatuses") or []}


def pod_changes(old: dict | None, new: dict, event_type: str) -> list[tuple[str, str]]:
    """What changed from the last seen object of a pod (`old`, None if never seen) to `new`,
    as (event, detail) pairs in the order they happen to a pod."""
    changes: list[tuple[str, str]] = []
    if old is None:
        changes.append(("created", ""))
    if _scheduled_on(new) and not _scheduled_on(old):
        changes.append(("scheduled", _scheduled_on(new)))
    before, after = _containers(old), _containers(new)
    for name, status in after.items():
        previous = before.get(name, {})
        if "running" in (status.get("state") or {}) and "running" not in (previous.get("state") or {}):
            changes.append(("container-started", name))
    for name, status in after.items():
        if bool(status.get("ready")) != bool(before.get(name, {}).get("ready")):
            changes.append(("container-ready" if status.get("ready") else "container-unready", name))
    if _ready(new) != _ready(old) and (old is not None or _ready(new)):
        changes.append(("ready" if _ready(new) else "unready", ""))
    deletion = (new.get("metadata") or {}).get("deletionTimestamp")
    if deletion and not ((old or {}).get("metadata") or {}).get("deletionTimestamp"):
        grace = (new.get("metadata") or {}).get("deletionGracePeriodSeconds")
        changes.append(("terminating", f"grace {grace} s" if grace is not None else ""))
    for name, status in after.items():
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and "terminated" not in (before.get(name, {}).get("state") or {}):
            changes.append(("exited", f"{name} {terminated.get('exitCode')}"))
    if event_type == "DELETED":
        changes.append(("deleted", ""))
    return changes


class PodEvents:
    """The last seen object of each pod, and the timeline events their changes make."""

    def __init__(self) -> None:
        self.pods: dict[str, dict] = {}  # name -> last object; deleted pods are removed

    def record(self, watch_event: dict, t: float, existing: bool = False) -> list[Event]:
        """`existing`: the pod was there before the run began; its history is not replayed,
        one "existing" event says in which state it was found."""
        kind = watch_event["type"]
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return []  # BOOKMARK, ERROR: no pod changed
        pod = watch_event["object"]
        name = pod["metadata"]["name"]
        if existing and name not in self.pods:
            state = "Ready" if _ready(pod) else "not Ready"
            events = [Event(round(t, 4), name, "existing", f"{state} on {_scheduled_on(pod) or 'no node yet'}")]
        else:
            events = [Event(round(t, 4), name, e, detail) for e, detail in pod_changes(self.pods.get(name), pod, kind)]
        if kind == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
        return events

    def terminating(self) -> list[str]:
        return [name for name, pod in self.pods.items() if pod["metadata"].get("deletionTimestamp")]


def events_from_watch(recorded: list[dict]) -> list[Event]:
    """Timeline events from recorded watch events: [{"t": seconds, "type": ..., "object": pod,
    "existing": listed before the watch began (optional)}, ...]."""
    pods = PodEvents()
    return [event for item in recorded for event in pods.record(item, item["t"], item.get("existing", False))]


# -- failure classes where the cluster does not name the pod ---------------------------------------
class ClusterTimeline(Timeline):
    """A Timeline whose failures are classified from the pod events a watch sees.

    On kind nothing names the pod a failed request was routed to: kube-proxy adds no header
    (the rehearsal's load balancer adds X-Upstream/X-Pod), and a pod that fails does not
    answer with X-Served-By. So a failed request without a pod gets the class the events
    make most likely, and it is a best guess, not a proof:
      in-flight-at-shutdown  some pod began terminating while the request was in flight
                             (its SIGTERM, or its preStop, starts at that moment or later)
      after-termination      it started while some pod was terminating and not yet deleted
                             (the Service may still have routed it there)
      not-serving-yet        it started within WARMING_SECONDS of a pod turning Ready
                             (Ready before uWSGI serves: no readiness probe)
      other                  none of those
    A failed request that does name its pod (a 5xx from cms) is classified from that pod's
    own events, with "Ready" standing in for "serving".
    """

    def _failure_class(self, request: Request) -> str:
        if request.pod is not None:
            return self._pod_failure_class(request)
        terminating = [(e.t, e.pod) for e in self.events if e.event == "terminating"]
        if any(request.start < t < request.end for t, _ in terminating):
            return "in-flight-at-shutdown"
        for t, pod in terminating:
            deleted = self.first(pod, "deleted")
            if t <= request.start and (deleted is None or request.start <= deleted):
                return "after-termination"
        existing = self.existing_pods()
        for event in self.events:
            if event.event == "ready" and event.pod not in existing and 0 <= request.start - event.t <= WARMING_SECONDS:
                return "not-serving-yet"
        return "other"

    def existing_pods(self) -> set[str]:
        return {e.pod for e in self.events if e.event == "existing"}

    def _pod_failure_class(self, request: Request) -> str:
        terminating = self.first(request.pod, "terminating")
        if terminating is not None and request.start < terminating < request.end:
            return "in-flight-at-shutdown"
        if terminating is not None and request.start >= terminating:
            return "after-termination"
        ready = self.first(request.pod, "ready")
        if request.pod in self.existing_pods():
            return "other"
        if ready is None or request.start < ready + WARMING_SECONDS:
            return "not-serving-yet"
        return "other"


# -- the Deployment ----------------------------------------------------------------------------------
def restart_patch(now: datetime) -> dict:
    """What `kubectl rollout restart` sends: a new pod-template annotation, hence a new ReplicaSet."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def rolled_out(deployment: dict, terminating_pods: int) -> bool:
    """The rollout is complete: the controller saw the new spec, every replica is updated and
    Ready, and no old pod is still terminating."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    replicas = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= (deployment.get("metadata") or {}).get("generation", 0)
        and status.get("updatedReplicas", 0) == replicas
        and status.get("readyReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and terminating_pods == 0
    )


def settings_of(deployment: dict, shape: LoadShape) -> dict:
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge, unavailable = surge_and_unavailable(
        replicas, rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")
    )
    return {
        "files": "kind",
        "replicas": replicas,
        "max_surge": surge,
        "max_unavailable": unavailable,
        "grace_seconds": spec["template"]["spec"].get("terminationGracePeriodSeconds", 30),
        "readiness_gates": [g.get("conditionType") for g in spec["template"]["spec"].get("readinessGates") or []],
        "rate": shape.rate,
        "slow_every": shape.slow_every,
        "slow_seconds": shape.slow_seconds,
    }


# -- the watch ------------------------------------------------------------------------------------------
class PodWatcher:
    """A thread watching the pods of `selector`, recording their changes into the timeline."""

    def __init__(self, api, timeline: Timeline, clock: Clock, namespace: str = NAMESPACE, selector: str = SELECTOR):
        self.api = api
        self.timeline = timeline
        self.clock = clock
        self.namespace = namespace
        self.selector = selector
        self.pods = PodEvents()
        self.lock = threading.Lock()
        self.synced = threading.Event()  # the first list of existing pods has arrived
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._watch = None
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15) -> None:
        self.stopping.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout)

    def terminating(self) -> int:
        with self.lock:
            return len(self.pods.terminating())

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        resource_version = None
        while not self.stopping.is_set():
            self._watch = watch.Watch()
            try:
                if resource_version is None:
                    # a fresh list of what exists now: a restarted watch then invents no changes
                    listed = self.api.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
                    resource_version = listed.metadata.resource_version
                    pods = self.api.client.sanitize_for_serialization(listed.items)
                    with self.lock:
                        listed_names = {pod["metadata"]["name"] for pod in pods}
                        for name, last in list(self.pods.pods.items()):
                            if name not in listed_names:  # deleted while the watch was away
                                self._record({"type": "DELETED", "object": last})
                        for pod in pods:
                            self._record({"type": "ADDED", "object": pod}, existing=not self.synced.is_set())
                    self.synced.set()
                # timeout_seconds: the server ends the watch every few seconds, so stop() is
                # noticed even when no pod changes
                for item in self._watch.stream(
                    self.api.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=resource_version,
                    timeout_seconds=2,
                    _request_timeout=10,
                    deserialize=False,
                ):
                    metadata = (item.get("object") or {}).get("metadata") or {}
                    resource_version = metadata.get("resourceVersion", resource_version)
                    with self.lock:
                        self._record(item)
                    if self.stopping.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: the version expired; list again
                    self.error = exc
                    return
                resource_version = None
            except KeyError:
                # an ERROR event (the version expired) read without deserializing: the client
                # looks for a key only deserialized events have; list again
                resource_version = None
            except Exception as exc:  # the API server went away: report it, do not hang the rollout
                self.error = exc
                return

    def _record(self, item: dict, existing: bool = False) -> None:
        self.timeline.events.extend(self.pods.record(item, self.clock.now(), existing))


# -- the run ------------------------------------------------------------------------------------------------
class RolloutFailed(WorkshopError, RuntimeError):
    pass


def listed_terminating(api) -> int:
    pods = api.core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
    return sum(bool(pod["metadata"].get("deletionTimestamp")) for pod in api.client.sanitize_for_serialization(pods))


def roll_once(api, timeline: Timeline, clock: Clock, watcher: PodWatcher, timeout: float = 300) -> tuple[float, float]:
    """One `kubectl rollout restart`, then wait until it is complete; returns (start, end)."""
    start = clock.now()
    api.apps.patch_namespaced_deployment(DEPLOYMENT, NAMESPACE, restart_patch(datetime.now(UTC)))
    timeline.events.append(Event(round(start, 4), "deployment", "rollout-start", "restartedAt annotation"))
    deadline = time.monotonic() + timeout
    while True:
        if watcher.error is not None:
            raise RolloutFailed(f"the pod watch stopped: {watcher.error}")
        status = api.apps.read_namespaced_deployment_status(DEPLOYMENT, NAMESPACE)
        deployment = api.client.sanitize_for_serialization(status)
        # the watch may lag the status a little: a fresh list has the last word on old pods
        if rolled_out(deployment, watcher.terminating()) and rolled_out(deployment, listed_terminating(api)):
            break
        if time.monotonic() > deadline:
            from workshop.kind.apply import not_ready_pod

            raise RolloutFailed(
                f"the rollout did not complete in {timeout:g} s: " + not_ready_pod(api.core, NAMESPACE, SELECTOR)
            )
        time.sleep(0.25)
    end = clock.now()
    timeline.events.append(Event(round(end, 4), "deployment", "rollout-complete", "every pod updated, old pods gone"))
    timeline.rollouts.append((start, end))
    return start, end


def run_rollouts(
    api, shape: LoadShape, url: str, rollouts: int = 1, before: float = 2.0, after: float = 1.0
) -> ClusterTimeline:
    """Steady load through the port mapping, `rollouts` rolling updates one after the other,
    the pods watched all along. Load generator and watch are stopped on the way out, also on Ctrl-C."""
    timeline = ClusterTimeline()
    clock = Clock()
    deployment = api.client.sanitize_for_serialization(api.apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE))
    timeline.settings = settings_of(deployment, shape)
    watcher = PodWatcher(api, timeline, clock)
    load = LoadGenerator(url, shape, timeline, clock, pod_from_served_by=True)
    watcher.start()
    try:
        if not watcher.synced.wait(30):
            raise RolloutFailed(f"the pod watch did not start: {watcher.error or 'no answer in 30 s'}")
        load.start()
        time.sleep(before)
        for _ in range(rollouts):
            roll_once(api, timeline, clock, watcher)
        time.sleep(after)
    finally:
        load.stop()
        watcher.stop()
    timeline.classify()
    return timeline
