"""Deploy onto the kind cluster: server-side apply of the manifests, then wait until they run.

Order: k8s/*.yaml in file-name order (the first creates the namespace; among them the Job
cms-migrate), wait for that Job to succeed, then the lab's ConfigMaps (made from its
uwsgi.ini and nginx.conf) and its web Deployment `cms`, then wait for every Deployment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import yaml

from workshop.errors import WorkshopError
from workshop.kind.cluster import BadInput
from workshop.paths import ROOT
from workshop.waiting import wait_until

NAMESPACE = "workshop"
MANIFESTS = ROOT / "k8s"
WEB_MANIFEST = "k8s/deployment.yaml"  # relative to the lab's files
MIGRATE_JOB = "cms-migrate"
FIELD_MANAGER = "workshop"
CONFIG_MAPS = {"cms-uwsgi": "uwsgi.ini", "cms-nginx": "nginx.conf"}
CONFIG_CHECKSUM = "workshop/config-checksum"


class DeployFailed(WorkshopError, RuntimeError):
    pass


class BadManifest(BadInput):
    """A file that is not a list of Kubernetes objects (exit code 2, nothing applied)."""


# -- what to apply (pure) ------------------------------------------------------------------------
def read_documents(path: Path) -> list[dict]:
    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise BadManifest(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    for document in documents:
        if not isinstance(document, dict) or not document.get("kind") or not document.get("apiVersion"):
            raise BadManifest(f"{path}: every document needs apiVersion and kind")
        if not (document.get("metadata") or {}).get("name"):
            raise BadManifest(f"{path}: a {document['kind']} without metadata.name")
    return documents


def cluster_manifests(folder: Path = MANIFESTS) -> list[dict]:
    """k8s/*.yaml in file-name order; k8s/aws/ is a folder of its own and never read here."""
    return [document for path in sorted(Path(folder).glob("*.yaml")) for document in read_documents(path)]


def config_maps(files_dir: Path, namespace: str = NAMESPACE) -> list[dict]:
    """The web Deployment's ConfigMaps, from the lab's own uwsgi.ini and nginx.conf."""
    maps = []
    for name, filename in CONFIG_MAPS.items():
        path = Path(files_dir) / filename
        if not path.is_file():
            raise BadManifest(f"{path} is missing: the ConfigMap {name} is made from it")
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": "cms"}},
                "data": {filename: path.read_text()},
            }
        )
    return maps


def web_manifests(files_dir: Path) -> list[dict]:
    path = Path(files_dir) / WEB_MANIFEST
    if not path.is_file():
        raise BadManifest(f"{path} is missing")
    return read_documents(path)


def web_objects(files_dir: Path) -> list[dict]:
    """The ConfigMaps and the web Deployment, its pod template stamped with a checksum of the
    ConfigMaps: uWSGI and nginx read their files only when they start, so a saved uwsgi.ini
    must roll the pods when it is applied (and the apply waits for that), not leave old pods
    with the old file to be measured by the next rollout."""
    maps = config_maps(files_dir)
    checksum = hashlib.sha256(json.dumps([m["data"] for m in maps], sort_keys=True).encode()).hexdigest()[:16]
    documents = web_manifests(files_dir)
    for document in documents:
        if document["kind"] == "Deployment":
            template = document.setdefault("spec", {}).setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("annotations", {})[CONFIG_CHECKSUM] = checksum
    return maps + documents


# -- applying ------------------------------------------------------------------------------------------
def apply(dynamic, documents: list[dict], say: Callable[[str], None], namespace: str = NAMESPACE) -> None:
    """Server-side apply, one object at a time; namespaced objects go into `namespace` unless they name one."""
    for document in documents:
        resource = dynamic.resources.get(api_version=document["apiVersion"], kind=document["kind"])
        name = document["metadata"]["name"]
        target = None
        if resource.namespaced:
            document = {**document, "metadata": {**document["metadata"]}}
            document["metadata"].setdefault("namespace", namespace)
            target = document["metadata"]["namespace"]
        dynamic.server_side_apply(
            resource, body=document, name=name, namespace=target, field_manager=FIELD_MANAGER, force_conflicts=True
        )
        say(f"applied {document['kind']} {name}" + (f" in {target}" if target else ""))


# -- waiting ---------------------------------------------------------------------------------------------
def last_event(core, namespace: str, name: str) -> str:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    if not events:
        return "no events"
    latest = max(events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return f"{latest.reason}: {latest.message}"


def not_ready_pod(core, namespace: str, selector: str) -> str:
    """The first pod of `selector` that is not Ready, with its last event; or what is missing."""
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    if not pods:
        return f"no pod matches {selector}"
    for pod in pods:
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        if conditions.get("Ready") != "True" and pod.status.phase != "Succeeded":
            return f"pod {pod.metadata.name} is not Ready ({pod.status.phase}); last event: " + last_event(
                core, namespace, pod.metadata.name
            )
    return "every pod is Ready"


def wait_for_job(api, name: str = MIGRATE_JOB, namespace: str = NAMESPACE, timeout: float = 300) -> None:
    def done() -> bool:
        status = api.batch.read_namespaced_job_status(name, namespace).status
        if status.failed and any(c.type == "Failed" and c.status == "True" for c in status.conditions or []):
            raise DeployFailed(f"the Job {name} failed: " + not_ready_pod(api.core, namespace, f"job-name={name}"))
        return bool(status.succeeded)

    wait_until(
        done,
        f"the Job {name} completing",
        timeout,
        interval=1,
        explain=lambda: not_ready_pod(api.core, namespace, f"job-name={name}"),
        error=DeployFailed,
    )


def deployment_available(deployment) -> bool:
    """Rolled out: the controller saw the latest spec, every replica updated, Ready and available."""
    spec, status = deployment.spec, deployment.status
    return (
        (status.observed_generation or 0) >= deployment.metadata.generation
        and (status.updated_replicas or 0) == spec.replicas
        and (status.ready_replicas or 0) == spec.replicas
        and (status.available_replicas or 0) == spec.replicas
        and (status.replicas or 0) == spec.replicas
    )


def wait_for_deployments(api, namespace: str = NAMESPACE, timeout: float = 300) -> None:
    for deployment in api.apps.list_namespaced_deployment(namespace).items:
        name = deployment.metadata.name
        selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
        wait_until(
            lambda name=name: deployment_available(api.apps.read_namespaced_deployment_status(name, namespace)),
            f"the Deployment {name} becoming available",
            timeout,
            interval=1,
            explain=lambda selector=selector: not_ready_pod(api.core, namespace, selector),
            error=DeployFailed,
        )


def rule_problems(files_dir: Path) -> list[str]:
    """The rules a rolling update depends on (workshop.rollout.rules), broken by the web
    Deployment in `files_dir`."""
    from workshop.rollout.load import SLOW_SECONDS
    from workshop.rollout.rules import rollout_problems

    deployments = [doc for doc in web_manifests(files_dir) if doc.get("kind") == "Deployment"]
    conf = Path(files_dir) / "nginx.conf"
    nginx_conf = conf.read_text() if conf.is_file() else None
    return [problem for doc in deployments for problem in rollout_problems(doc, SLOW_SECONDS, nginx_conf)]


def deploy(
    api, files_dir: Path, say: Callable[[str], None], manifests: Path = MANIFESTS, allow_broken: bool = False
) -> None:
    """Everything, in order; the files are read (and rejected) before anything is applied,
    and so is a web Deployment that breaks a rule a rolling update depends on (unless
    `allow_broken`: to watch that failure on purpose)."""
    base = cluster_manifests(manifests)
    web = web_objects(files_dir)
    problems = rule_problems(files_dir)
    if problems and not allow_broken:
        raise BadManifest(
            f"{WEB_MANIFEST} breaks a rule a rolling update depends on: {'; '.join(problems)}. "
            "Nothing was applied. To deploy it anyway and watch the rollout fail: --allow-broken"
        )
    for problem in problems:
        say(f"deploying anyway (--allow-broken): {problem}")
    dynamic = api.dynamic
    apply(dynamic, base, say)
    if any(d["kind"] == "Job" and d["metadata"]["name"] == MIGRATE_JOB for d in base):
        say(f"waiting for the Job {MIGRATE_JOB}...")
        wait_for_job(api)
    apply(dynamic, web, say)
    say("waiting for every Deployment to be available...")
    wait_for_deployments(api)
