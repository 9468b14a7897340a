"""The lab 05 rehearsal: manifest parsing (stop signals, readiness gates), the per-pod
path/port mapping, the rolling update arithmetic, the summary of a recorded timeline (due
times, windows, failure classes), the kube-proxy-like Service, and a clean stop on Ctrl-C."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import psutil
import pytest
from process_support import has_ended

from workshop.curriculum import find_lab
from workshop.paths import BIN_DIR, ROOT
from workshop.processes import Supervisor
from workshop.rollout.lb import HttpLoadBalancer, TcpLoadBalancer
from workshop.rollout.load import Clock
from workshop.rollout.manifest import ManifestError, gate_injection, load_deployment, surge_and_unavailable
from workshop.rollout.rehearsal import Rehearsal
from workshop.rollout.render import PodLayout
from workshop.rollout.timeline import Event, LoadFloor, Request, Timeline

LAB = ROOT / "labs" / "05-uwsgi-rollouts"
SOLUTION = ROOT / "solutions" / "05-uwsgi-rollouts"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(text)
    return path


def test_the_solution_manifest_is_read_with_every_field():
    deployment = load_deployment(SOLUTION / "k8s" / "deployment.yaml")
    assert deployment.replicas == 3
    assert deployment.surge_and_unavailable() == (1, 0)
    assert deployment.grace_seconds == 20
    uwsgi, nginx = deployment.container("uwsgi"), deployment.container("nginx")
    assert (uwsgi.readiness.kind, uwsgi.readiness.path, uwsgi.readiness.port) == ("httpGet", "/login/", 8000)
    assert (nginx.readiness.path, nginx.readiness.port, nginx.readiness.period) == ("/nginx-health", 8080, 1)
    assert uwsgi.pre_stop.command[-1] == "sleep 5; echo q > /run/uwsgi/uwsgififo"
    assert (uwsgi.pre_stop.seconds, nginx.pre_stop.seconds) == (5, 4)  # the sidecar stops taking requests first
    # the runtime sends each image's STOPSIGNAL: SIGQUIT (graceful) for the nginx images, SIGTERM for cms
    assert (uwsgi.stop_signal, nginx.stop_signal) == (signal.SIGTERM, signal.SIGQUIT)
    assert deployment.readiness_gates == () and deployment.min_ready_seconds == 0
    assert uwsgi.mounts == {"/run/uwsgi": "uwsgi-run", "/tmp": "uwsgi-tmp"}  # configMap mounts are not mapped
    assert nginx.mounts == {"/tmp": "tmp"}


def test_lifecycle_stop_signal_overrides_the_images(tmp_path):
    text = (SOLUTION / "k8s" / "deployment.yaml").read_text()
    nginx_hook = (
        "          lifecycle:\n            preStop:\n              exec:\n"
        '                command: ["/bin/sh", "-c", "sleep 4"]'
    )
    assert nginx_hook in text
    path = write(tmp_path, text.replace(nginx_hook, nginx_hook + "\n            stopSignal: SIGTERM"))
    assert load_deployment(path).container("nginx").stop_signal == signal.SIGTERM
    path = write(tmp_path, text.replace(nginx_hook, nginx_hook + "\n            stopSignal: SIGNOPE"))
    with pytest.raises(ManifestError, match="stopSignal"):
        load_deployment(path)


def test_the_aws_namespace_asks_for_the_readiness_gate_in_the_solution_only():
    assert gate_injection(SOLUTION) and not gate_injection(LAB)


def test_a_readiness_gate_nothing_sets_is_refused_before_anything_starts(tmp_path):
    text = (SOLUTION / "k8s" / "deployment.yaml").read_text()
    gated = text.replace(
        "      automountServiceAccountToken: false",
        "      readinessGates:\n        - conditionType: target-health.elbv2.k8s.aws/cms\n"
        "      automountServiceAccountToken: false",
    )
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "deployment.yaml").write_text(gated)
    for lb in ("l4", "alb"):  # on kind nothing sets it; behind the ALB only its own binding's name is set
        with pytest.raises(ManifestError, match="no pod would ever be Ready"):
            Rehearsal(find_lab("05"), tmp_path, lb=lb)


def test_the_starter_manifest_gets_the_kubernetes_defaults():
    deployment = load_deployment(LAB / "k8s" / "deployment.yaml")
    assert deployment.grace_seconds == 30 and not deployment.declared["terminationGracePeriodSeconds"]
    assert (deployment.max_surge, deployment.max_unavailable) == ("25%", "25%")
    assert deployment.container("uwsgi").readiness is None
    assert deployment.container("nginx").readiness.kind == "tcpSocket"


@pytest.mark.parametrize(
    "text, field",
    [
        ("kind: Deployment\nmetadata: {name: x\n", "not valid YAML"),
        ("kind: Service\nmetadata: {name: x}\n", "kind: Deployment"),
        ("kind: Deployment\nmetadata: {name: x}\n", "spec is missing"),
        ("kind: Deployment\nmetadata: {name: x}\nspec: {replicas: 2}\n", "spec.template is missing"),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n  template: {spec: {containers: []}}\n",
            "spec.template.spec.containers is empty",
        ),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n"
            "  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n"
            "  template: {spec: {containers: [{name: a, image: cms}]}}\n",
            "both 0",
        ),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n  template: {spec: {containers: [{name: a, image: cms, "
            "readinessProbe: {httpGet: {path: /, port: web}}}]}}\n",
            "readinessProbe.httpGet.port is 'web'",
        ),
        (
            "kind: Deployment\nmetadata: {name: x}\nspec:\n  template: {spec: {terminationGracePeriodSeconds: soon, "
            "containers: [{name: a, image: cms}]}}\n",
            "terminationGracePeriodSeconds must be a int",
        ),
    ],
)
def test_a_malformed_manifest_names_the_file_and_the_field(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as error:
        load_deployment(path)
    assert str(path) in str(error.value) and field in str(error.value)


def test_a_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        load_deployment(tmp_path / "k8s" / "deployment.yaml")


@pytest.mark.parametrize(
    "replicas, surge, unavailable, expected",
    [
        (3, "25%", "25%", (1, 0)),  # surge rounds up, unavailable rounds down
        (4, "25%", "25%", (1, 1)),
        (10, "25%", "25%", (3, 2)),
        (3, 1, 0, (1, 0)),
        (5, "0%", "40%", (0, 2)),
        (1, "100%", 0, (1, 0)),
    ],
)
def test_surge_and_unavailable_round_like_the_deployment_controller(replicas, surge, unavailable, expected):
    assert surge_and_unavailable(replicas, surge, unavailable) == expected


@pytest.mark.parametrize("bad", [-1, "abc", "25", True, "10.5%"])
def test_surge_rejects_what_kubernetes_rejects(bad):
    with pytest.raises(ManifestError):
        surge_and_unavailable(3, bad, 0)


def test_paths_and_ports_map_into_the_pods_own_run_directory(tmp_path):
    deployment = load_deployment(SOLUTION / "k8s" / "deployment.yaml")
    layout = PodLayout.for_pod(deployment, tmp_path / "pod-1", ports={8000: 41000, 8080: 42000})
    run = tmp_path / "pod-1" / "volumes"
    assert layout.render("master-fifo = /run/uwsgi/uwsgififo") == f"master-fifo = {run}/uwsgi-run/uwsgififo"
    assert layout.render("echo q > /run/uwsgi/uwsgififo") == f"echo q > {run}/uwsgi-run/uwsgififo"
    assert layout.render("pid /tmp/nginx.pid;") == f"pid {run}/tmp/nginx.pid;"
    assert layout.render("/var/tmp/x /tmpfile") == "/var/tmp/x /tmpfile"  # only where a mount starts a path
    assert layout.render("http-socket = 127.0.0.1:8000") == "http-socket = 127.0.0.1:41000"
    assert layout.render("http-socket = :8000") == "http-socket = 127.0.0.1:41000"
    assert layout.render("listen 8080;") == "listen 127.0.0.1:42000;"
    assert layout.render("listen 0.0.0.0:8080;") == "listen 127.0.0.1:42000;"
    assert layout.render("server 127.0.0.1:8000;") == "server 127.0.0.1:41000;"
    assert layout.render("timeout 80000; version 1.8000") == "timeout 80000; version 1.8000"


def test_each_pod_gets_ports_and_folders_of_its_own(tmp_path):
    deployment = load_deployment(SOLUTION / "k8s" / "deployment.yaml")
    one, two = (PodLayout.for_pod(deployment, tmp_path / name) for name in ("a", "b"))
    assert set(one.ports) == set(two.ports) == {8000, 8080}
    assert not set(one.ports.values()) & set(two.ports.values())
    assert one.render("/tmp/x") != two.render("/tmp/x")


def recorded_timeline() -> Timeline:
    """Pod a is serving at 1 s, terminating at 10 s, told to stop (SIGTERM) at 12 s;
    pod b is registered at 11 s but serving only at 12 s."""
    events = [
        Event(1.0, "a", "serving"),
        Event(10.0, "a", "terminating"),
        Event(12.0, "a", "sigterm", "uwsgi"),
        Event(11.0, "b", "registered"),
        Event(12.0, "b", "serving"),
    ]
    requests = [
        Request(2.0, 2.01, "/login/", "keep-alive", status=200, pod="a"),
        Request(9.5, 12.5, "/healthz/slow?seconds=3", "fresh", status=502, pod="a"),  # in flight at SIGTERM
        Request(10.5, 10.51, "/login/", "fresh", status=502, pod="a"),  # after termination began
        Request(11.2, 11.21, "/login/", "keep-alive", status=502, pod="b"),  # before b served
        Request(11.3, 11.31, "/login/", "keep-alive", error="ConnectError: refused"),
        Request(12.5, 12.51, "/login/", "fresh", status=200, pod="b"),
    ]
    return Timeline(requests=requests, events=events, rollouts=[(0.0, 20.0)], settings={"replicas": 2})


def test_the_summary_counts_failures_by_class():
    summary = recorded_timeline().summary()
    assert (summary["requests"], summary["ok"], summary["http_5xx"], summary["connection_errors"]) == (6, 2, 3, 1)
    assert summary["failures_by_class"] == {
        "in-flight-at-shutdown": 1,
        "after-termination": 1,
        "not-serving-yet": 1,
        "no-target": 0,
        "other": 1,
    }
    assert (summary["slow_in_flight_at_shutdown"], summary["slow_in_flight_at_shutdown_ok"]) == (1, 0)
    assert summary["rollouts"] == [{"seconds": 20.0, "requests": 6, "rate": 0.3, "failed": 4}]
    assert summary["p50_ms"] == 10.0


def test_failed_requests_are_grouped_by_class_pod_and_outcome_beside_the_pods_milestones():
    timeline = recorded_timeline()
    assert timeline.failure_groups() == [
        {"class": "in-flight-at-shutdown", "pod": "a", "outcome": "502", "requests": 1, "first": 9.5, "last": 9.5},
        {"class": "after-termination", "pod": "a", "outcome": "502", "requests": 1, "first": 10.5, "last": 10.5},
        {"class": "not-serving-yet", "pod": "b", "outcome": "502", "requests": 1, "first": 11.2, "last": 11.2},
        {"class": "other", "pod": None, "outcome": "ConnectError", "requests": 1, "first": 11.3, "last": 11.3},
    ]
    assert timeline.milestones() == {
        "a": {"serving": 1.0, "terminating": 10.0, "shutdown": 12.0},
        "b": {"serving": 12.0, "registered": 11.0},
    }


def test_latencies_and_rollout_windows_run_from_when_requests_were_due():
    """Coordinated omission: a request that waited 2 s for a free sender took 2 s, and it
    belongs to the rollout during which it was due, not the one during which it was sent."""
    requests = [
        Request(start=9.0, end=9.01, path="/login/", connection="fresh", status=200, pod="a", due=9.0),
        Request(start=12.0, end=12.01, path="/login/", connection="fresh", status=200, pod="a", due=10.0),
        Request(start=12.0, end=12.01, path="/login/", connection="fresh", status=200, pod="a", due=11.5),
    ]
    timeline = Timeline(requests=requests, rollouts=[(8.0, 11.0), (11.0, 14.0)])
    summary = timeline.summary()
    assert [r["requests"] for r in summary["rollouts"]] == [2, 1]
    assert summary["late_requests"] == 2
    assert summary["p99_ms"] == 2010.0 and summary["p50_ms"] == 510.0


def _rehearsal_whose_runs_carry(loads: list[tuple[int, int]]) -> Rehearsal:
    """A rehearsal whose run() returns, one after the other, a 10 s rolling update with
    (requests, failed) of `loads`: run_conclusive's decisions, with no process started."""
    rehearsal = object.__new__(Rehearsal)
    rehearsal.clock, rehearsal.events, rehearsal.runs = Clock(), [], 0

    def run(rollouts: int, **_: object) -> Timeline:
        requests, failed = loads[rehearsal.runs]
        rehearsal.runs += 1
        return Timeline(
            requests=[
                Request(
                    start=i / 100, end=i / 100, path="/login/", connection="fresh", status=502 if i < failed else 200
                )
                for i in range(requests)
            ],
            rollouts=[(0.0, 10.0)],
        )

    rehearsal.run = run
    return rehearsal


@pytest.mark.parametrize(
    ("loads", "runs", "met"),
    [
        ([(1000, 0)], 1, True),  # enough load: one run
        ([(400, 0), (1000, 0)], 2, True),  # the load fell behind, nothing failed: rolled again
        ([(400, 3)], 1, False),  # a failed request is proof enough: the check fails on it
        ([(400, 0)] * 3, 3, False),  # never enough: the check says so after its attempts
    ],
)
def test_a_rollout_whose_load_fell_behind_is_rolled_again_unless_a_request_failed(loads, runs, met):
    rehearsal = _rehearsal_whose_runs_carry(loads)
    timeline = rehearsal.run_conclusive(LoadFloor(requests=500, rate=50.0), attempts=3)
    assert (rehearsal.runs, timeline.attempts, timeline.floor_met()) == (runs, runs, met)
    assert sum(e.event == "load-fell-behind" for e in rehearsal.events) == runs - 1


def test_a_pod_ready_again_before_its_removal_was_due_stays_registered():
    """The load balancer's controller applies a lagged change only if it still holds: a pod that
    was un-Ready for a moment (3 probes that timed out) and Ready again is registered in the end,
    whatever order the registration (1 s) and the deregistration (3 s) fall due in."""
    rehearsal = object.__new__(Rehearsal)
    now = [0.0]
    rehearsal.clock = SimpleNamespace(now=lambda: now[0])
    rehearsal.events, rehearsal.pending, rehearsal.endpoints = [], [], {}
    rehearsal._lb_lock = threading.Lock()
    rehearsal.service = rehearsal.proxy = SimpleNamespace(set_endpoints=lambda endpoints: None)
    pod = SimpleNamespace(
        name="cms-r1-1", service_port=8000, containers_ready=True, terminating=False, registered=False
    )
    pod.set_gate = lambda condition, value: None

    def at(t: float) -> None:
        now[0] = t
        rehearsal._apply_due()

    rehearsal.schedule(1.0, "add", pod)  # Ready at 0 s
    at(1.0)
    assert pod.registered and rehearsal.endpoints == {"cms-r1-1": 8000}
    pod.containers_ready = False  # un-Ready at 1.5 s: out at 4.5 s
    now[0] = 1.5
    rehearsal.schedule(3.0, "remove", pod)
    pod.containers_ready = True  # Ready again at 2 s: in at 3 s
    now[0] = 2.0
    rehearsal.schedule(1.0, "add", pod)
    for t in (3.0, 4.5, 10.0):
        at(t)
    assert pod.registered and rehearsal.endpoints == {"cms-r1-1": 8000}, rehearsal.events

    pod.terminating = True  # a terminating pod's removal holds
    now[0] = 11.0
    rehearsal.schedule(3.0, "remove", pod)
    at(14.0)
    assert not pod.registered and rehearsal.endpoints == {}


def test_a_request_the_load_balancer_had_no_target_for_is_its_own_class():
    requests = [Request(start=5.0, end=5.01, path="/login/", connection="fresh", status=503, no_target=True)]
    assert Timeline(requests=requests, rollouts=[(0.0, 9.0)]).summary()["failures_by_class"]["no-target"] == 1


def test_the_sidecars_stop_signal_is_when_a_pod_stops_taking_requests():
    events = [Event(1.0, "a", "serving"), Event(10.0, "a", "stop-signal", "nginx SIGQUIT")]
    events.append(Event(11.0, "a", "prestop-end", "uwsgi"))
    assert Timeline(events=events).shutdown_at("a") == 10.0


class Upstream:
    """A TCP server that answers each line with its name, on one connection as long as the client keeps it."""

    def __init__(self, name: str):
        self.name = name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    def echo(self, conn):
        with conn, conn.makefile("rwb") as stream:
            for _ in stream:
                stream.write(self.name.encode() + b"\n")
                stream.flush()


def ask(stream) -> str:
    stream.write(b"?\n")
    stream.flush()
    return stream.readline().decode().strip()


def test_the_l4_service_keeps_a_connection_on_its_pod_and_sends_new_ones_to_registered_pods(tmp_path):
    old, new = Upstream("old"), Upstream("new")
    service = TcpLoadBalancer(tmp_path)
    service.start()
    try:
        service.set_endpoints({"old": old.port})
        kept = socket.create_connection(("127.0.0.1", service.port))
        stream = kept.makefile("rwb")
        assert ask(stream) == "old"
        assert service.pod_of(kept.getsockname()[1]) == ("old", False)
        service.set_endpoints({"new": new.port})  # the old pod left the endpoints
        assert ask(stream) == "old"  # conntrack: an established connection stays with its pod
        with socket.create_connection(("127.0.0.1", service.port)) as fresh, fresh.makefile("rwb") as second:
            assert ask(second) == "new"
        service.set_endpoints({})
        with socket.create_connection(("127.0.0.1", service.port)) as refused:
            try:
                assert refused.recv(1) == b""  # no endpoint: the connection is dropped at once
            except ConnectionResetError:
                pass
            assert service.pod_of(refused.getsockname()[1]) == (None, True)
        stream.close()
        kept.close()
    finally:
        service.stop()


class Pod(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"pod")

    def log_message(self, *args):
        pass


@pytest.mark.cluster  # one nginx
def test_the_alb_stand_in_serves_a_target_once_it_says_so(tmp_path):
    """set_endpoints returns once nginx's reload has taken effect: the very next request goes to
    the target just registered, or finds none just deregistered. (Before, the rehearsal counted
    a target registered about 0.1 s before nginx served it: the solution's first requests behind
    the ALB could get "no registered target".)"""
    pod = ThreadingHTTPServer(("127.0.0.1", 0), Pod)
    threading.Thread(target=pod.serve_forever, daemon=True).start()
    try:
        with Supervisor() as supervisor:
            proxy = HttpLoadBalancer(tmp_path, tmp_path, supervisor.start)
            proxy.start()
            for round in range(3):
                proxy.set_endpoints({f"pod-{round}": pod.server_address[1]})
                response = httpx.get(proxy.url + "/")
                assert (response.status_code, response.headers.get("X-Pod")) == (200, f"pod-{round}"), round
                proxy.set_endpoints({})
                response = httpx.get(proxy.url + "/")
                assert (response.status_code, response.headers.get("X-No-Target")) == (503, "1"), round
    finally:
        pod.shutdown()


def test_the_json_timeline_round_trips(tmp_path):
    timeline = recorded_timeline()
    timeline.write_json(tmp_path / "run.json")
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["summary"]["failed"] == 4 and len(data["requests"]) == 6 and len(data["events"]) == 5
    assert Timeline.from_json(data).summary() == timeline.summary()


@pytest.mark.cluster
def test_a_rollout_stopped_with_ctrl_c_leaves_no_process_behind():
    rollout = subprocess.Popen(
        [str(BIN_DIR / "workshop"), "rollout", "05", "--solution", "--rate", "30"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    me = psutil.Process(rollout.pid)
    seen: dict[int, psutil.Process] = {}

    def command_if_running(process: psutil.Process) -> str | None:
        """Its command line, or None once it has exited (pods stop and start all through a
        rolling update: a process seen a moment ago may be gone by the next question)."""
        try:
            return None if has_ended(process) else " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            return None

    def servers() -> list[psutil.Process]:
        for child in me.children(recursive=True):
            seen.setdefault(child.pid, child)
        return [p for p in seen.values() if re.search("uwsgi|nginx", command_if_running(p) or "", re.I)]

    deadline = time.monotonic() + 90
    while len(servers()) < 10 and time.monotonic() < deadline and rollout.poll() is None:
        time.sleep(0.3)  # the LB, 3 pods (nginx + uWSGI masters and workers)
    time.sleep(8)  # well into the rolling update: a new pod starting, an old one stopping
    assert rollout.poll() is None, "the rollout ended before it could be interrupted"
    assert len(servers()) >= 10
    os.kill(rollout.pid, signal.SIGINT)
    assert rollout.wait(timeout=60) == 130
    time.sleep(0.5)
    left = [p.pid for p in seen.values() if command_if_running(p) is not None]
    assert not left, f"still running after Ctrl-C: {left}"


def test_top_renders_a_rehearsals_pods_and_load_balancer():
    from rich.console import Console

    from workshop.top.render import render
    from workshop.top.snapshot import Snapshot

    pod = {
        "name": "cms-r2-4",
        "state": "waiting for its gate",
        "registered": False,
        "gates": {"target-health.elbv2.k8s.aws/k8s-workshop-cms-x": False},
        "containers": [
            {
                "name": "uwsgi",
                "pid": 11,
                "running": True,
                "ready": True,
                "probe": "GET /login/: 200",
                "stop_signal": "SIGTERM",
            },
            {
                "name": "nginx",
                "pid": 12,
                "running": True,
                "ready": True,
                "probe": "GET /nginx-health: 200",
                "stop_signal": "SIGQUIT",
            },
        ],
        "uwsgi": None,
    }
    service = {
        "kind": "alb",
        "registration_lag": 8.0,
        "deregistration_lag": 3.0,
        "registered": {"cms-r1-1": 1},
        "pending": [{"in_s": 5.5, "action": "add", "pod": "cms-r2-4"}],
        "open_connections": {},
    }
    data = {
        "run": "r",
        "lab": "05",
        "title": "t",
        "taken_at": "now",
        "nodes": [],
        "workers": [],
        "beats": [],
        "locks": [],
        "pods": [pod],
        "service": service,
    }
    snapshot = Snapshot.from_dict(data)
    console = Console(file=__import__("io").StringIO(), width=200, color_system=None)
    console.print(render(snapshot))
    text = console.file.getvalue()
    assert "waiting for its gate" in text and "GET /login/: 200" in text and "SIGQUIT" in text
    assert "the ALB" in text and "add in 5.5 s" in text and "cms-r1-1" in text


@pytest.mark.cluster
def test_workshop_top_finds_a_rehearsal_and_shows_its_pods():
    from workshop.runs import find_running
    from workshop.top.collect import Collector

    with Rehearsal(find_lab("05"), SOLUTION) as rehearsal:
        rehearsal.publish()
        collector = Collector(find_running(rehearsal.run_dir.name))
        try:
            snapshot = collector.collect()
        finally:
            collector.close()
    assert [pod.name for pod in snapshot.pods] == [pod.name for pod in rehearsal.pods]
    assert all(pod.state == "ready" and pod.registered for pod in snapshot.pods)
    assert all(pod.uwsgi is not None and pod.uwsgi.state == "up" for pod in snapshot.pods)
    assert {c.probe for pod in snapshot.pods for c in pod.containers} == {"GET /login/: 200", "GET /nginx-health: 200"}
    assert snapshot.service["kind"] == "l4" and set(snapshot.service["registered"]) == {p.name for p in snapshot.pods}


@pytest.mark.parametrize(
    ("statuses", "lead", "trials"),
    [
        ([200] * 4, "in time", 1),
        ([502] * 4, "never sent", 1),  # a failure counts, whenever the signal came
        ([200] * 4, "late at first", 2),
        ([200] * 4, "never sent", 3),  # uWSGI exited before every signal: no verdict
    ],
)
def test_a_sigterm_trial_passes_only_if_its_stop_signal_landed_while_the_requests_ran(
    monkeypatch, statuses, lead, trials
):
    """A pass whose stop signal came too late to tell is tried again on a new pod with longer
    requests; three such passes are not a pass (the check says so); a failure counts at once."""
    from workshop.scenarios import uwsgi_rollouts
    from workshop.scenarios.uwsgi_rollouts import SIGNAL_LEAD_SECONDS, SIGTERM_TRIAL_SECONDS, SigtermResult

    leads = {
        "in time": lambda seconds: seconds - 0.2,
        "late at first": lambda seconds: SIGNAL_LEAD_SECONDS - 0.01 if seconds < 6 else seconds - 0.2,
        "never sent": lambda seconds: None,
    }
    tried = []

    def trial(rehearsal, requests, seconds, pod):
        tried.append((seconds, pod))
        return SigtermResult(statuses, True, 0, 1.0, "SIGTERM", seconds, leads[lead](seconds))

    monkeypatch.setattr(uwsgi_rollouts, "sigterm_trial", trial)
    result = uwsgi_rollouts.sigterm_in_flight(SimpleNamespace(), pod="spare")
    assert [seconds for seconds, _ in tried] == list(SIGTERM_TRIAL_SECONDS[:trials])
    assert [pod for _, pod in tried] == ["spare"] + [None] * (trials - 1)  # a new pod for each new try
    assert result.conclusive == (lead != "never sent")


@pytest.mark.cluster
def test_a_wrong_fix_whose_graceful_stop_beat_a_late_sigterm_is_tried_again_and_caught(monkeypatch):
    """The master FIFO's q without the SIGTERM hook: uWSGI's graceful stop lets the requests
    finish if the stop signal comes after them (a machine too busy to send it at once), so the
    first trial passes; it is inconclusive, and the next, with requests twice as long, sees the
    default SIGTERM (a brutal reload) cut them."""
    from workshop.layers import materialize_variant
    from workshop.rollout.pod import Pod
    from workshop.scenarios.uwsgi_rollouts import SIGTERM_TRIAL_SECONDS, sigterm_in_flight, sigterm_trial

    lab = find_lab("05")
    wrong = next(variant for variant in lab.wrong_fixes if variant.id == "fifo-q-without-hook")
    run_pre_stop = Pod.run_pre_stop

    def late(pod, *args, **kwargs):
        run_pre_stop(pod, *args, **kwargs)
        time.sleep(SIGTERM_TRIAL_SECONDS[0] + 0.5)  # the first trial's requests end before the signal

    monkeypatch.setattr(Pod, "run_pre_stop", late)
    files = materialize_variant(lab, wrong)
    try:
        with Rehearsal(lab, files, replicas=1) as rehearsal:
            first = sigterm_trial(rehearsal, 4, SIGTERM_TRIAL_SECONDS[0])
            # (not whether uWSGI has exited by the trial's end: in one fresh-clone run on a busy
            # machine it still ran 13 s after its late SIGTERM; the property is the retry below)
            if not (first.all_ok and not first.conclusive):
                pytest.fail(f"{first}\n{trial_logs(rehearsal, first)}")
            result = sigterm_in_flight(rehearsal)
            if not (result.seconds == SIGTERM_TRIAL_SECONDS[1] and result.conclusive):
                pytest.fail(f"{result}\n{trial_logs(rehearsal, result)}")
    finally:
        shutil.rmtree(files, ignore_errors=True)
    assert not result.all_ok and "502" in str(result.statuses), result


def trial_logs(rehearsal, result) -> str:
    """What the trial's pod logged and went through: what a verdict on a timing test needs."""
    from workshop.processes import log_tail

    pod = next(pod for pod in rehearsal.pods if pod.name == result.pod)
    events = [e for e in rehearsal.events if e.pod == pod.name]
    return "\n".join(
        [
            f"events of {pod.name}: " + "; ".join(f"{e.t:.2f} {e.event} {e.detail}".strip() for e in events),
            *(f"--- {p.spec.log_path.name}:\n{log_tail(p.spec.log_path, 40)}" for p in pod.processes.values()),
        ]
    )


@pytest.mark.cluster
def test_a_pre_stop_hook_that_cannot_run_is_followed_by_the_stop_signal(tmp_path):
    """The kubelet records FailedPreStopHook and stops the container all the same."""
    files = tmp_path / "lab"
    for name in find_lab("05").edit:
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOLUTION / name, files / name)
    manifest = files / "k8s" / "deployment.yaml"
    manifest.write_text(manifest.read_text().replace('"/bin/sh", "-c", "sleep 5; echo q', '"/no/such/hook", "-c", "q'))
    with Rehearsal(find_lab("05"), files, replicas=1) as rehearsal:
        pod = rehearsal.pods[0]
        uwsgi = rehearsal.deployment.container("uwsgi")
        pod.stop_container(uwsgi, time.monotonic() + 30, skip_sleeps=True)
        events = [(event.event, event.detail) for event in rehearsal.events if event.pod == pod.name]
    assert any(event == "prestop-failed" and "/no/such/hook" in detail for event, detail in events), events
    assert ("stop-signal", "uwsgi SIGTERM") in events and ("exited", "uwsgi 0") in events, events
