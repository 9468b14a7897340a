"""Lab 05 part 2, the static side: the Dockerfile, kind-config.yaml and every Kubernetes
manifest (k8s/, k8s/aws/, the lab's web Deployment, starter and solution), checked
without a cluster and without docker.

- Every manifest passes `kubernetes-validate --strict` against the Kubernetes version of
  kind-config.yaml's node image, and so do the ConfigMaps the deployer generates.
- hadolint passes on the Dockerfile; the image holds what cms imports and the lab layers.
- Semantic rules (small functions returning a list of problems): probes whose paths exist,
  preStop, grace period, maxUnavailable 0, non-root and read-only, resources, no plain
  secret, the lab 03 worker flags, two RedBeat beats, the migrations Job, the AWS variant.
  Each rule has a negative test that breaks a copy of the good manifest and expects the
  rule to report it.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points, packages_distributions
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from docker.utils.build import exclude_paths
from packaging.utils import canonicalize_name

from workshop.curriculum import find_lab
from workshop.layers import layer_dirs, settings_modules
from workshop.paths import BIN_DIR, ROOT
from workshop.procfile import read_procfile
from workshop.rollout.load import SLOW_SECONDS
from workshop.rollout.rules import (
    aws_problems,
    beat_problems,
    container,
    containers,
    grace_problems,
    pod_spec,
    pre_stop,
    pre_stop_problems,
    readiness_problems,
    resource_problems,
    secret_problems,
    security_problems,
    strategy_problems,
    where,
    worker_problems,
)

K8S = ROOT / "k8s"
AWS = K8S / "aws"
LAB = ROOT / "labs" / "05-uwsgi-rollouts"
SOLUTION = ROOT / "solutions" / "05-uwsgi-rollouts"
DEPLOYMENTS = {"starter": LAB / "k8s" / "deployment.yaml", "solution": SOLUTION / "k8s" / "deployment.yaml"}
# The namespace of the AWS variant is a file of the lab (step 6 labels it): k8s/aws/ holds the rest.
AWS_NAMESPACES = {
    "starter": LAB / "k8s" / "aws" / "00-namespace.yaml",
    "solution": SOLUTION / "k8s" / "aws" / "00-namespace.yaml",
}
NAMESPACE = "workshop"
CMS_IMAGE = "cms:workshop"  # built and loaded by `workshop kind build`, never pulled


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def all_documents(folder: Path) -> list[dict]:
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in documents(path)]


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def kind_config() -> dict:
    return yaml.safe_load((ROOT / "kind-config.yaml").read_text())


def kubernetes_version() -> str:
    """The Kubernetes version of kind-config.yaml's node image: kindest/node:v1.36.4@sha256:..."""
    image = kind_config()["nodes"][0]["image"]
    match = re.fullmatch(r"kindest/node:v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}", image)
    assert match, f"kind-config.yaml: the node image {image!r} is not kindest/node:vX.Y.Z@sha256:<digest>"
    return match.group(1)


def generated_configmaps(files_dir: Path) -> list[dict]:
    """The ConfigMaps the deployer makes from the lab's uwsgi.ini and nginx.conf."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {key: (files_dir / key).read_text()},
        }
        for name, key in (("cms-uwsgi", "uwsgi.ini"), ("cms-nginx", "nginx.conf"))
    ]


# -- strict validation against the cluster's Kubernetes version ---------------------------------

MANIFESTS = [
    *sorted(K8S.glob("*.yaml")),
    *sorted(AWS.glob("*.yaml")),
    *DEPLOYMENTS.values(),
    *AWS_NAMESPACES.values(),
]


def validation_errors(doc: dict) -> list[str]:
    # kubernetes-validate bundles schemas per minor version (v1.36.0 here): it validates
    # 1.36.4 against the newest schemas not newer than it, and the API of a minor
    # version does not change between its patch releases.
    try:
        kubernetes_validate.validate(doc, kubernetes_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        return [f"{where(doc)}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where(doc)}: {error.message}"]
    return []


def test_the_validation_version_is_the_kind_node_version():
    assert kubernetes_version() == "1.36.4"
    schemas = kubernetes_validate.utils.all_versions()
    assert any(version.startswith("1.36.") for version in schemas), f"no 1.36 schemas, only {schemas}"


@pytest.mark.parametrize("path", MANIFESTS, ids=relative)
def test_every_manifest_passes_strict_validation(path):
    docs = documents(path)
    assert docs, f"{relative(path)} holds no document"
    problems = [problem for doc in docs for problem in validation_errors(doc)]
    assert not problems, f"{relative(path)} (Kubernetes {kubernetes_version()}):\n" + "\n".join(problems)


@pytest.mark.parametrize("variant", DEPLOYMENTS)
def test_the_generated_configmaps_pass_strict_validation(variant):
    files_dir = DEPLOYMENTS[variant].parent.parent
    problems = [problem for doc in generated_configmaps(files_dir) for problem in validation_errors(doc)]
    assert not problems, "\n".join(problems)


def test_strict_validation_rejects_an_unknown_field():
    deployment = copy.deepcopy(documents(DEPLOYMENTS["solution"])[0])
    container(deployment, "uwsgi")["readinesProbe"] = {"httpGet": {"path": "/login/", "port": 8000}}
    assert any("readinesProbe" in problem for problem in validation_errors(deployment))


# -- every manifest: namespace, images --------------------------------------------------------------


def test_the_first_file_creates_the_namespace_every_other_document_uses():
    files = sorted(K8S.glob("*.yaml"))
    first = documents(files[0])
    assert [(doc["kind"], doc["metadata"]["name"]) for doc in first] == [("Namespace", NAMESPACE)]
    others = [doc for path in [*files[1:], *DEPLOYMENTS.values()] for doc in documents(path)]
    wrong = [where(doc) for doc in others if doc["metadata"].get("namespace") != NAMESPACE]
    assert not wrong, f"not in namespace {NAMESPACE}: {wrong}"


# Images whose exact versions have two numbers (PostgreSQL 18.6 is a release, not a series).
TWO_NUMBER_VERSIONS = {"postgres"}


def image_problems(image: str) -> list[str]:
    """An image the lab pulls must name an exact version (no `latest`, no `1.30` series)."""
    if image == CMS_IMAGE:
        return []
    match = re.fullmatch(r"([\w./-]+):v?(\d+(?:\.\d+)*)(-[\w.]+)?(@sha256:[0-9a-f]{64})?", image)
    numbers = 2 if match and match.group(1) in TWO_NUMBER_VERSIONS else 3
    if not match or len(match.group(2).split(".")) < numbers:
        return [f"image {image!r} is not pinned to an exact version"]
    return []


@pytest.mark.parametrize("path", MANIFESTS, ids=relative)
def test_every_image_is_pinned_to_an_exact_version(path):
    problems = [p for doc in documents(path) for c in containers(doc) for p in image_problems(c["image"])]
    assert not problems, problems


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "nginx:1.30-alpine", "postgres:18", "postgres:18-alpine"])
def test_an_unpinned_image_is_reported(image):
    assert image_problems(image)


# -- kind-config.yaml ---------------------------------------------------------------------------------


def test_kind_config_pins_the_node_image_and_has_three_nodes():
    config = kind_config()
    assert (config["kind"], config["apiVersion"], config["name"]) == ("Cluster", "kind.x-k8s.io/v1alpha4", "workshop")
    roles = [node["role"] for node in config["nodes"]]
    assert sorted(roles) == ["control-plane", "worker", "worker"], roles
    images = {node.get("image") for node in config["nodes"]}
    assert len(images) == 1, f"every node must run the same pinned image: {images}"
    kubernetes_version()  # asserts the pin by digest


def test_kind_maps_the_web_service_node_port_to_the_host():
    control_plane = next(node for node in kind_config()["nodes"] if node["role"] == "control-plane")
    service = find(all_documents(K8S), "Service", "cms")
    node_port = service["spec"]["ports"][0]["nodePort"]
    assert service["spec"]["type"] == "NodePort"
    assert {"containerPort": node_port, "hostPort": node_port, "listenAddress": "127.0.0.1", "protocol": "TCP"} in (
        control_plane["extraPortMappings"]
    )


def test_the_web_service_sends_to_the_sidecar_of_the_web_pods():
    deployment = documents(DEPLOYMENTS["solution"])[0]
    for folder in (K8S, AWS):
        service = find(all_documents(folder), "Service", "cms")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        target = service["spec"]["ports"][0]["targetPort"]
        assert target in {port["name"] for port in container(deployment, "nginx")["ports"]}, target


# -- the Dockerfile -------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(arguments))
    return env


def hadolint(path: Path) -> subprocess.CompletedProcess:
    # cwd=ROOT: hadolint reads the repository's .hadolint.yaml, if there ever is one
    return subprocess.run([str(BIN_DIR / "hadolint"), str(path)], cwd=ROOT, capture_output=True, text=True)


def test_hadolint_passes_on_the_dockerfile():
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, f"hadolint Dockerfile:\n{result.stdout}{result.stderr}"


def test_hadolint_fails_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install django\n")
    result = hadolint(careless)
    assert result.returncode != 0 and "DL3006" in result.stdout, result.stdout


def test_the_image_base_is_pinned_and_it_runs_as_a_numeric_non_root_user():
    instructions = dockerfile_instructions()
    bases = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base) for base in bases), bases
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), f"the last USER must be a non-root uid: {users}"
    env = dockerfile_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"].startswith("/tmp")


def test_the_image_layers_are_the_ones_the_workshop_runs_lab_05_with():
    lab = find_lab("05")
    env = dockerfile_env()
    expected = [f"/app/{relative(folder)}" for folder in layer_dirs(lab, lab.path)[1:]] + ["/app"]
    assert env["PYTHONPATH"].split(":") == expected
    assert env["CMS_SETTINGS_LAYERS"].split(",") == settings_modules(lab)


def build_context_problems(ignore_patterns: list[str]) -> list[str]:
    """What the Dockerfile copies must be in the build context; the venv and state must not."""
    context = exclude_paths(str(ROOT), ignore_patterns)
    problems = [f"{path} is in the build context" for path in context if path.split("/")[0] in {".venv", ".workshop"}]
    sources = [
        source
        for keyword, arguments in dockerfile_instructions()
        if keyword == "COPY"
        for source in arguments.split()[:-1]
        if not source.startswith("--")
    ]
    for source in sources:
        if not sorted(ROOT.glob(source.rstrip("/"))):
            problems.append(f"COPY {source}: no such file")
        elif not [path for path in context if Path(path).match(source.rstrip("/")) or path.startswith(source)]:
            problems.append(f"COPY {source}: .dockerignore leaves it out of the build context")
    return problems


def test_the_build_context_holds_every_file_the_dockerfile_copies():
    assert not build_context_problems((ROOT / ".dockerignore").read_text().splitlines())


@pytest.mark.parametrize("dropped", ["!cms/", "*"])
def test_a_dockerignore_that_drops_a_copied_file_or_lets_the_venv_in_is_reported(dropped):
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    assert dropped in patterns
    assert build_context_problems([pattern for pattern in patterns if pattern != dropped])


def image_python_files() -> list[Path]:
    """The Python files the image holds: its COPY sources (directories walked)."""
    files = []
    for keyword, arguments in dockerfile_instructions():
        if keyword != "COPY":
            continue
        for source in arguments.split()[:-1]:
            for match in ROOT.glob(source.rstrip("/")):
                files += sorted(match.rglob("*.py")) if match.is_dir() else [match] if match.suffix == ".py" else []
    return files


def top_level_imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def lock_pins(path: Path) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    """{(name, marker): (version, hashes)} of a uv-compiled lock."""
    pins, current = {}, None
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\[\]-]+)==(\S+?)(?: ; (.*?))? \\$", line)
        if match:
            current = (canonicalize_name(match.group(1)), match.group(3) or "")
            pins[current] = (match.group(2), frozenset())
        elif current and (hash_match := re.search(r"--hash=(sha256:[0-9a-f]{64})", line)):
            version, hashes = pins[current]
            pins[current] = (version, hashes | {hash_match.group(1)})
    return pins


def test_every_pin_of_the_image_lock_is_the_pin_of_requirements_lock():
    image, full = lock_pins(ROOT / "requirements-image.lock"), lock_pins(ROOT / "requirements.lock")
    assert image, "requirements-image.lock pins nothing"
    different = {key: (pin[0], full.get(key, ("missing",))[0]) for key, pin in image.items() if full.get(key) != pin}
    assert not different, f"(name, marker): (image lock, requirements.lock) versions or hashes differ: {different}"


def test_the_image_has_a_package_for_every_import_of_its_code():
    local = {"cms", "workshop"} | {path.stem for path in image_python_files()}
    imports = set().union(*(top_level_imports(path) for path in image_python_files()))
    third_party = imports - local - set(sys.stdlib_module_names) - {"__future__"}
    provided = {canonicalize_name(name) for name, _ in lock_pins(ROOT / "requirements-image.lock")}
    distributions = packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in third_party
        if not {canonicalize_name(d) for d in distributions.get(module, [])} & provided
    }
    assert third_party and not missing, f"imported by the image's code, not in requirements-image.lock: {missing}"


def test_the_web_container_runs_a_console_script_of_pyuwsgi():
    scripts = {ep.name for ep in entry_points(group="console_scripts") if ep.value.startswith("pyuwsgi")}
    commands = {json.dumps(container(documents(path)[0], "uwsgi")["command"]) for path in DEPLOYMENTS.values()}
    assert len(commands) == 1
    command = json.loads(commands.pop())
    assert command[0] in scripts, f"{command[0]!r} is not a script pyuwsgi installs ({scripts})"
    cmd = next(arguments for keyword, arguments in dockerfile_instructions() if keyword == "CMD")
    assert json.loads(cmd)[0] in scripts


# -- the rules on the committed manifests --------------------------------------------------------------


def solution() -> dict:
    return documents(DEPLOYMENTS["solution"])[0]


def nginx_conf() -> str:
    return (SOLUTION / "nginx.conf").read_text()


def test_the_solution_passes_every_web_rule():
    deployment = solution()
    problems = readiness_problems(deployment, nginx_conf())
    problems += pre_stop_problems(deployment) + grace_problems(deployment, SLOW_SECONDS) + strategy_problems(deployment)
    assert not problems, problems


def test_the_starter_lacks_what_the_lab_steps_add():
    starter = documents(DEPLOYMENTS["starter"])[0]
    assert pre_stop_problems(starter) and strategy_problems(starter) and grace_problems(starter, SLOW_SECONDS)
    assert "readinessProbe" not in container(starter, "uwsgi")
    # and only that: everything else is the solution's
    stripped = copy.deepcopy(solution())
    del stripped["spec"]["strategy"], pod_spec(stripped)["terminationGracePeriodSeconds"]
    for item in containers(stripped):
        del item["lifecycle"], item["readinessProbe"]
    container(stripped, "nginx")["readinessProbe"] = container(starter, "nginx")["readinessProbe"]
    assert stripped == starter


ALL_DOCS = [(relative(path), doc) for path in MANIFESTS for doc in documents(path)]


@pytest.mark.parametrize("rule", [security_problems, resource_problems, secret_problems])
def test_every_manifest_follows_the_rule(rule):
    problems = [f"{path}: {problem}" for path, doc in ALL_DOCS for problem in rule(doc)]
    assert not problems, "\n".join(problems)


def test_the_generated_configmaps_hold_no_secret():
    problems = [p for files in (LAB, SOLUTION) for doc in generated_configmaps(files) for p in secret_problems(doc)]
    assert not problems, problems


def test_the_worker_and_the_beat_run_the_lab_solutions_command_lines():
    docs = all_documents(K8S)
    worker, beat = find(docs, "Deployment", "cms-worker"), find(docs, "Deployment", "cms-beat")
    assert not worker_problems(worker) and not beat_problems(beat)
    worker_line = read_procfile(ROOT / "solutions" / "03-celery-leaks" / "Procfile")["worker"]
    beat_line = read_procfile(ROOT / "solutions" / "04-beat" / "Procfile")["beat"]
    assert container(worker, "worker")["command"] == worker_line
    assert container(beat, "beat")["command"] == beat_line


def test_the_migrations_run_as_a_job():
    job = find(all_documents(K8S), "Job", "cms-migrate")
    command = " ".join(container(job, "migrate")["command"])
    assert "django migrate" in command and container(job, "migrate")["image"] == CMS_IMAGE


def aws_namespace(variant: str = "solution") -> dict:
    return find(documents(AWS_NAMESPACES[variant]), "Namespace", NAMESPACE)


def test_the_aws_variant_has_the_readiness_gate_and_an_ip_target_alb():
    ingress = find(all_documents(AWS), "Ingress", "cms")
    assert not aws_problems(aws_namespace(), ingress, solution(), SLOW_SECONDS)
    # the starter's AWS namespace lacks only the label (step 6); kind's namespace is the same namespace
    starter, kind_namespace = aws_namespace("starter"), find(all_documents(K8S), "Namespace", NAMESPACE)
    labelled = copy.deepcopy(starter)
    labelled["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] = "enabled"
    assert aws_problems(starter, ingress, solution(), SLOW_SECONDS) and labelled == aws_namespace()
    assert kind_namespace == starter
    # no Deployment writes a readiness gate itself: on kind nothing would set it, and no pod would be Ready
    for path in DEPLOYMENTS.values():
        assert "readinessGates" not in pod_spec(documents(path)[0])


# -- teeth: each rule reports a broken copy of the good manifest ------------------------------------


def break_uwsgi_probe(d):
    del container(d, "uwsgi")["readinessProbe"]


def break_uwsgi_probe_path(d):
    container(d, "uwsgi")["readinessProbe"]["httpGet"]["path"] = "/no-such-page/"


def break_nginx_probe_path(d):
    container(d, "nginx")["readinessProbe"]["httpGet"]["path"] = "/"


def break_pre_stop(d):
    del container(d, "nginx")["lifecycle"]


def break_grace(d):
    pod_spec(d)["terminationGracePeriodSeconds"] = 6


def break_sidecar_order(d):
    container(d, "nginx")["lifecycle"]["preStop"] = {"exec": {"command": ["/bin/sh", "-c", "sleep 10"]}}


def break_strategy(d):
    d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1


def break_read_only(d):
    container(d, "nginx")["securityContext"]["readOnlyRootFilesystem"] = False


def break_root(d):
    container(d, "uwsgi")["securityContext"]["runAsUser"] = 0


def break_capabilities(d):
    del container(d, "uwsgi")["securityContext"]["capabilities"]


def break_resources(d):
    del container(d, "nginx")["resources"]["limits"]


def break_plain_password(d):
    container(d, "uwsgi")["env"].append({"name": "DATABASE_PASSWORD", "value": "hunter2"})


def break_password_in_url(d):
    variable = next(v for v in container(d, "uwsgi")["env"] if v["name"] == "DATABASE_URL")
    variable["value"] = "postgresql://cms:hunter2@postgres:5432/cms"


WEB_BREAKAGES = {
    break_uwsgi_probe: lambda d: readiness_problems(d, nginx_conf()),
    break_uwsgi_probe_path: lambda d: readiness_problems(d, nginx_conf()),
    break_nginx_probe_path: lambda d: readiness_problems(d, nginx_conf()),
    break_pre_stop: pre_stop_problems,
    break_sidecar_order: pre_stop_problems,
    break_grace: lambda d: grace_problems(d, SLOW_SECONDS),
    break_strategy: strategy_problems,
    break_read_only: security_problems,
    break_root: security_problems,
    break_capabilities: security_problems,
    break_resources: resource_problems,
    break_plain_password: secret_problems,
    break_password_in_url: secret_problems,
}


@pytest.mark.parametrize("breakage", WEB_BREAKAGES, ids=lambda f: f.__name__)
def test_a_rule_reports_a_broken_web_deployment(breakage):
    rule = WEB_BREAKAGES[breakage]
    good = solution()
    assert not rule(good)
    broken = copy.deepcopy(good)
    breakage(broken)
    assert rule(broken), f"{breakage.__name__}: the rule found nothing"


def test_the_grace_rule_reads_the_rehearsals_slowest_request():
    deployment = solution()
    longest = max(pre_stop(c).seconds for c in containers(deployment))
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert not grace_problems(deployment, grace - longest) and grace_problems(deployment, grace - longest + 1)


def test_a_secret_without_the_lab_default_marker_is_reported():
    secret = copy.deepcopy(find(all_documents(K8S), "Secret", "cms-secrets"))
    assert not secret_problems(secret)
    secret["stringData"]["SECRET_KEY"] = "a-real-looking-key"
    assert secret_problems(secret)
    config = copy.deepcopy(find(all_documents(K8S), "ConfigMap", "cms-config"))
    config["data"]["CRM_CLIENT_SECRET"] = "s3cr3t"
    assert secret_problems(config)


def test_the_worker_and_beat_rules_report_a_missing_flag_and_one_beat():
    docs = all_documents(K8S)
    worker = copy.deepcopy(find(docs, "Deployment", "cms-worker"))
    container(worker, "worker")["command"] = [
        part for part in container(worker, "worker")["command"] if not part.startswith("--max-memory-per-child")
    ]
    assert worker_problems(worker)
    beat = copy.deepcopy(find(docs, "Deployment", "cms-beat"))
    beat["spec"]["replicas"] = 1
    assert beat_problems(beat)
    container(beat, "beat")["command"] = ["celery", "-A", "cms", "beat"]
    assert len(beat_problems(beat)) == 2


@pytest.mark.parametrize("breakage", ["label", "target-type", "healthcheck", "delay"])
def test_the_aws_rule_reports_a_broken_variant(breakage):
    docs = all_documents(AWS)
    namespace, ingress = copy.deepcopy(aws_namespace()), copy.deepcopy(find(docs, "Ingress", "cms"))
    annotations = ingress["metadata"]["annotations"]
    if breakage == "label":
        del namespace["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"]
    elif breakage == "target-type":
        annotations["alb.ingress.kubernetes.io/target-type"] = "instance"
    elif breakage == "healthcheck":
        annotations["alb.ingress.kubernetes.io/healthcheck-path"] = "/"
    else:
        annotations["alb.ingress.kubernetes.io/target-group-attributes"] = "deregistration_delay.timeout_seconds=2"
    assert aws_problems(namespace, ingress, solution(), SLOW_SECONDS)
