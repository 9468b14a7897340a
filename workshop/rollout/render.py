"""How a pod's files are rendered for a run on this machine (no containers here).

The rule, applied to the uwsgi.ini, the sidecar's nginx.conf and every preStop command:
  paths   each emptyDir volumeMount (e.g. /run/uwsgi, /tmp) becomes a folder of the pod's
          own run directory, <pod dir>/volumes/<volume name>; containers that mount the
          same volume share the folder, as they share an emptyDir. A path is replaced
          only where it starts a path (/tmp/x, not /var/tmp/x).
  ports   each containerPort the pod declares (8000, 8080) becomes a free port of this
          pod on 127.0.0.1, wherever it appears as a port: `8080`, `:8080`,
          `0.0.0.0:8080`, `127.0.0.1:8080`, `localhost:8080` all become
          `127.0.0.1:<its port>` (every container of a pod shares one network namespace,
          so 127.0.0.1:8000 in nginx.conf is uWSGI's socket).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workshop.ports import free_port
from workshop.rollout.manifest import Deployment

HOSTS = r"(?:(?:0\.0\.0\.0|127\.0\.0\.1|localhost|\*|\[::\])?:)?"


@dataclass
class PodLayout:
    """Where one pod's container paths and ports live on this machine."""

    run_dir: Path
    paths: dict[str, Path]  # container mountPath -> folder of the pod's run directory
    ports: dict[int, int]  # containerPort -> port on 127.0.0.1

    @classmethod
    def for_pod(cls, deployment: Deployment, run_dir: Path, ports: dict[int, int] | None = None) -> "PodLayout":
        paths = {
            mount: run_dir / "volumes" / volume
            for container in deployment.containers
            for mount, volume in container.mounts.items()
        }
        return cls(run_dir, paths, ports or {port: free_port() for port in deployment.ports})

    def make_dirs(self) -> None:
        for folder in self.paths.values():
            folder.mkdir(parents=True, exist_ok=True)

    def render(self, text: str) -> str:
        for container_port, host_port in self.ports.items():
            text = re.sub(rf"(?<![\w.:]){HOSTS}{container_port}(?![\w.])", f"127.0.0.1:{host_port}", text)
        if self.paths:
            # one pass (a replaced path is never replaced again), longest mountPath first
            # so that /run/uwsgi wins over a /run mount
            mounts = "|".join(re.escape(m) for m in sorted(self.paths, key=len, reverse=True))
            text = re.sub(rf"(?<![\w./-])({mounts})(?=/|\b|$)", lambda m: str(self.paths[m.group(1)]), text)
        return text

    def host_port(self, container_port: int) -> int:
        return self.ports[container_port]
