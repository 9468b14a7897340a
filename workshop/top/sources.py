"""Where a snapshot's numbers come from: the processes themselves (nothing guessed).

- nodes: uWSGI's stats server (requests, pid and status of each worker), RSS by psutil;
- Celery workers: psutil children of each worker's main process (the pool), tasks by
  Celery's remote control (`inspect().stats()`, read by the collector);
- beat: RedBeat's lock in Redis, its holder named by the lock's token (workshop.redbeat_lock);
- load balancer: the upstream servers of its nginx conf, each probed with a TCP connect,
  and which one served each of the last requests (its access log's $upstream_addr);
- a lab 05 rehearsal (`workshop rollout 05`, `workshop start 05`): its pods as the
  rehearsal describes them (state, each container's readiness and last probe, readiness
  gates, registered or not) and uWSGI's stats server of each.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import psutil
import redis

from workshop.redbeat_lock import BeatRun, read_lock
from workshop.runs import NodeRef, ProcfileRef
from workshop.top.snapshot import BeatLock, CeleryWorker, NodeStats, PodContainer, PodStats, PoolChild, UwsgiWorker

PROBE_TIMEOUT = 0.3  # seconds for a TCP connect to an upstream or a stats server
RECENT_REQUESTS = 100  # the load balancer's share: over its last N proxied requests


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
