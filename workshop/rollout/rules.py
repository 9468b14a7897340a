"""The rules of lab 05's manifests, as code: small functions, each returning the problems
it finds (an empty list: the rule holds). The manifest tests run them on every manifest,
`workshop kind deploy` refuses web manifests that break the rules a rollout depends on
(before anything is applied), and a rule's message is what the learner reads.

- the web Deployment: probes whose paths exist (in cms's URLs, in the sidecar's
  nginx.conf), preStop hooks that stop nginx before uWSGI, a grace period covering the
  longest preStop and the slowest request, no pod taken out before its replacement is Ready;
- every workload: non-root, read-only root filesystem, no privilege escalation,
  capabilities dropped, RuntimeDefault seccomp, requests and limits;
- secrets only in the Secret, as marked lab defaults; the lab 03 worker flags; two RedBeat
  beats; the AWS variant's label, Ingress and deregistration delay.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from workshop.curriculum import find_lab
from workshop.layers import layer_dirs
from workshop.paths import ROOT, SOLUTIONS_DIR, state_dir
from workshop.rollout.manifest import PreStop, surge_and_unavailable

LAB_DEFAULT_MARKER = "workshop-lab-default"
SECRETISH = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)
# Containers allowed a writable root filesystem, each with the reason. None today:
# PostgreSQL and Valkey run read-only with emptyDir volumes where they write.
WRITABLE_ROOT_ALLOWED: dict[tuple[str, str], str] = {}


def pod_spec(doc: dict) -> dict | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "Pod":
        return doc["spec"]
    return None


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc) or {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container(doc: dict, name: str) -> dict:
    return next(c for c in containers(doc) if c["name"] == name)


def where(doc: dict, item: dict | None = None) -> str:
    text = f"{doc['kind']} {doc['metadata']['name']}"
    return f"{text}, container {item['name']}" if item else text


@cache
def cms_resolves(path: str, files_dir: Path = SOLUTIONS_DIR / "05-uwsgi-rollouts") -> bool:
    """Does cms route this URL path (lab 05's layers over `files_dir`)? Asked of Django
    itself, in a process of its own."""
    code = (
        "import sys, django; django.setup()\n"
        "from django.urls import Resolver404, resolve\n"
        "try:\n    resolve(sys.argv[1])\nexcept Resolver404:\n    sys.exit(1)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cms.settings", "CMS_DATA_DIR": str(state_dir() / "url-probe")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*layer_dirs(find_lab("05"), files_dir), ROOT])
    result = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"cms could not be asked for its URLs: {result.stderr[-500:]}")
    return result.returncode == 0


def nginx_locations(conf: str) -> list[tuple[str, str]]:
    """(modifier, path) of each `location` of an nginx.conf: ("=", "/nginx-health"), ("", "/")."""
    return re.findall(r"\blocation\s+(=|\^~)?\s*(/\S*)\s*\{", conf)


def nginx_answers_itself(conf: str, path: str) -> bool:
    """A location other than the catch-all `/` (which passes to uWSGI) serves this path."""
    return any(
        (path == location) if modifier == "=" else (location != "/" and path.startswith(location))
        for modifier, location in nginx_locations(conf)
    )


def readiness_problems(deployment: dict, nginx_conf: str) -> list[str]:
    problems = []
    for name in ("uwsgi", "nginx"):
        probe = container(deployment, name).get("readinessProbe")
        path = (probe or {}).get("httpGet", {}).get("path")
        if path is None:
            problems.append(f"container {name}: no httpGet readinessProbe")
        elif name == "uwsgi" and not cms_resolves(path):
            problems.append(f"container uwsgi: readinessProbe path {path} is not a URL of cms")
        elif name == "nginx" and not nginx_answers_itself(nginx_conf, path):
            problems.append(f"container nginx: readinessProbe path {path} is no location of nginx.conf but `/`")
    return problems


def pre_stop(item: dict) -> PreStop | None:
    hook = item.get("lifecycle", {}).get("preStop")
    if not hook:
        return None
    if "sleep" in hook:
        return PreStop(sleep=float(hook["sleep"]["seconds"]))
    return PreStop(command=tuple(hook.get("exec", {}).get("command", ())))


def keeps_connections_alive(nginx_conf: str | None) -> bool:
    """Does the sidecar keep client connections open between requests (nginx's default)?"""
    return nginx_conf is None or not re.search(r"^\s*keepalive_timeout\s+0(s)?\s*;", nginx_conf, re.MULTILINE)


def pre_stop_problems(deployment: dict, nginx_conf: str | None = None) -> list[str]:
    problems = [f"container {c['name']}: no preStop hook" for c in containers(deployment) if pre_stop(c) is None]
    waits = {c["name"]: hook.seconds for c in containers(deployment) if (hook := pre_stop(c))}
    ordered = "nginx" in waits and "uwsgi" in waits and waits["nginx"] >= waits["uwsgi"]
    if ordered and keeps_connections_alive(nginx_conf):
        # through kube-proxy a keep-alive client stays on its pod: nginx must stop taking
        # requests (its SIGQUIT) before uWSGI refuses them (q)
        problems.append(f"the nginx preStop ({waits['nginx']:g} s) does not end before uWSGI's ({waits['uwsgi']:g} s)")
    return problems


def grace_problems(deployment: dict, slowest_request: float) -> list[str]:
    grace = pod_spec(deployment).get("terminationGracePeriodSeconds")
    longest = max((hook.seconds for c in containers(deployment) if (hook := pre_stop(c))), default=0)
    if grace is None or grace < longest + slowest_request:
        return [
            f"terminationGracePeriodSeconds {grace} < the longest preStop ({longest:g} s) "
            f"+ the slowest request ({slowest_request:g} s)"
        ]
    return []


def strategy_problems(deployment: dict) -> list[str]:
    rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
    surge, unavailable = rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")
    taken_out = {n: surge_and_unavailable(n, surge, unavailable)[1] for n in range(1, 11)}
    if any(taken_out.values()):
        return [f"maxUnavailable {unavailable!r} takes pods out before their replacement is Ready"]
    return []


def security_problems(doc: dict) -> list[str]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    pod = spec.get("securityContext", {})
    problems = []
    for item in containers(doc):
        context = item.get("securityContext", {})
        place = where(doc, item)
        run_as_non_root = context.get("runAsNonRoot", pod.get("runAsNonRoot"))
        if run_as_non_root is not True or context.get("runAsUser", pod.get("runAsUser")) == 0:
            problems.append(f"{place}: may run as root (runAsNonRoot true, runAsUser not 0)")
        if context.get("readOnlyRootFilesystem") is not True and (doc["metadata"]["name"], item["name"]) not in (
            WRITABLE_ROOT_ALLOWED
        ):
            problems.append(f"{place}: readOnlyRootFilesystem is not true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{place}: allowPrivilegeEscalation is not false")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{place}: capabilities do not drop ALL")
        if (context.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{place}: seccompProfile is not RuntimeDefault")
    return problems


def resource_problems(doc: dict) -> list[str]:
    problems = []
    for item in containers(doc):
        resources = item.get("resources", {})
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind, {}))
            if missing:
                problems.append(f"{where(doc, item)}: no {kind} for {sorted(missing)}")
    return problems


def secret_problems(doc: dict) -> list[str]:
    """Secrets only in the Secret, as marked lab defaults; nowhere else in plain text."""
    name = where(doc)
    if doc["kind"] == "Secret":
        values = {**doc.get("stringData", {})}
        values |= {key: base64.b64decode(value).decode() for key, value in doc.get("data", {}).items()}
        unmarked = [key for key, value in values.items() if LAB_DEFAULT_MARKER not in value]
        return [f"{name}: {key} is not a marked lab default" for key in unmarked]
    if doc["kind"] == "ConfigMap":
        keys = [key for key in doc.get("data", {}) if SECRETISH.search(key)]
        return [f"{name}: {key} looks like a secret: it belongs in the Secret" for key in keys]
    problems = []
    for item in containers(doc):
        for variable in item.get("env", []):
            place, value = f"{where(doc, item)}: env {variable['name']}", str(variable.get("value", ""))
            if SECRETISH.search(variable["name"]) and "secretKeyRef" not in variable.get("valueFrom", {}):
                problems.append(f"{place} is not from a secretKeyRef")
            credentials = re.search(r"://[^/:@\s]*:([^@\s]*)@", value)
            if credentials and not re.fullmatch(r"\$\([A-Z0-9_]+\)", credentials.group(1)):
                problems.append(f"{place} holds a password in plain text (use $(VARIABLE) from the Secret)")
    return problems


def worker_problems(worker: dict) -> list[str]:
    command = " ".join(container(worker, "worker")["command"])
    flags = ("--max-tasks-per-child", "--max-memory-per-child")
    return [f"worker command lacks {flag}" for flag in flags if flag not in command]


def beat_problems(beat: dict) -> list[str]:
    problems = []
    if beat["spec"].get("replicas") != 2:
        problems.append(f"beat runs {beat['spec'].get('replicas')} replicas, not 2")
    if "--scheduler=redbeat.RedBeatScheduler" not in container(beat, "beat")["command"]:
        problems.append("beat does not use --scheduler=redbeat.RedBeatScheduler")
    return problems


def aws_problems(namespace: dict, ingress: dict, deployment: dict, slowest_request: float) -> list[str]:
    problems = []
    if namespace["metadata"].get("labels", {}).get("elbv2.k8s.aws/pod-readiness-gate-inject") != "enabled":
        problems.append("the namespace lacks the label elbv2.k8s.aws/pod-readiness-gate-inject: enabled")
    annotations = ingress["metadata"].get("annotations", {})
    prefix = "alb.ingress.kubernetes.io/"
    if ingress["spec"].get("ingressClassName") != "alb" or annotations.get(prefix + "target-type") != "ip":
        problems.append("the Ingress is not an ALB with target-type ip")
    readiness_path = container(deployment, "uwsgi")["readinessProbe"]["httpGet"]["path"]
    if annotations.get(prefix + "healthcheck-path") != readiness_path:
        problems.append(f"the ALB health check is not the readiness path {readiness_path}")
    attributes = dict(a.split("=", 1) for a in annotations.get(prefix + "target-group-attributes", "").split(",") if a)
    delay = float(attributes.get("deregistration_delay.timeout_seconds", 300))
    uwsgi_sleep = pre_stop(container(deployment, "uwsgi")).seconds
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    if not uwsgi_sleep + slowest_request <= delay <= grace:
        problems.append(
            f"deregistration delay {delay:g} s is not between the uWSGI preStop + the slowest request "
            f"({uwsgi_sleep + slowest_request:g} s) and the grace period ({grace} s)"
        )
    return problems


def rollout_problems(deployment: dict, slowest_request: float, nginx_conf: str | None = None) -> list[str]:
    """What a rolling update needs of the web Deployment, whatever route the lab took to the
    rest: preStop hooks (nginx's ending first while it keeps connections alive), a grace
    period that covers them and the slowest request, no pod taken out before its
    replacement is Ready."""
    problems = pre_stop_problems(deployment, nginx_conf)
    return problems + grace_problems(deployment, slowest_request) + strategy_problems(deployment)
