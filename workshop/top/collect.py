"""The collector: one snapshot of a running topology at each refresh of `workshop top`.

It reads each source (workshop.top.sources) and keeps what is worth keeping between
refreshes (a Celery client, how far each beat log was read), so a refresh costs a few
milliseconds plus Celery's inspect, time-boxed. A lab 05 rehearsal's pods come with the
load balancer's registrations, pending (de)registrations and open connections per pod,
as the rehearsal describes them.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import redis

from workshop.redbeat_lock import BeatLog, BeatRun, holder_of
from workshop.runs import ProcfileRef, RunningCluster, read_description
from workshop.top.snapshot import BeatProcess, LoadBalancer, Snapshot, Upstream
from workshop.top.sources import (
    acquired_text,
    celery_worker,
    node_stats,
    pod_stats,
    process_state,
    read_uwsgi_stats,
    recent_upstreams,
    redbeat_locks,
    tasks_by_pid,
    tcp_up,
    upstream_servers,
)

INSPECT_TIMEOUT = 1.0  # seconds: the view never waits longer for Celery's workers


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
