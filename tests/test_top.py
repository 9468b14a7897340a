"""`workshop top`: finding the running lab, collecting real numbers from it, rendering them."""

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import pytest
from rich.console import Console

from workshop import runs as running
from workshop.celery_client import celery_client
from workshop.curriculum import find_lab
from workshop.layers import lab_files_dir
from workshop.redbeat_lock import BeatLog, BeatRun, holder_of, log_time, token_time
from workshop.scenarios.beat_ticks import sends
from workshop.top.collect import Collector
from workshop.top.render import beat_table, load_balancer_table, lock_text, nodes_table, workers_table
from workshop.top.snapshot import Snapshot
from workshop.top.sources import recent_upstreams, upstream_servers
from workshop.topology import Cluster

WORKSHOP = [sys.executable, "-m", "workshop.cli"]
REQUESTS = 20
TASKS = 5


def workshop(*args, state_dir=None):
    env = {**os.environ, "COLUMNS": "200"}
    if state_dir:
        env["WORKSHOP_STATE_DIR"] = str(state_dir)
    return subprocess.run([*WORKSHOP, *args], capture_output=True, text=True, env=env, timeout=60)


# -- (a) a real cluster ------------------------------------------------------------------


@pytest.mark.cluster
def test_top_measures_a_running_lab_04():
    started = time.monotonic()
    lab = find_lab("04")
    with Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=2) as cluster:
        description = running.description_path(cluster.run_dir.name)
        assert description.exists()
        assert running.find_running().run == cluster.run_dir.name  # the newest live one: this one

        served_by = Counter(
            httpx.get(f"{cluster.url}/healthz/live").headers["X-Served-By"].split("/")[0] for _ in range(REQUESTS)
        )
        app = celery_client(cluster.redis.url)
        assert all(app.send_task("cms.signage.tasks.ping").get(timeout=30).startswith("pong") for _ in range(TASKS))

        deadline = time.monotonic() + 30
        while not sends(cluster) and time.monotonic() < deadline:  # the first tick, from the lock holder
            time.sleep(0.2)

        # inspect returns as soon as the worker answers; 10 s is a margin for a busy machine
        collector = Collector(running.find_running(cluster.run_dir.name), inspect_timeout=10)
        try:
            snapshot = collector.collect()
            nodes = {node.name: node for node in snapshot.nodes}
            # Every request a node served through the load balancer is in its uWSGI stats
            # (the readiness probes add a few more).
            assert set(nodes) == {"node-1", "node-2"}
            for name, node in nodes.items():
                assert node.state == "up"
                assert node.requests >= served_by[name], (name, node.requests, served_by)
                assert len(node.workers) == cluster.workers_per_node
                assert node.rss_kib > sum(worker.rss_kib for worker in node.workers) > 0  # + the master
            assert sum(node.requests for node in nodes.values()) >= REQUESTS

            (worker,) = snapshot.workers
            assert worker.state == "running" and worker.rss_kib > 0
            pool = {child.pid for child in psutil.Process(cluster.procfile_runs["worker"].pid).children()}
            assert {child.pid for child in worker.children} == pool and len(pool) == 2  # --concurrency=2
            assert all(child.rss_kib > 0 for child in worker.children)
            assert worker.tasks >= TASKS  # the pings, and the beat's ticks

            (lock,) = snapshot.locks
            assert lock.key == "redbeat::lock" and lock.held and 0 <= lock.ttl_s <= 5  # CELERY_REDBEAT_LOCK_TIMEOUT
            assert {beat.name for beat in snapshot.beats} == {"beat-1", "beat-2"}
            # The holder named by the lock's token is the beat that sends the ticks.
            assert lock.holder == sends(cluster)[-1][1]

            lb = snapshot.load_balancer
            assert [(upstream.node, upstream.up) for upstream in lb.upstreams] == [("node-1", True), ("node-2", True)]
            assert lb.recent == REQUESTS
            assert {upstream.node: upstream.served for upstream in lb.upstreams} == dict(served_by)

            result = workshop("top", "--json", "--run", cluster.run_dir.name)
            assert result.returncode == 0, result.stderr
            from_cli = Snapshot.from_dict(json.loads(result.stdout))
            assert [node.name for node in from_cli.nodes] == ["node-1", "node-2"]
            assert from_cli.locks[0].holder == lock.holder

            cluster.stop_node(cluster.nodes[0])
            after = collector.collect()
            assert [(upstream.node, upstream.up) for upstream in after.load_balancer.upstreams] == [
                ("node-1", False),
                ("node-2", True),
            ]
            assert [(node.name, node.state) for node in after.nodes] == [("node-1", "stopped"), ("node-2", "up")]
        finally:
            collector.close()
    assert not description.exists()
    print(f"cluster test: {time.monotonic() - started:.1f} s")


# -- (b) finding the running lab ---------------------------------------------------------


def a_description(run: str, owner: running.ProcessRef, stats_port: int = 9) -> running.RunningCluster:
    return running.RunningCluster(
        run=run,
        lab="01",
        title="a lab",
        owner=owner,
        url=None,
        nginx_conf=None,
        redis_url="redis://127.0.0.1:9/0",
        logs_dir="logs",
        nodes=[running.NodeRef("node-1", "http://127.0.0.1:9", os.getpid(), f"127.0.0.1:{stats_port}")],
    )


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_no_running_lab_exits_2_with_a_clear_message(tmp_path):
    result = workshop("top", "--once", state_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no running lab: start one with `workshop start NN`"
    assert "Traceback" not in result.stdout + result.stderr


def test_stale_descriptions_are_ignored_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path))
    dead = running.write_description(a_description("lab01-dead", running.ProcessRef(a_dead_pid(), 0.0)))
    # A live pid with another start time: the pid was reused by an unrelated process.
    reused = running.write_description(a_description("lab01-reused", running.ProcessRef(os.getpid(), 1.0)))
    (tmp_path / "running" / "lab01-torn.json").write_text("{")

    result = workshop("top", "--once", state_dir=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "no running lab" in result.stderr
    assert list((tmp_path / "running").iterdir()) == []
    assert not dead.exists() and not reused.exists()


def test_top_picks_the_newest_live_run_or_the_one_named(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path))
    me = running.ProcessRef.of(os.getpid())
    older = running.write_description(a_description("lab01-older", me))
    os.utime(older, (time.time() - 60, time.time() - 60))
    running.write_description(a_description("lab01-newer", me))
    assert running.find_running().run == "lab01-newer"
    assert running.find_running("lab01-older").run == "lab01-older"

    result = workshop("top", "--once", state_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "run lab01-newer" in result.stdout
    assert "no stats" in result.stdout  # nothing answers on its stats address

    result = workshop("top", "--once", "--run", "lab01-gone", state_dir=tmp_path)
    assert result.returncode == 2
    assert "no running lab named 'lab01-gone' (running: lab01-" in result.stderr


# -- (c) sources and rendering, without a cluster ----------------------------------------


def test_the_upstreams_of_the_clusters_own_load_balancer_conf():
    lab = find_lab("01")
    cluster = Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=3)  # not started
    expected = [node.url.removeprefix("http://") for node in cluster.nodes]
    assert upstream_servers(cluster.load_balancer_conf()) == expected


def test_recent_upstreams_count_only_proxied_requests(tmp_path):
    log = tmp_path / "lb-access.log"
    log.write_text(
        '127.0.0.1 [27/Nov/2026:04:41:01 +0000] "GET /_lb/health HTTP/1.1" 200 -\n'
        + '127.0.0.1 [27/Nov/2026:04:41:01 +0000] "GET / HTTP/1.1" 200 127.0.0.1:4001\n' * 3
        + '127.0.0.1 [27/Nov/2026:04:41:02 +0000] "GET / HTTP/1.1" 502 127.0.0.1:4002\n'
    )
    assert recent_upstreams(log) == ["127.0.0.1:4001"] * 3 + ["127.0.0.1:4002"]
    assert recent_upstreams(log, last=2) == ["127.0.0.1:4001", "127.0.0.1:4002"]


def test_a_beat_log_is_read_as_runs_only_complete_new_lines(tmp_path):
    log = tmp_path / "beat-1.log"
    reader = BeatLog("beat-1", log)
    assert reader.read() == []
    log.write_text(
        "[2026-11-27 04:42:12,960: INFO/MainProcess] beat: Starting...\n"
        "[2026-11-27 04:42:12,972: INFO/MainProcess] beat: Acquired lock\n[2026-11-27 04:42:13,0"
    )
    (run,) = reader.read()
    assert (run.started, run.acquired) == (log_time("2026-11-27 04:42:12,960"), log_time("2026-11-27 04:42:12,972"))
    with open(log, "a") as handle:  # the line being written, then a restart that is still waiting for the lock
        handle.write("00: INFO/MainProcess] beat: Sending due task tick\n")
        handle.write("[2026-11-27 04:42:20,500: INFO/Beat] beat: Starting...\n")
    assert [bool(run.acquired) for run in reader.read()] == [True, False]
    log.write_text("")  # rotated
    assert reader.read() == []


def test_the_lock_holder_is_the_beat_run_that_made_the_lock_token():
    token = uuid.uuid1().hex  # what redis-py's Lock.acquire stores, made when a beat starts asking
    made = token_time(token)
    assert abs((made - datetime.now(UTC)).total_seconds()) < 1
    second = timedelta(seconds=1)
    holder = BeatRun("beat-1", made - second / 100, made + second / 100)  # asked and got it at once
    waiting = BeatRun("beat-2", made + second, None)  # started later, still waiting
    taker = BeatRun("beat-2", made - 30 * second, made + 9 * second)  # asked long before, got it later
    assert holder_of(token, [holder, waiting]) == "beat-1"
    assert holder_of(token, [waiting]) is None
    assert holder_of(token, [BeatRun("beat-1", made - 60 * second, made - 59 * second), taker]) == "beat-2"
    assert holder_of("not-a-uuid1-token", [holder]) is None and holder_of(uuid.uuid4().hex, [holder]) is None


# Recorded with `workshop top --json` on lab 04 (solution, 2 nodes), shortened.
RECORDED = {
    "run": "lab04-0cr1e35l",
    "lab": "04",
    "title": "One beat per cluster: RedBeat",
    "taken_at": "2026-11-27T04:42:53",
    "nodes": [
        {
            "name": "node-1",
            "url": "http://127.0.0.1:35965",
            "pid": 10833,
            "state": "up",
            "requests": 6,
            "rss_kib": 211388,
            "workers": [
                {"pid": 10864, "requests": 4, "status": "busy", "respawns": 1, "rss_kib": 52980},
                {"pid": 10865, "requests": 2, "status": "idle", "respawns": 0, "rss_kib": 51804},
            ],
        },
        {"name": "node-2", "url": "http://127.0.0.1:60293", "pid": None, "state": "stopped", "workers": []},
    ],
    "workers": [
        {
            "name": "worker",
            "pid": 10902,
            "state": "running",
            "rss_kib": 79872,
            "age_s": 45.2,
            "tasks": 35,
            "children": [{"pid": 10906, "rss_kib": 74752, "age_s": 44.1}, {"pid": 10905, "rss_kib": 72704, "age_s": 3}],
        }
    ],
    "inspect_error": None,
    "beats": [
        {"name": "beat-1", "pid": 10945, "state": "gone", "acquired_at": "2026-11-27 04:42:12,972"},
        {"name": "beat-2", "pid": 10988, "state": "running", "acquired_at": "2026-11-27 04:42:52,268"},
    ],
    "locks": [{"key": "redbeat::lock", "held": True, "ttl_s": 4.3, "holder": "beat-2"}],
    "redis_error": None,
    "load_balancer": {
        "url": "http://127.0.0.1:52687",
        "conf": "lb/nginx.conf",
        "upstreams": [
            {"address": "127.0.0.1:35965", "node": "node-1", "up": True, "served": 5},
            {"address": "127.0.0.1:60293", "node": "node-2", "up": False, "served": 5},
        ],
        "recent": 10,
    },
}


def rows(table) -> list[list[str]]:
    """The body rows of a rendered table, as the learner sees them."""
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    console.print(table)
    lines = console.export_text().splitlines()
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]


def test_a_recorded_snapshot_renders_the_expected_rows():
    snapshot = Snapshot.from_dict(RECORDED)
    assert Snapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot

    assert rows(nodes_table(snapshot)) == [
        ["node-1", "10833", "up", "6", "1/2", "206 MiB", "1"],
        ["worker 1", "10864", "busy", "4", "", "52 MiB", "1"],
        ["worker 2", "10865", "idle", "2", "", "51 MiB", "0"],
        ["node-2", "-", "stopped", "-", "-", "-", "-"],
    ]
    assert rows(workers_table(snapshot)) == [
        ["worker", "10902", "running", "78 MiB", "45 s", "35"],
        ["child", "10905", "", "71 MiB", "3 s", ""],
        ["child", "10906", "", "73 MiB", "44 s", ""],
    ]
    assert rows(beat_table(snapshot)) == [
        ["beat-1", "10945", "gone", "2026-11-27 04:42:12,972", "-"],
        ["beat-2", "10988", "running", "2026-11-27 04:42:52,268", "holds it"],
    ]
    assert lock_text(snapshot) == ("redbeat::lock held (ttl 4.3 s), by beat-2 (the beat run that made its token)")
    assert rows(load_balancer_table(snapshot)) == [
        ["127.0.0.1:35965", "node-1", "up", "5"],
        ["127.0.0.1:60293", "node-2", "down (refuses connections)", "5"],
    ]
