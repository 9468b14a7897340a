"""The lab's Deployment, read the way the rehearsal needs it: the rolling-update strategy,
minReadySeconds, each container's readiness probe, preStop hook, stop signal, ports and
emptyDir mounts, the grace period and the readiness gates; and the namespace of the AWS
variant (k8s/aws/00-namespace.yaml), whose label makes the AWS Load Balancer Controller
inject a readiness gate into every new pod. A manifest that lacks the basics is a
ManifestError whose text names the file and the field (the CLI prints it and exits 2).

The stop signal: the container runtime stops a container with its image's STOPSIGNAL
(SIGTERM when the image declares none), unless the container sets lifecycle.stopSignal.
The official nginx images and the unprivileged ones built on them declare
`STOPSIGNAL SIGQUIT` (nginx's graceful stop): see IMAGE_STOP_SIGNALS.
"""

from __future__ import annotations

import math
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from workshop.errors import BadInput


class ManifestError(BadInput, ValueError):
    """The Deployment cannot be rehearsed; the text names the file and the field."""


# Kubernetes defaults (apps/v1 Deployment, core/v1 Probe and Pod).
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_GRACE_SECONDS = 30

# The STOPSIGNAL of the images this lab runs, as their Dockerfiles declare it:
# nginxinc/docker-nginx and nginx/docker-nginx-unprivileged, stable/alpine-slim/Dockerfile
# (`STOPSIGNAL SIGQUIT`; stable/alpine is built FROM that -slim image). The cms image
# (the repository's Dockerfile, FROM python:3.11-slim) declares none: SIGTERM.
IMAGE_STOP_SIGNALS = {
    "nginx": signal.SIGQUIT,
    "nginx-unprivileged": signal.SIGQUIT,
}
RUNTIME_DEFAULT_STOP_SIGNAL = signal.SIGTERM

# The namespace label of the AWS Load Balancer Controller's pod readiness gate, and the
# condition type of the gate it injects (one per TargetGroupBinding whose Service selects
# the pod; the binding's name is generated for an Ingress).
GATE_INJECT_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
ALB_GATE_PREFIX = "target-health.elbv2.k8s.aws/"
AWS_NAMESPACE = "k8s/aws/00-namespace.yaml"  # relative to the lab's files


def image_stop_signal(image: str) -> signal.Signals:
    """The STOPSIGNAL the image declares (as far as this lab knows its images), else SIGTERM."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return IMAGE_STOP_SIGNALS.get(name, RUNTIME_DEFAULT_STOP_SIGNAL)


@dataclass(frozen=True)
class Probe:
    kind: str  # "httpGet" or "tcpSocket"
    port: int
    path: str = "/"
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class PreStop:
    command: tuple[str, ...] = ()  # exec
    sleep: float = 0  # lifecycle.preStop.sleep.seconds

    @property
    def seconds(self) -> float:
        """How long the hook waits: its native sleep, or the `sleep N` in its command."""
        if self.sleep:
            return self.sleep
        return sum(float(n) for n in re.findall(r"\bsleep\s+(\d+(?:\.\d+)?)", " ".join(self.command)))


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    ports: dict[str, int]  # port name (or the number as text) -> containerPort
    mounts: dict[str, str]  # mountPath -> volume name (emptyDir volumes only)
    readiness: Probe | None = None
    pre_stop: PreStop | None = None
    stop_signal: signal.Signals = RUNTIME_DEFAULT_STOP_SIGNAL
    stop_signal_from: str = "the runtime's default"  # lifecycle.stopSignal, or the image's STOPSIGNAL

    @property
    def role(self) -> str:
        """ "nginx" for the sidecar (its image is nginx), "uwsgi" for the cms container."""
        base = self.image.rsplit("/", 1)[-1]
        return "nginx" if base.startswith("nginx") else "uwsgi"


@dataclass(frozen=True)
class Deployment:
    path: Path
    name: str
    replicas: int
    max_surge: int | str
    max_unavailable: int | str
    grace_seconds: float
    containers: tuple[Container, ...]
    readiness_gates: tuple[str, ...] = ()
    min_ready_seconds: float = 0
    declared: dict = field(default_factory=dict)  # which optional fields the file set

    def container(self, role: str) -> Container:
        for container in self.containers:
            if container.role == role:
                return container
        raise ManifestError(f"{self.path}: spec.template.spec.containers has no {role} container")

    def surge_and_unavailable(self, replicas: int | None = None) -> tuple[int, int]:
        return surge_and_unavailable(replicas or self.replicas, self.max_surge, self.max_unavailable)

    @property
    def ports(self) -> list[int]:
        return sorted({port for c in self.containers for port in c.ports.values()})


def resolve_int_or_percent(value: int | str, replicas: int, round_up: bool, where: str) -> int:
    if isinstance(value, bool):
        raise ManifestError(f"{where} must be an integer or a percentage, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ManifestError(f"{where} must not be negative: {value}")
        return value
    match = re.fullmatch(r"\s*(\d+)%\s*", str(value))
    if not match:
        raise ManifestError(f"{where} must be an integer or a percentage like '25%', not {value!r}")
    exact = int(match.group(1)) * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def surge_and_unavailable(replicas: int, max_surge: int | str, max_unavailable: int | str) -> tuple[int, int]:
    """What the Deployment controller does: maxSurge rounds up, maxUnavailable rounds
    down; both zero is rejected by the API server (the rollout could never move)."""
    surge = resolve_int_or_percent(max_surge, replicas, True, "spec.strategy.rollingUpdate.maxSurge")
    unavailable = resolve_int_or_percent(max_unavailable, replicas, False, "spec.strategy.rollingUpdate.maxUnavailable")
    if surge == 0 and unavailable == 0:
        raise ManifestError(
            f"maxSurge ({max_surge!r}) and maxUnavailable ({max_unavailable!r}) are both 0 for {replicas} "
            "replicas: the rollout could never start a new pod nor stop an old one"
        )
    return surge, unavailable


def _get(data: object, key: str, where: str, kind: type | tuple[type, ...], path: Path, required: bool = True):
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: {where.rsplit('.', 1)[0]} must be a mapping")
    if key not in data or data[key] is None:
        if required:
            raise ManifestError(f"{path}: {where} is missing")
        return None
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{path}: {where} must be a {names}, not {value!r}")
    return value


def _port(value: object, ports: dict[str, int], where: str, path: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ports:
        return ports[value]
    raise ManifestError(f"{path}: {where} is {value!r}: neither a number nor one of this container's ports {ports}")


def _probe(raw: object, ports: dict[str, int], where: str, path: Path) -> Probe | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: {where} must be a mapping")
    numbers = {}
    for key, default in (
        ("initialDelaySeconds", 0),
        ("periodSeconds", 10),
        ("timeoutSeconds", 1),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        value = _get(raw, key, f"{where}.{key}", (int, float), path, required=False)
        if value is not None and value < (0 if key == "initialDelaySeconds" else 1):
            raise ManifestError(f"{path}: {where}.{key} is {value}: too small")
        numbers[key] = default if value is None else value
    common = dict(
        initial_delay=numbers["initialDelaySeconds"],
        period=numbers["periodSeconds"],
        timeout=numbers["timeoutSeconds"],
        success_threshold=int(numbers["successThreshold"]),
        failure_threshold=int(numbers["failureThreshold"]),
    )
    if "httpGet" in raw:
        http = _get(raw, "httpGet", f"{where}.httpGet", dict, path)
        port = _port(http.get("port"), ports, f"{where}.httpGet.port", path)
        probe_path = _get(http, "path", f"{where}.httpGet.path", str, path, required=False) or "/"
        return Probe("httpGet", port, probe_path, **common)
    if "tcpSocket" in raw:
        tcp = _get(raw, "tcpSocket", f"{where}.tcpSocket", dict, path)
        return Probe("tcpSocket", _port(tcp.get("port"), ports, f"{where}.tcpSocket.port", path), **common)
    raise ManifestError(f"{path}: {where} needs httpGet or tcpSocket (the rehearsal runs no exec probes)")


def _pre_stop(raw: object, where: str, path: Path) -> PreStop | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: {where} must be a mapping")
    if "exec" in raw:
        command = _get(_get(raw, "exec", f"{where}.exec", dict, path), "command", f"{where}.exec.command", list, path)
        if not command or not all(isinstance(part, str) for part in command):
            raise ManifestError(f"{path}: {where}.exec.command must be a non-empty list of strings")
        return PreStop(command=tuple(command))
    if "sleep" in raw:
        seconds = _get(_get(raw, "sleep", f"{where}.sleep", dict, path), "seconds", f"{where}.sleep.seconds", int, path)
        return PreStop(sleep=float(seconds))
    raise ManifestError(f"{path}: {where} needs exec.command or sleep.seconds")


def _stop_signal(lifecycle: dict, image: str, where: str, path: Path) -> tuple[signal.Signals, str]:
    raw = _get(lifecycle, "stopSignal", f"{where}.lifecycle.stopSignal", str, path, required=False)
    if raw is None:
        chosen = image_stop_signal(image)
        source = (
            f"the image's STOPSIGNAL {chosen.name}"
            if chosen != RUNTIME_DEFAULT_STOP_SIGNAL
            else "the image declares no STOPSIGNAL"
        )
        return chosen, source
    try:
        return signal.Signals[raw if raw.startswith("SIG") else f"SIG{raw}"], "lifecycle.stopSignal"
    except KeyError:
        raise ManifestError(
            f"{path}: {where}.lifecycle.stopSignal is {raw!r}: not a signal name like SIGTERM"
        ) from None


def gate_injection(files_dir: Path) -> bool:
    """Does the AWS variant's namespace (the lab's k8s/aws/00-namespace.yaml) carry the label
    that makes the AWS Load Balancer Controller inject its readiness gate into new pods?"""
    path = Path(files_dir) / AWS_NAMESPACE
    if not path.is_file():
        return False
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    for doc in documents:
        if doc.get("kind") == "Namespace":
            labels = (doc.get("metadata") or {}).get("labels") or {}
            return str(labels.get(GATE_INJECT_LABEL, "")).lower() == "enabled"
    return False


def load_deployment(path: Path) -> Deployment:
    """Read and check a Deployment manifest; ManifestError names the file and the field."""
    path = Path(path)
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file (the lab's Deployment manifest)") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    deployments = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise ManifestError(f"{path}: expected exactly one document with kind: Deployment, found {len(deployments)}")
    data = deployments[0]
    name = _get(_get(data, "metadata", "metadata", dict, path), "name", "metadata.name", str, path)
    spec = _get(data, "spec", "spec", dict, path)
    replicas = _get(spec, "replicas", "spec.replicas", int, path, required=False)
    replicas = 1 if replicas is None else replicas
    strategy = _get(spec, "strategy", "spec.strategy", dict, path, required=False) or {}
    kind = strategy.get("type", "RollingUpdate")
    if kind != "RollingUpdate":
        raise ManifestError(f"{path}: spec.strategy.type is {kind!r}; the rehearsal rolls out with RollingUpdate")
    rolling = _get(strategy, "rollingUpdate", "spec.strategy.rollingUpdate", dict, path, required=False) or {}
    surge = rolling.get("maxSurge", DEFAULT_MAX_SURGE)
    unavailable = rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE)
    try:
        surge_and_unavailable(max(replicas, 1), surge, unavailable)  # validates both
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    pod = _get(_get(spec, "template", "spec.template", dict, path), "spec", "spec.template.spec", dict, path)
    grace = _get(
        pod, "terminationGracePeriodSeconds", "spec.template.spec.terminationGracePeriodSeconds", int, path, False
    )
    min_ready = _get(spec, "minReadySeconds", "spec.minReadySeconds", int, path, required=False)
    volumes = _get(pod, "volumes", "spec.template.spec.volumes", list, path, required=False) or []
    empty_dirs = {v.get("name") for v in volumes if isinstance(v, dict) and "emptyDir" in v}
    gates = _get(pod, "readinessGates", "spec.template.spec.readinessGates", list, path, required=False) or []
    raw_containers = _get(pod, "containers", "spec.template.spec.containers", list, path)
    if not raw_containers:
        raise ManifestError(f"{path}: spec.template.spec.containers is empty")
    containers = []
    for index, raw in enumerate(raw_containers):
        where = f"spec.template.spec.containers[{index}]"
        cname = _get(raw, "name", f"{where}.name", str, path)
        where = f"spec.template.spec.containers[{index}] ({cname})"
        image = _get(raw, "image", f"{where}.image", str, path)
        ports = {}
        for number, port in enumerate(_get(raw, "ports", f"{where}.ports", list, path, required=False) or []):
            value = _get(port, "containerPort", f"{where}.ports[{number}].containerPort", int, path)
            ports[str(port.get("name") or value)] = value
            ports[str(value)] = value
        mounts = {}
        for number, mount in enumerate(_get(raw, "volumeMounts", f"{where}.volumeMounts", list, path, False) or []):
            mount_path = _get(mount, "mountPath", f"{where}.volumeMounts[{number}].mountPath", str, path)
            volume = _get(mount, "name", f"{where}.volumeMounts[{number}].name", str, path)
            if volume in empty_dirs:
                mounts[mount_path.rstrip("/")] = volume
        lifecycle = _get(raw, "lifecycle", f"{where}.lifecycle", dict, path, required=False) or {}
        stop_signal, stop_signal_from = _stop_signal(lifecycle, image, where, path)
        containers.append(
            Container(
                name=cname,
                image=image,
                ports=ports,
                mounts=mounts,
                readiness=_probe(raw.get("readinessProbe"), ports, f"{where}.readinessProbe", path),
                pre_stop=_pre_stop(lifecycle.get("preStop"), f"{where}.lifecycle.preStop", path),
                stop_signal=stop_signal,
                stop_signal_from=stop_signal_from,
            )
        )
    roles = [c.role for c in containers]
    if roles.count("uwsgi") != 1 or roles.count("nginx") > 1:
        raise ManifestError(
            f"{path}: spec.template.spec.containers must hold one cms (uWSGI) container and at most one "
            f"nginx sidecar (an image named nginx...); found images {[c.image for c in containers]}"
        )
    deployment = Deployment(
        path=path,
        name=name,
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
        grace_seconds=DEFAULT_GRACE_SECONDS if grace is None else grace,
        containers=tuple(containers),
        readiness_gates=tuple(str(g.get("conditionType")) for g in gates if isinstance(g, dict)),
        min_ready_seconds=min_ready or 0,
        declared={
            "maxSurge": "maxSurge" in rolling,
            "maxUnavailable": "maxUnavailable" in rolling,
            "terminationGracePeriodSeconds": grace is not None,
        },
    )
    return deployment
