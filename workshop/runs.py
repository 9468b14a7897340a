"""The runs of clusters on this machine: their folders (<state dir>/runs/: logs, node
disks; kept for a look after a failure, pruned but never while in use), and the
description a running Cluster writes of itself, so `workshop top` in another terminal
can find it: `<state dir>/running/<run name>.json`, written when the cluster has started
(again whenever a node or a Procfile process changes) and removed on stop.

A description is live while the process that runs the cluster is: the same pid with
the same start time (a pid alone can be reused by an unrelated process).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from workshop.errors import BadInput
from workshop.paths import runs_dir, state_dir


def running_dir() -> Path:
    return state_dir() / "running"


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    started: float  # psutil's create_time: tells this process from a later one with the same pid

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        return cls(pid, psutil.Process(pid).create_time())

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return process.create_time() == self.started and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


@dataclass
class NodeRef:
    name: str
    url: str
    pid: int | None  # the uWSGI master; None while the node is stopped
    stats: str  # host:port of uWSGI's stats server


@dataclass
class ProcfileRef:
    name: str  # the instance: worker, beat-1, beat-2
    pid: int
    command: list[str]

    @property
    def kind(self) -> str:
        """worker or beat, from the celery command line; else the instance's name."""
        for kind in ("worker", "beat"):
            if kind in self.command:
                return kind
        return self.name


@dataclass
class RunningCluster:
    run: str
    lab: str
    title: str
    owner: ProcessRef
    url: str | None  # the load balancer (None without nodes)
    nginx_conf: str | None
    redis_url: str
    logs_dir: str
    nodes: list[NodeRef] = field(default_factory=list)
    processes: list[ProcfileRef] = field(default_factory=list)
    # a lab 05 rehearsal: its pods (containers, probes, gates) and its load balancer's state
    pods: list[dict] = field(default_factory=list)
    load_balancer: dict | None = None

    def alive(self) -> bool:
        return self.owner.alive()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunningCluster":
        return cls(
            **{
                **data,
                "owner": ProcessRef(**data["owner"]),
                "nodes": [NodeRef(**node) for node in data["nodes"]],
                "processes": [ProcfileRef(**process) for process in data["processes"]],
            }
        )


def description_path(run: str) -> Path:
    return running_dir() / f"{run}.json"


def write_description(cluster: RunningCluster) -> Path:
    """Write atomically (a reader never sees half a file)."""
    path = description_path(cluster.run)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer
    partial.write_text(json.dumps(cluster.to_dict(), indent=2))
    partial.replace(path)
    return path


def read_description(run: str) -> RunningCluster | None:
    """The current description of `run` (rewritten when a node or process changed), None once it stopped."""
    try:
        return RunningCluster.from_dict(json.loads(description_path(run).read_text()))
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return None


def remove_description(run: str) -> None:
    description_path(run).unlink(missing_ok=True)


class NoRunningCluster(BadInput, LookupError):
    pass


def find_running(run: str | None = None) -> RunningCluster:
    """The newest live description (or the one named `run`). Stale ones (their cluster's
    process is gone) and unreadable ones are removed on the way."""
    live: list[tuple[float, RunningCluster]] = []
    for path in running_dir().glob("*.json") if running_dir().is_dir() else ():
        try:
            cluster = RunningCluster.from_dict(json.loads(path.read_text()))
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue  # its cluster stopped while we looked
        except (ValueError, TypeError, KeyError):
            path.unlink(missing_ok=True)
            continue
        if not cluster.alive():
            path.unlink(missing_ok=True)
            continue
        live.append((mtime, cluster))
    if run is not None:
        for _, cluster in live:
            if cluster.run == run:
                return cluster
        names = ", ".join(cluster.run for _, cluster in live) or "none"
        raise NoRunningCluster(f"no running lab named {run!r} (running: {names})")
    if not live:
        raise NoRunningCluster("no running lab: start one with `workshop start NN`")
    return max(live, key=lambda item: item[0])[1]


KEEP_RUNS = 10  # run directories (logs, node disks) kept for a look after a failure


IN_USE = ".in-use"  # held (flock, shared) by the process whose cluster runs in the folder


def hold_run_dir(run_dir: Path):
    """Mark a run directory as in use for as long as the returned file stays open."""
    handle = open(run_dir / IN_USE, "w")
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def prune_old_runs(keep: int) -> None:
    """Remove all but the newest `keep` run directories of earlier clusters, never one
    that a cluster still runs in (two checks at once, a long one and many short ones)."""
    runs_dir().mkdir(parents=True, exist_ok=True)
    newest_first = sorted(runs_dir().iterdir(), key=lambda path: path.stat().st_mtime, reverse=True)
    for old in newest_first[keep:]:
        marker = old / IN_USE
        if marker.exists():
            with open(marker) as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live cluster's folder
        shutil.rmtree(old, ignore_errors=True)
