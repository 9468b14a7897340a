"""One snapshot of a running topology, as `workshop top` shows it and `--json` writes it:
its nodes, Celery workers, beats and their lock, load balancer, and a rehearsal's pods."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class UwsgiWorker:
    pid: int
    requests: int
    status: str  # idle, busy, cheap, ...
    respawns: int
    rss_kib: int


@dataclass
class NodeStats:
    name: str
    url: str
    pid: int | None  # the uWSGI master
    state: str  # up, stopped, no stats (the stats server did not answer)
    requests: int = 0  # sum over its workers
    rss_kib: int = 0  # master + workers
    workers: list[UwsgiWorker] = field(default_factory=list)


@dataclass
class PoolChild:
    pid: int
    rss_kib: int
    age_s: float


@dataclass
class CeleryWorker:
    name: str
    pid: int
    state: str  # running, gone
    rss_kib: int = 0  # the main process
    age_s: float = 0.0
    tasks: int | None = None  # tasks this worker received (inspect's `total`), None if it did not answer
    children: list[PoolChild] = field(default_factory=list)


@dataclass
class BeatProcess:
    name: str
    pid: int
    state: str  # running, gone
    acquired_at: str | None = None  # when its newest run acquired the lock, by its log


@dataclass
class BeatLock:
    key: str
    held: bool
    ttl_s: float | None = None
    holder: str | None = None  # the process whose run made the lock's token (workshop.redbeat_lock)
    token: str | None = None  # the lock's value in Redis


@dataclass
class Upstream:
    address: str
    node: str | None
    up: bool
    served: int | None = None  # of the load balancer's last `recent` requests


@dataclass
class LoadBalancer:
    url: str
    conf: str
    upstreams: list[Upstream] = field(default_factory=list)
    recent: int = 0  # requests the `served` counts are out of


@dataclass
class PodContainer:
    name: str
    pid: int | None
    running: bool
    ready: bool
    probe: str  # the last probe's result, or "no probe: ready once started"
    stop_signal: str


@dataclass
class PodStats:
    """A pod of a lab 05 rehearsal."""

    name: str
    state: str  # starting, serving not ready, waiting for its gate, ready, terminating, gone
    registered: bool
    gates: dict[str, bool] = field(default_factory=dict)
    containers: list[PodContainer] = field(default_factory=list)
    uwsgi: NodeStats | None = None  # its uWSGI's stats server: requests, workers


@dataclass
class Snapshot:
    run: str
    lab: str
    title: str
    taken_at: str
    nodes: list[NodeStats] = field(default_factory=list)
    workers: list[CeleryWorker] = field(default_factory=list)
    inspect_error: str | None = None
    beats: list[BeatProcess] = field(default_factory=list)
    locks: list[BeatLock] = field(default_factory=list)
    redis_error: str | None = None
    load_balancer: LoadBalancer | None = None
    pods: list[PodStats] = field(default_factory=list)
    service: dict | None = None  # a rehearsal's load balancer: kind, lags, registered, pending, connections

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Snapshot":
        """A snapshot written by `workshop top --json` (or recorded for a test)."""
        nodes = [
            NodeStats(**{**node, "workers": [UwsgiWorker(**worker) for worker in node["workers"]]})
            for node in data["nodes"]
        ]
        workers = [
            CeleryWorker(**{**worker, "children": [PoolChild(**child) for child in worker["children"]]})
            for worker in data["workers"]
        ]
        lb = data.get("load_balancer")
        if lb:
            lb = LoadBalancer(**{**lb, "upstreams": [Upstream(**upstream) for upstream in lb["upstreams"]]})
        pods = []
        for pod in data.get("pods", []):
            uwsgi = pod.get("uwsgi")
            if uwsgi:
                uwsgi = NodeStats(**{**uwsgi, "workers": [UwsgiWorker(**worker) for worker in uwsgi["workers"]]})
            containers = [PodContainer(**container) for container in pod.get("containers", [])]
            pods.append(PodStats(**{**pod, "containers": containers, "uwsgi": uwsgi}))
        return cls(
            **{
                **data,
                "nodes": nodes,
                "workers": workers,
                "beats": [BeatProcess(**beat) for beat in data["beats"]],
                "locks": [BeatLock(**lock) for lock in data["locks"]],
                "load_balancer": lb,
                "pods": pods,
            }
        )
