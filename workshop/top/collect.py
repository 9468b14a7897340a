"""One snapshot of a running topology, from the processes themselves (nothing guessed):

- nodes: uWSGI's stats server (requests, pid and status of each worker), RSS by psutil;
- Celery workers: psutil children of each worker's main process (the pool), tasks by
  Celery's remote control (`inspect().stats()`, time-boxed);
- beat: RedBeat's lock in Redis, its holder named by the lock's token (workshop.redbeat_lock);
- load balancer: the upstream servers of its nginx conf, each probed with a TCP connect,
  and which one served each of the last requests (its access log's $upstream_addr);
- a lab 05 rehearsal (`workshop rollout 05`, `workshop start 05`): its pods as the
  rehearsal describes them (state, each container's readiness and last probe, readiness
  gates, registered or not), uWSGI's stats server of each, and the load balancer's
  registrations, pending (de)registrations and open connections per pod.

A `Collector` keeps what is worth keeping between refreshes (a Celery client, how far
each beat log was read), so a refresh costs a few milliseconds plus the inspect.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import redis

from workshop.redbeat_lock import BeatLog, BeatRun, holder_of, read_lock
from workshop.runs import NodeRef, ProcfileRef, RunningCluster, read_description

INSPECT_TIMEOUT = 1.0  # seconds: the view never waits longer for Celery's workers
PROBE_TIMEOUT = 0.3  # seconds for a TCP connect to an upstream or a stats server
RECENT_REQUESTS = 100  # the load balancer's share: over its last N proxied requests


# -- the snapshot ------------------------------------------------------------------------


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


# -- sources -----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss // 1024
    except psutil.Error:
        return 0


def read_uwsgi_stats(address: str, timeout: float = PROBE_TIMEOUT) -> dict | None:
    """uWSGI's stats server sends one JSON document and closes the connection."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as connection:
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None


def node_stats(node, stats: dict | None) -> NodeStats:
    if node.pid is None:
        return NodeStats(node.name, node.url, None, "stopped")
    if stats is None:
        return NodeStats(node.name, node.url, node.pid, "no stats")
    workers = [
        UwsgiWorker(
            pid=worker["pid"],
            requests=worker["requests"],
            status=worker["status"],
            respawns=max(worker["respawn_count"] - 1, 0),  # uWSGI counts the first spawn too
            rss_kib=rss_kib(worker["pid"]) if worker["pid"] else 0,
        )
        for worker in stats["workers"]
    ]
    return NodeStats(
        node.name,
        node.url,
        stats["pid"],
        "up",
        requests=sum(worker.requests for worker in workers),
        rss_kib=rss_kib(stats["pid"]) + sum(worker.rss_kib for worker in workers),
        workers=workers,
    )


def process_state(pid: int) -> tuple[str, psutil.Process | None]:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone", None
        return "running", process
    except psutil.Error:
        return "gone", None


def celery_worker(ref: ProcfileRef, tasks: int | None, now: float) -> CeleryWorker:
    state, process = process_state(ref.pid)
    worker = CeleryWorker(ref.name, ref.pid, state, tasks=tasks)
    if process is None:
        return worker
    try:
        worker.rss_kib = process.memory_info().rss // 1024
        worker.age_s = round(now - process.create_time(), 1)
        for child in process.children():
            try:
                worker.children.append(
                    PoolChild(child.pid, child.memory_info().rss // 1024, round(now - child.create_time(), 1))
                )
            except psutil.Error:
                continue  # replaced while we looked
    except psutil.Error:
        worker.state = "gone"
    return worker


def tasks_by_pid(replies: dict) -> dict[int, int]:
    """inspect().stats() replies, by the worker's main pid: tasks received, over all task names."""
    return {reply["pid"]: sum(reply.get("total", {}).values()) for reply in replies.values() if "pid" in reply}


# RedBeat's lock is `<key prefix>:lock`; the prefix defaults to "redbeat:" (so `redbeat::lock`).
LOCK_PATTERN = "*:lock"


def redbeat_locks(client: redis.Redis) -> list[BeatLock]:
    locks = []
    for key in sorted(client.scan_iter(match=LOCK_PATTERN, count=1000, _type="string")):
        lock = read_lock(client, key.decode())
        if lock.token is None:
            continue  # expired while we looked
        locks.append(BeatLock(lock.key, True, lock.ttl_s, token=lock.token))
    return locks


def acquired_text(runs: list[BeatRun]) -> str | None:
    """When the newest run of a beat acquired the lock, as its log wrote it (None: not yet)."""
    acquired = runs[-1].acquired if runs else None
    return acquired.astimezone().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3] if acquired else None


def upstream_servers(conf: str) -> list[str]:
    """host:port of every `server` line in the conf's upstream blocks."""
    servers = []
    for block in re.findall(r"\bupstream\s+\S+\s*\{(.*?)\}", conf, re.S):
        servers += re.findall(r"^\s*server\s+([^\s;]+)", block, re.M)
    return servers


def tcp_up(address: str, timeout: float = PROBE_TIMEOUT) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


UPSTREAM_FIELD = re.compile(rb" (\d{1,3}(?:\.\d{1,3}){3}:\d+)$")


def recent_upstreams(access_log: Path, last: int = RECENT_REQUESTS, tail_bytes: int = 64 * 1024) -> list[str]:
    """The upstream of each of the last `last` proxied requests (the log's last field)."""
    try:
        with open(access_log, "rb") as log:
            log.seek(max(0, log.seek(0, 2) - tail_bytes))
            lines = log.read().splitlines()
    except FileNotFoundError:
        return []
    served = [match.group(1).decode() for line in lines if (match := UPSTREAM_FIELD.search(line))]
    return served[-last:]


def pod_stats(pod: dict) -> PodStats:
    """A rehearsal pod, as described, with its uWSGI's stats server asked now."""
    containers = [PodContainer(**container) for container in pod.get("containers", [])]
    uwsgi = next((c for c in containers if c.name == "uwsgi"), None)
    stats = None
    if uwsgi is not None and uwsgi.running:
        ref = NodeRef(pod["name"], f"http://127.0.0.1:{pod.get('service_port', 0)}", uwsgi.pid, pod["stats"])
        stats = node_stats(ref, read_uwsgi_stats(pod["stats"]))
    return PodStats(
        name=pod["name"],
        state=pod["state"],
        registered=pod["registered"],
        gates=pod.get("gates", {}),
        containers=containers,
        uwsgi=stats,
    )


# -- the collector -----------------------------------------------------------------------


class Collector:
    def __init__(self, cluster: RunningCluster, inspect_timeout: float = INSPECT_TIMEOUT):
        self.cluster = cluster
        self.inspect_timeout = inspect_timeout
        self.redis = redis.Redis.from_url(cluster.redis_url, socket_timeout=1, socket_connect_timeout=1)
        self._celery = None
        self._beat_logs: dict[str, BeatLog] = {}  # each beat's and worker's log (a worker may embed a beat)

    @property
    def celery(self):
        if self._celery is None:
            from celery import Celery

            app = Celery("workshop-top", broker=self.cluster.redis_url)
            app.conf.update(broker_connection_timeout=1, broker_connection_retry=False, broker_connection_max_retries=0)
            self._celery = app
        return self._celery

    def close(self) -> None:
        self.redis.close()
        if self._celery is not None:
            self._celery.close()

    def still_running(self) -> bool:
        """Reads the description again: nodes and processes restarted since have new pids."""
        current = read_description(self.cluster.run)
        if current is None or not current.alive():
            return False
        self.cluster = current
        return True

    def collect(self) -> Snapshot:
        self.still_running()
        cluster = self.cluster
        now = time.time()
        snapshot = Snapshot(cluster.run, cluster.lab, cluster.title, datetime.now().isoformat(timespec="seconds"))
        snapshot.nodes = [
            node_stats(node, read_uwsgi_stats(node.stats) if node.pid else None) for node in cluster.nodes
        ]
        self._collect_celery(snapshot, now)
        self._collect_beat(snapshot)
        if cluster.pods:
            snapshot.pods = [pod_stats(pod) for pod in cluster.pods]
            snapshot.service = cluster.load_balancer
        elif cluster.nginx_conf and cluster.url:
            snapshot.load_balancer = self._load_balancer()
        return snapshot

    def _collect_celery(self, snapshot: Snapshot, now: float) -> None:
        refs = [ref for ref in self.cluster.processes if ref.kind == "worker"]
        if not refs:
            return
        tasks: dict[int, int] = {}
        try:
            # A refused connection costs kombu ~2 s of retries; Redis's own client knows at once.
            self.redis.ping()
            replies = self.celery.control.inspect(timeout=self.inspect_timeout, limit=len(refs)).stats() or {}
            tasks = tasks_by_pid(replies)
        except Exception as exc:  # the broker is down or busy (redis or kombu errors): show the rest anyway
            snapshot.inspect_error = f"{type(exc).__name__}: {exc}"
        snapshot.workers = [celery_worker(ref, tasks.get(ref.pid), now) for ref in refs]

    def _beat_runs(self, ref: ProcfileRef) -> list[BeatRun]:
        log = self._beat_logs.setdefault(ref.name, BeatLog(ref.name, Path(self.cluster.logs_dir) / f"{ref.name}.log"))
        return log.read()

    def _collect_beat(self, snapshot: Snapshot) -> None:
        refs = [ref for ref in self.cluster.processes if ref.kind == "beat"]
        if not refs:
            return
        runs = [run for ref in self.cluster.processes if ref.kind == "worker" for run in self._beat_runs(ref)]
        for ref in refs:
            state, _ = process_state(ref.pid)
            beat_runs = self._beat_runs(ref)
            runs += beat_runs
            snapshot.beats.append(BeatProcess(ref.name, ref.pid, state, acquired_text(beat_runs)))
        try:
            snapshot.locks = redbeat_locks(self.redis)
        except redis.RedisError as exc:
            snapshot.redis_error = f"{type(exc).__name__}: {exc}"
            return
        for lock in snapshot.locks:
            lock.holder = holder_of(lock.token, runs)

    def _load_balancer(self) -> LoadBalancer:
        cluster = self.cluster
        node_of = {node.url.rsplit("//", 1)[1]: node.name for node in cluster.nodes}
        try:
            servers = upstream_servers(Path(cluster.nginx_conf).read_text())
        except FileNotFoundError:
            servers = []
        recent = recent_upstreams(Path(cluster.logs_dir) / "lb-access.log")
        return LoadBalancer(
            url=cluster.url,
            conf=cluster.nginx_conf,
            upstreams=[
                Upstream(address, node_of.get(address), tcp_up(address), recent.count(address)) for address in servers
            ],
            recent=len(recent),
        )
