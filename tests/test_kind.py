"""The kind path of lab 05 without a cluster: pod watch events -> timeline events, the
rollout report of a recorded rolling update, the image list, the manifests applied, and
clear errors (exit code 2, nothing run) when docker or kind is missing."""

import http.server
import io
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from workshop.cli import app
from workshop.doctor import kind_version
from workshop.kind import apply, cluster, images
from workshop.kind.rollout import (
    ClusterTimeline,
    PodEvents,
    events_from_watch,
    pod_changes,
    restart_patch,
    rolled_out,
    settings_of,
)
from workshop.paths import ROOT
from workshop.rollout.load import Clock, LoadGenerator, LoadShape
from workshop.rollout.report import print_events, print_summary
from workshop.rollout.timeline import Request, Timeline

WATCH = Path(__file__).parent / "data" / "kind_rollout_watch.json"
SOLUTION = ROOT / "solutions" / "05-uwsgi-rollouts"
OLD = ["cms-6d4f9c7b8-4xkqp", "cms-6d4f9c7b8-9tnbw", "cms-6d4f9c7b8-zr2lm"]
NEW = ["cms-7f8b5d6c9-h7d2x", "cms-7f8b5d6c9-q5wvm", "cms-7f8b5d6c9-b8ncs"]
ROLLOUT = (1.9, 24.5)  # the restart patch, the last old pod deleted


@pytest.fixture(scope="module")
def recorded() -> list[dict]:
    return json.loads(WATCH.read_text())["events"]


def sequence(events, pod: str) -> list[tuple[str, str]]:
    return [(e.event, e.detail) for e in events if e.pod == pod]


# -- watch events -> timeline events --------------------------------------------------------
def test_a_new_pod_goes_from_created_to_ready(recorded):
    events = events_from_watch(recorded)
    assert sequence(events, NEW[0]) == [
        ("created", ""),
        ("scheduled", "workshop-worker"),
        ("container-started", "nginx"),
        ("container-started", "uwsgi"),
        ("container-ready", "nginx"),
        ("container-ready", "uwsgi"),
        ("ready", ""),
    ]


def test_an_old_pod_goes_from_existing_to_deleted(recorded):
    events = events_from_watch(recorded)
    assert sequence(events, OLD[0]) == [
        ("existing", "Ready on workshop-worker"),
        ("terminating", "grace 20 s"),
        ("container-unready", "uwsgi"),
        ("unready", ""),
        ("exited", "uwsgi 0"),
        ("container-unready", "nginx"),
        ("exited", "nginx 0"),
        ("deleted", ""),
    ]


def test_the_recorded_rollout_keeps_three_ready_pods_and_one_surge(recorded):
    """maxUnavailable 0, maxSurge 1, read from the converted events alone."""
    events = sorted(events_from_watch(recorded), key=lambda e: e.t)
    ready, alive = set(), set()
    for event in events:
        if event.event in ("existing", "created"):
            alive.add(event.pod)
        if event.event in ("ready", "existing"):
            ready.add(event.pod)
        if event.event in ("terminating", "unready"):
            ready.discard(event.pod)
        if event.event == "terminating":
            alive.discard(event.pod)
        assert len(alive) <= 4, f"more than one surge pod at {event.t}"
        if event.t > 0:  # once the existing pods are listed
            assert len(ready) >= 3, f"fewer than 3 Ready pods at {event.t}"
    assert {e.pod for e in events if e.event == "deleted"} == set(OLD)
    assert {e.pod for e in events if e.event == "ready"} == set(NEW)


def test_an_unchanged_object_and_a_bookmark_make_no_event(recorded):
    pod = recorded[-2]["object"] if recorded[-1]["type"] == "BOOKMARK" else recorded[-1]["object"]
    assert pod_changes(pod, pod, "MODIFIED") == []
    assert PodEvents().record({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}, 1.0) == []
    pending = {"metadata": {"name": "p"}, "status": {"phase": "Pending"}}
    assert pod_changes(None, pending, "ADDED") == [("created", "")]
    assert pod_changes(pending, pending, "DELETED") == [("deleted", "")]


# -- the rollout's end, the restart, the settings ----------------------------------------------
def deployment(generation=2, observed=2, updated=3, ready=3, available=3, replicas=3) -> dict:
    return {
        "metadata": {"name": "cms", "generation": generation},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "replicas": replicas,
        },
    }


def test_rolled_out_needs_every_replica_updated_ready_and_no_old_pod_left():
    assert rolled_out(deployment(), terminating_pods=0)
    assert not rolled_out(deployment(), terminating_pods=1)
    assert not rolled_out(deployment(observed=1), terminating_pods=0)  # the controller has not seen the patch
    assert not rolled_out(deployment(updated=2), terminating_pods=0)
    assert not rolled_out(deployment(ready=2), terminating_pods=0)
    assert not rolled_out(deployment(replicas=4), terminating_pods=0)  # a surge pod still counted


def test_restart_patch_is_what_kubectl_rollout_restart_sends():
    from datetime import UTC, datetime

    patch = restart_patch(datetime(2026, 11, 27, 5, 0, 1, tzinfo=UTC))
    annotations = {"kubectl.kubernetes.io/restartedAt": "2026-11-27T05:00:01Z"}
    assert patch == {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def test_settings_come_from_the_deployment():
    solution = yaml.safe_load((SOLUTION / "k8s" / "deployment.yaml").read_text())
    settings = settings_of(solution, LoadShape(rate=80))
    assert (settings["replicas"], settings["max_surge"], settings["max_unavailable"]) == (3, 1, 0)
    assert settings["grace_seconds"] == 20 and settings["rate"] == 80
    starter = yaml.safe_load((ROOT / "labs" / "05-uwsgi-rollouts" / "k8s" / "deployment.yaml").read_text())
    defaults = settings_of(starter, LoadShape())  # 25% / 25% of 3: surge rounds up, unavailable down
    assert (defaults["max_surge"], defaults["max_unavailable"], defaults["grace_seconds"]) == (1, 0, 30)


# -- the report of a recorded rollout -------------------------------------------------------------
def timeline_of(recorded, failures: list[Request] = ()) -> ClusterTimeline:
    """The recorded events plus steady requests at 20/s, served round-robin by the Ready pods."""
    timeline = ClusterTimeline(events=events_from_watch(recorded), rollouts=[ROLLOUT])
    timeline.settings = {"replicas": 3, "max_surge": 1, "max_unavailable": 0, "grace_seconds": 20}
    ready: list[str] = []
    events = sorted(timeline.events, key=lambda e: e.t)
    for index in range(26 * 20):
        start = index / 20
        for event in events:
            if event.t <= start:
                if event.event in ("ready", "existing") and event.pod not in ready:
                    ready.append(event.pod)
                if event.event in ("terminating", "unready") and event.pod in ready:
                    ready.remove(event.pod)
        pod = ready[index % len(ready)]
        timeline.requests.append(Request(start, start + 0.01, "/login/", "fresh", 200, pod=pod, served_by=f"{pod}/7"))
    timeline.requests += failures
    return timeline


def render(timeline: Timeline) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_summary(timeline, console)
    print_events(timeline, console)
    return console.file.getvalue()


def test_the_report_of_a_clean_rollout(recorded):
    timeline = timeline_of(recorded)
    summary = timeline.summary()
    assert (summary["requests"], summary["failed"]) == (520, 0)
    assert summary["rollouts"] == [{"seconds": 22.6, "requests": 453, "rate": 20.0, "failed": 0}]  # 1.9 to 24.5
    text = render(timeline)
    assert "3 replicas, maxSurge 1, maxUnavailable 0, grace 20 s\n" in text  # no LB lags on a real cluster
    # the whole run and each rolling update are two windows, and the summary names them
    assert "The whole run" in text and "requests 520, ok 520, failed 0 (5xx 0, connection errors 0)" in text
    assert "Each rolling update: the requests due from its start until its last old pod exited" in text
    assert "zero failed requests" in text
    assert "Pod events" in text
    rows = [line.split("│")[1:5] for line in text.splitlines() if line.startswith("│") and "cms-" in line]
    rows = [tuple(cell.strip() for cell in row) for row in rows]
    assert len(rows) == len(timeline.events)  # one row per pod event, in time order
    assert [float(row[0]) for row in rows] == sorted(float(row[0]) for row in rows)
    assert ("6.00", OLD[0], "terminating", "grace 20 s") in rows
    assert ("16.40", OLD[0], "deleted", "") in rows
    assert ("5.90", NEW[0], "ready", "") in rows


def test_failures_are_classified_from_the_pod_events(recorded):
    failures = [
        # no pod named (a reset connection): classified from the events around it
        # old 1 terminating at 6.0
        Request(5.8, 6.3, "/healthz/slow?seconds=3", "fresh", error="RemoteProtocolError: reset"),
        Request(10.5, 10.6, "/login/", "keep-alive", error="ConnectError: refused"),  # old 1 and 2 terminating
        Request(5.92, 5.95, "/login/", "fresh", status=502),  # new 1 Ready at 5.9, nothing terminating
        Request(1.0, 1.1, "/login/", "fresh", error="ReadTimeout"),  # nothing happening
        # a 500 from cms names its pod
        Request(10.0, 10.1, "/login/", "fresh", status=500, pod=NEW[1], served_by=f"{NEW[1]}/9"),  # Ready at 9.95
        Request(2.0, 2.1, "/login/", "fresh", status=500, pod=OLD[0], served_by=f"{OLD[0]}/9"),  # existing pod
    ]
    timeline = timeline_of(recorded, failures)
    timeline.classify()
    assert [r.failure for r in failures] == [
        "in-flight-at-shutdown",
        "after-termination",
        "not-serving-yet",
        "other",
        "not-serving-yet",
        "other",
    ]
    summary = timeline.summary()
    assert summary["failed"] == 6 and summary["http_5xx"] == 3 and summary["connection_errors"] == 3
    text = render(timeline)
    assert "Failed requests of the whole run, by class" in text and "zero failed requests" not in text


def test_the_timeline_json_keeps_the_pod_events(recorded, tmp_path):
    timeline = timeline_of(recorded)
    timeline.write_json(tmp_path / "t.json")
    again = Timeline.from_json(json.loads((tmp_path / "t.json").read_text()))
    assert len(again.events) == len(timeline.events) and again.rollouts == [ROLLOUT]
    assert again.summary()["requests"] == 520


# -- the load generator, aimed at any URL ----------------------------------------------------------
class ServedBy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("X-Served-By", "cms-7f8b5d6c9-h7d2x/42")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_the_load_generator_names_the_pod_from_x_served_by():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ServedBy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    timeline = Timeline()
    load = LoadGenerator(
        f"http://127.0.0.1:{server.server_port}",
        LoadShape(rate=50, slow_every=10**6, workers=2),
        timeline,
        Clock(),
        pod_from_served_by=True,
    )
    try:
        load.start()
        deadline = threading.Event()
        for _ in range(200):  # until 10 requests came back (at most 20 s)
            if len(timeline.requests) >= 10:
                break
            deadline.wait(0.1)
    finally:
        load.stop()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert len(timeline.requests) >= 10
    assert {r.pod for r in timeline.requests} == {"cms-7f8b5d6c9-h7d2x"}
    assert all(r.ok for r in timeline.requests)
    assert not any(t.is_alive() for t in load.threads)


# -- images ------------------------------------------------------------------------------------------
NODE = "kindest/node:v1.36.4@sha256:" + "0" * 64


def fixture_files(tmp_path: Path) -> dict:
    (tmp_path / "kind-config.yaml").write_text(
        f"kind: Cluster\nname: workshop\nnodes:\n  - role: control-plane\n    image: {NODE}\n"
        f"  - role: worker\n    image: {NODE}\n"
    )
    (tmp_path / "Dockerfile").write_text(
        "FROM --platform=$BUILDPLATFORM python:3.11.15-slim-bookworm AS wheels\nRUN true\n"
        "FROM wheels AS test\nFROM python:3.11.15-slim-bookworm\nCOPY --from=wheels /w /w\n"
    )
    k8s = tmp_path / "k8s"
    (k8s / "aws").mkdir(parents=True)
    (k8s / "00-namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: workshop}\n")
    (k8s / "20-valkey.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: valkey}\nspec:\n  template:\n    spec:\n"
        "      initContainers: [{name: init, image: 'busybox:1.37'}]\n"
        "      containers: [{name: valkey, image: 'valkey/valkey:9.0.5-alpine'}]\n---\n"
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: cms-migrate}\nspec:\n  template:\n    spec:\n"
        "      containers: [{name: m, image: 'cms:workshop'}]\n"
    )
    pod = "spec: {{template: {{spec: {{containers: [{}]}}}}}}\n"
    (k8s / "aws" / "alb.yaml").write_text("kind: Deployment\n" + pod.format("{image: 'aws:only'}"))
    learner, solution = tmp_path / "learner.yaml", tmp_path / "solution.yaml"
    learner.write_text(pod.format("{image: 'cms:workshop'}, {image: 'nginx:1.29-alpine'}"))
    solution.write_text(pod.format("{image: 'nginx:1.29-alpine'}, {image: 'nginx:1.30'}"))
    return {
        "kind_config": tmp_path / "kind-config.yaml",
        "dockerfile": tmp_path / "Dockerfile",
        "manifests": k8s,
        "deployments": [learner, solution],
    }


def test_the_image_list_has_every_pulled_image_once_and_not_the_built_one(tmp_path):
    assert images.required_images(**fixture_files(tmp_path)) == [
        NODE,
        "python:3.11.15-slim-bookworm",
        "busybox:1.37",
        "valkey/valkey:9.0.5-alpine",
        "nginx:1.29-alpine",
        "nginx:1.30",
    ]


def test_a_missing_source_of_the_image_list_is_a_clear_error(tmp_path):
    files = fixture_files(tmp_path)
    files["dockerfile"].unlink()
    with pytest.raises(cluster.BadInput, match="Dockerfile is missing"):
        images.required_images(**files)


def test_the_repository_image_list_reads_the_real_files():
    if not (ROOT / "kind-config.yaml").is_file() or not (ROOT / "k8s").is_dir():
        pytest.skip("kind-config.yaml and k8s/ are not in this checkout")
    found = images.required_images()
    assert found[0].startswith("kindest/node:") and "@sha256:" in found[0]
    assert images.IMAGE not in found and len(found) == len(set(found))


@pytest.mark.parametrize(
    "image, pull, local",
    [
        (NODE, "kindest/node@sha256:" + "0" * 64, "kindest/node:v1.36.4"),
        ("nginx:1.29-alpine", "nginx:1.29-alpine", "nginx:1.29-alpine"),
        ("busybox", "busybox:latest", "busybox"),
        ("localhost:5000/cms", "localhost:5000/cms:latest", "localhost:5000/cms"),
    ],
)
def test_pull_reference_and_local_name(image, pull, local):
    assert (images.pull_reference(image), images.local_name(image)) == (pull, local)


# -- what is applied ------------------------------------------------------------------------------------
class FakeResource:
    def __init__(self, namespaced: bool):
        self.namespaced = namespaced


class FakeDynamic:
    def __init__(self):
        self.applied = []
        self.resources = self

    def get(self, api_version, kind):
        return FakeResource(kind != "Namespace")

    def server_side_apply(self, resource, body, name, namespace, field_manager, force_conflicts):
        self.applied.append((body["kind"], name, namespace, field_manager, force_conflicts))


def test_apply_puts_namespaced_objects_into_the_workshop_namespace(tmp_path):
    files = fixture_files(tmp_path)
    documents = apply.cluster_manifests(files["manifests"])
    documents += apply.config_maps(SOLUTION) + apply.web_manifests(SOLUTION)
    dynamic = FakeDynamic()
    apply.apply(dynamic, documents, lambda line: None)
    assert dynamic.applied == [
        ("Namespace", "workshop", None, "workshop", True),
        ("Deployment", "valkey", "workshop", "workshop", True),
        ("Job", "cms-migrate", "workshop", "workshop", True),
        ("ConfigMap", "cms-uwsgi", "workshop", "workshop", True),
        ("ConfigMap", "cms-nginx", "workshop", "workshop", True),
        ("Deployment", "cms", "workshop", "workshop", True),
    ]
    maps = {m["metadata"]["name"]: m["data"] for m in apply.config_maps(SOLUTION)}
    assert maps["cms-uwsgi"]["uwsgi.ini"] == (SOLUTION / "uwsgi.ini").read_text()
    assert maps["cms-nginx"]["nginx.conf"] == (SOLUTION / "nginx.conf").read_text()


def checksum_of(files_dir: Path) -> str:
    (deployment,) = [d for d in apply.web_objects(files_dir) if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["metadata"]["annotations"][apply.CONFIG_CHECKSUM]


def test_a_saved_uwsgi_ini_changes_the_pod_template(tmp_path):
    shutil.copytree(SOLUTION, tmp_path / "lab")
    before = checksum_of(tmp_path / "lab")
    assert checksum_of(tmp_path / "lab") == before  # same files, same template: no rollout
    with open(tmp_path / "lab" / "uwsgi.ini", "a") as handle:
        handle.write("harakiri = 30\n")
    assert checksum_of(tmp_path / "lab") != before


def test_a_bad_manifest_stops_the_deploy_before_anything_is_applied(tmp_path):
    files = fixture_files(tmp_path)
    (files["manifests"] / "50-broken.yaml").write_text("kind: Service\nmetadata: {name: x\n")

    class NoApi:
        @property
        def dynamic(self):
            raise AssertionError("nothing may be applied")

    with pytest.raises(apply.BadManifest, match="50-broken.yaml is not valid YAML"):
        apply.deploy(NoApi(), SOLUTION, lambda line: None, manifests=files["manifests"])
    (files["manifests"] / "50-broken.yaml").write_text("metadata: {name: x}\n")
    with pytest.raises(apply.BadManifest, match="needs apiVersion and kind"):
        apply.deploy(NoApi(), SOLUTION, lambda line: None, manifests=files["manifests"])


# -- the commands -------------------------------------------------------------------------------------------
runner = CliRunner()


def test_workshop_kind_help_lists_the_six_commands():
    result = runner.invoke(app, ["kind", "--help"])
    assert result.exit_code == 0
    for command in ("up", "build", "deploy", "rollout", "down", "prefetch"):
        assert f"│ {command} " in result.stdout


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if a command runs a program or reaches for Docker."""
    import subprocess

    import docker

    def refuse(*args, **kwargs):
        raise AssertionError(f"ran {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(docker, "from_env", refuse)


COMMANDS = [["up"], ["build"], ["deploy", "--solution"], ["rollout"], ["down"], ["prefetch"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_without_kind_or_docker_every_command_says_so_and_exits_2(command, monkeypatch, nothing_runs):
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    result = runner.invoke(app, ["kind", *command])
    assert result.exit_code == 2, result.output
    assert "is not installed or not on PATH; `workshop doctor` explains" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_docker_missing_is_named(monkeypatch, nothing_runs):
    monkeypatch.setattr(cluster.shutil, "which", lambda name: "/usr/bin/kind" if name == "kind" else None)
    result = runner.invoke(app, ["kind", "build"])
    assert result.exit_code == 2
    assert "`docker` is not installed" in result.stderr


def test_a_docker_engine_that_does_not_answer_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(cluster.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = runner.invoke(app, ["kind", "prefetch", "--output", str(tmp_path / "kit.tar")])
    assert result.exit_code == 2, result.output
    assert "the Docker engine does not answer" in result.stderr and "`workshop doctor` explains" in result.stderr
    assert not (tmp_path / "kit.tar").exists()


def test_prefetch_load_of_a_missing_file_is_bad_input(tmp_path, nothing_runs):
    result = runner.invoke(app, ["kind", "prefetch", "--load", str(tmp_path / "nope.tar")])
    assert result.exit_code == 2 and "is not a file" in result.stderr


def test_doctor_reads_the_kind_version():
    assert kind_version("kind v0.33.0 go1.25.1 linux/amd64") == (0, 33, 0)
    assert kind_version("kind v0.29.0 go1.24.2 darwin/arm64")[:2] < (0, 33)
    assert kind_version("command not found") is None


# -- a whole run against a stand-in API server ---------------------------------------------------------------
class FakeWatchResponse:
    """What the client's watch reads: JSON lines, then the end of the stream."""

    def __init__(self, lines: list[str], pause: float = 0.0, at_end=None):
        self.lines, self.pause, self.at_end = lines, pause, at_end

    def stream(self, amt=None, decode_content=False):
        for line in self.lines:
            yield (line + "\n").encode()
        if self.at_end:
            self.at_end()  # every line yielded has been read and recorded by the watch
        threading.Event().wait(self.pause)  # an empty watch ends after a while, as the server's timeout

    def close(self):
        pass

    def release_conn(self):
        pass


class FakeCluster:
    """Pods listed, then the recorded watch events, and a Deployment that is rolled out once the
    watch has delivered them all: enough of the API for run_rollouts."""

    def __init__(self, recorded: list[dict]):
        from kubernetes.client import ApiClient

        self.client = ApiClient()
        self.existing = [e["object"] for e in recorded if e.get("existing")]
        changes = [e for e in recorded if not e.get("existing")]
        self.changes = [json.dumps({"type": e["type"], "object": e["object"]}) for e in changes]
        self.watching = threading.Event()
        self.delivered = threading.Event()
        self.patched = []
        self.core, self.apps = self, self
        self.generation = 1

    def list_namespaced_pod(self, namespace, label_selector=None, watch=False, **kwargs) -> "V1PodList":  # noqa: F821
        if not watch:
            from types import SimpleNamespace

            return SimpleNamespace(metadata=SimpleNamespace(resource_version="41000"), items=self.existing)
        if self.patched and not self.watching.is_set():
            self.watching.set()
            return FakeWatchResponse(self.changes, at_end=self.delivered.set)
        return FakeWatchResponse([], pause=0.05)

    def read_namespaced_deployment(self, name, namespace):
        return yaml.safe_load((SOLUTION / "k8s" / "deployment.yaml").read_text())

    def patch_namespaced_deployment(self, name, namespace, body):
        self.patched.append(body)
        self.generation += 1

    def read_namespaced_deployment_status(self, name, namespace):
        observed = self.generation if self.delivered.is_set() else self.generation - 1
        return deployment(generation=self.generation, observed=observed)


def test_run_rollouts_records_the_watch_and_stops_every_thread(recorded):
    from workshop.kind.rollout import run_rollouts

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ServedBy)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    api = FakeCluster(recorded)
    try:
        timeline = run_rollouts(
            api,
            LoadShape(rate=40, slow_every=10**6, workers=2),
            url=f"http://127.0.0.1:{server.server_port}",
            before=0.3,
            after=0.1,
        )
    finally:
        server.shutdown()
        server.server_close()
        serving.join(5)
    assert len(api.patched) == 1 and "kubectl.kubernetes.io/restartedAt" in json.dumps(api.patched[0])
    assert len(timeline.rollouts) == 1
    assert [e.event for e in timeline.events if e.pod == "deployment"] == ["rollout-start", "rollout-complete"]
    assert sequence(timeline.events, OLD[0])[0] == ("existing", "Ready on workshop-worker")
    assert {e.pod for e in timeline.events if e.event == "deleted"} == set(OLD)  # complete only once all are gone
    assert timeline.requests and all(r.ok and r.pod == "cms-7f8b5d6c9-h7d2x" for r in timeline.requests)
    assert timeline.settings["max_surge"] == 1 and timeline.settings["max_unavailable"] == 0
    left = [t.name for t in threading.enumerate() if t.name == "pod-watch" or t.name.startswith("load-")]
    assert left == []


def test_ctrl_c_during_a_rollout_stops_the_load_and_the_watch(recorded):
    from workshop.kind.rollout import run_rollouts

    class Interrupted(FakeCluster):
        def patch_namespaced_deployment(self, name, namespace, body):
            raise KeyboardInterrupt

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ServedBy)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_rollouts(
                Interrupted(recorded),
                LoadShape(rate=40, slow_every=10**6, workers=2),
                url=f"http://127.0.0.1:{server.server_port}",
                before=0.2,
            )
    finally:
        server.shutdown()
        server.server_close()
        serving.join(5)
    left = [t.name for t in threading.enumerate() if t.name == "pod-watch" or t.name.startswith("load-")]
    assert left == []


# -- kind and docker, stood in for --------------------------------------------------------------------------------
@pytest.fixture
def fake_kind(tmp_path, monkeypatch):
    """A `kind` on PATH that logs its arguments; `get clusters` lists what clusters.txt holds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kind"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path}/calls.txt\n'
        'if [ "$1 $2" = "get clusters" ]; then cat ' + str(tmp_path / "clusters.txt") + "; exit 0; fi\n"
        'if [ "$1" = "delete" ]; then echo "ERROR: failed to delete cluster: boom" >&2; exit 1; fi\n'
        "exit 0\n"
    )
    script.chmod(0o755)
    (tmp_path / "clusters.txt").write_text("other\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path


def calls(folder: Path) -> list[str]:
    return (folder / "calls.txt").read_text().splitlines()


def test_up_creates_from_the_config_only_when_the_cluster_is_missing(fake_kind):
    config = fake_kind / "kind-config.yaml"
    config.write_text("kind: Cluster\nname: workshop\n")
    assert cluster.up(config) is True
    assert calls(fake_kind)[-1] == f"create cluster --name workshop --config {config} --wait 120s"
    (fake_kind / "clusters.txt").write_text("other\nworkshop\n")
    assert cluster.up(config) is False and calls(fake_kind)[-1] == "get clusters"


def test_a_failing_kind_command_is_one_clear_line(fake_kind):
    (fake_kind / "clusters.txt").write_text("workshop\n")
    with pytest.raises(cluster.KindFailed) as failed:
        cluster.run_kind("delete", "cluster", "--name", "workshop")
    assert str(failed.value) == (
        "`kind delete cluster --name workshop` failed with exit code 1: ERROR: failed to delete cluster: boom"
    )


class FakeImages:
    def __init__(self, present: set[str]):
        self.present = present

    def get(self, name):
        import docker

        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return name


def test_up_uses_the_node_image_of_the_offline_kit_when_its_digest_was_lost(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from workshop.kind.cli import offline_node_image

    config = fixture_files(tmp_path)["kind_config"]
    monkeypatch.setattr(cluster, "CONFIG", config)
    local = "kindest/node:v1.36.4"
    assert offline_node_image(SimpleNamespace(images=FakeImages({local}))) == local
    assert offline_node_image(SimpleNamespace(images=FakeImages({local, NODE}))) is None  # the pinned one is here
    assert offline_node_image(SimpleNamespace(images=FakeImages(set()))) is None  # kind pulls it


def test_the_app_url_follows_the_host_port_of_kind_config(tmp_path):
    from workshop.kind.cluster import CONFIG, BadInput, app_url

    assert app_url() == "http://127.0.0.1:30080"
    moved = tmp_path / "kind-config.yaml"
    moved.write_text(CONFIG.read_text().replace("hostPort: 30080", "hostPort: 31080"))
    assert app_url(moved) == "http://127.0.0.1:31080"
    moved.write_text("kind: Cluster\nnodes: [{role: control-plane}]\n")
    with pytest.raises(BadInput, match="extraPortMappings"):
        app_url(moved)


def test_deploy_refuses_a_deployment_that_breaks_a_rollout_rule_and_applies_nothing():
    """The rules of workshop.rollout.rules, before anything is applied: the starter breaks
    them (with the rule's words), every right fix of lab 05's corpus keeps them."""
    from workshop.curriculum import find_lab
    from workshop.layers import materialize_variant

    class NoApi:  # anything applied would touch it
        @property
        def dynamic(self):
            raise AssertionError("something was applied")

    lab = find_lab("05")
    with pytest.raises(apply.BadManifest, match="breaks a rule a rolling update depends on: .*no preStop hook"):
        apply.deploy(NoApi(), lab.starter_path, lambda line: None)
    assert "terminationGracePeriodSeconds None" in "; ".join(apply.rule_problems(lab.starter_path))
    assert apply.rule_problems(lab.solution_path) == []
    for alternative in lab.alternatives:
        assert apply.rule_problems(materialize_variant(lab, alternative)) == [], alternative.id
