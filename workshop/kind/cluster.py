"""The kind cluster `workshop`: create, delete, load images, and a Kubernetes client for it.

kind has no Python SDK, so this wraps its CLI. The Kubernetes client is built from
`kind get kubeconfig`, so whatever context the learner's kubectl points at does not matter.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from workshop import errors
from workshop.paths import ROOT

CLUSTER_NAME = "workshop"
CONFIG = ROOT / "kind-config.yaml"
DOCTOR = "`workshop doctor` explains"


class ToolMissing(errors.BadInput, RuntimeError):
    """docker or kind is not installed, or the Docker engine does not answer (exit code 2)."""


class BadInput(errors.BadInput, ValueError):
    """A file the kind path reads is missing or malformed (exit code 2, nothing changed)."""


class KindFailed(errors.WorkshopError, RuntimeError):
    """A kind command ran and failed (exit code 1)."""


def app_url(config: Path = CONFIG) -> str:
    """Where the host reaches the web Service: the first port mapping of kind-config.yaml
    (127.0.0.1:30080 as shipped; a learner whose port 30080 is taken changes hostPort there)."""
    try:
        data = yaml.safe_load(Path(config).read_text())
        mapping = next(m for node in data["nodes"] for m in node.get("extraPortMappings") or [])
        return f"http://{mapping.get('listenAddress', '127.0.0.1')}:{int(mapping['hostPort'])}"
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError, StopIteration):
        raise BadInput(f"{config}: no extraPortMappings entry with a hostPort (the way to the web Service)") from None


def require(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise ToolMissing(f"`{tool}` is not installed or not on PATH; {DOCTOR}")
    return path


def docker_client():
    """A Docker SDK client whose engine answers, else ToolMissing."""
    import docker

    require("docker")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ToolMissing(f"the Docker engine does not answer ({str(exc)[:160]}); {DOCTOR}") from None
    return client


def preflight(kind: bool = True, docker: bool = True):
    """Check the tools before anything changes; returns the Docker client (or None)."""
    if kind:
        require("kind")
    return docker_client() if docker else None


def run_kind(*args: str, stream: bool = False, timeout: float = 600) -> str:
    """Run `kind ARGS`; `stream` lets its progress go to the terminal."""
    command = [require("kind"), *args]
    try:
        result = subprocess.run(
            command, capture_output=not stream, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise KindFailed(f"`kind {' '.join(args)}` did not finish in {timeout:g} s") from None
    if result.returncode != 0:
        tail = (result.stderr or "").strip().splitlines()[-3:] if not stream else []
        detail = ": " + " / ".join(tail) if tail else ""
        raise KindFailed(f"`kind {' '.join(args)}` failed with exit code {result.returncode}{detail}")
    return result.stdout or ""


def clusters() -> list[str]:
    return [line.strip() for line in run_kind("get", "clusters").splitlines() if line.strip()]


def exists(name: str = CLUSTER_NAME) -> bool:
    return name in clusters()


def up(config: Path = CONFIG, name: str = CLUSTER_NAME, node_image: str | None = None) -> bool:
    """Create the cluster from kind-config.yaml unless it exists; True if it was created.
    `node_image` overrides the config's node image (kind's --image)."""
    if exists(name):
        return False
    if not Path(config).is_file():
        raise BadInput(f"{config} is missing: lab 05 part 2 needs it")
    command = ["create", "cluster", "--name", name, "--config", str(config), "--wait", "120s"]
    run_kind(*command, *(["--image", node_image] if node_image else []), stream=True, timeout=900)
    return True


def down(name: str = CLUSTER_NAME) -> bool:
    """Delete the cluster; True if there was one."""
    if not exists(name):
        return False
    run_kind("delete", "cluster", "--name", name, stream=True)
    return True


def load_image(image: str, name: str = CLUSTER_NAME) -> None:
    """Copy an image from the local Docker engine into every node (no registry, no pull)."""
    run_kind("load", "docker-image", image, "--name", name, stream=True, timeout=900)


def kubeconfig(name: str = CLUSTER_NAME) -> dict:
    return yaml.safe_load(run_kind("get", "kubeconfig", "--name", name))


@dataclass
class Api:
    """The Kubernetes clients the kind commands use, all on the kind cluster's kubeconfig."""

    client: object  # kubernetes.client.ApiClient
    core: object  # CoreV1Api
    apps: object  # AppsV1Api
    batch: object  # BatchV1Api

    @property
    def dynamic(self):
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self.client)

    def close(self) -> None:
        self.client.close()


def connect(name: str = CLUSTER_NAME) -> Api:
    """Clients for the running cluster; KindFailed if it does not exist."""
    from kubernetes import client, config

    if not exists(name):
        raise KindFailed(f"there is no kind cluster {name!r}: run `workshop kind up` first")
    api_client = config.new_client_from_config_dict(kubeconfig(name))
    return Api(api_client, client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.BatchV1Api(api_client))
