"""What a running cluster says of itself. The running description (workshop.runs) is
what `workshop top` reads from another terminal: its common part (the run, the lab, the
owning process, Redis, the logs) is built here for every publisher, the cluster adding
its nodes and Procfile processes, a rollout rehearsal its pods and load balancer. The
cluster rewrites it whenever a node or a process changes. The CLI's rows (name, address,
log) come from here too.
"""

from __future__ import annotations

import os

from workshop import runs


class DescriptionMixin:
    """The Cluster's running description and its rows for the CLI."""

    def running_description(self, url: str | None, nginx_conf: str | None, **own) -> runs.RunningCluster:
        """The description of this run, with `url` and `nginx_conf` for its way in and
        `own`, the publisher's own fields (nodes and processes, or pods and load balancer)."""
        return runs.RunningCluster(
            run=self.run_dir.name,
            lab=self.lab.code,
            title=self.lab.title,
            owner=runs.ProcessRef.of(os.getpid()),
            url=url,
            nginx_conf=nginx_conf,
            redis_url=self.redis.url,
            logs_dir=str(self.logs_dir),
            **own,
        )

    def publish(self) -> None:
        """Write (or rewrite, after a node or process changed) the description of this running cluster."""
        if not self.started:
            return
        runs.write_description(
            self.running_description(
                url=self.url if self.lb else None,
                nginx_conf=str(self.run_dir / "lb" / "nginx.conf") if self.lb else None,
                nodes=[
                    runs.NodeRef(
                        node.name, node.url, node.process.pid if node.process else None, f"127.0.0.1:{node.stats_port}"
                    )
                    for node in self.nodes
                ],
                processes=[
                    runs.ProcfileRef(instance, process.pid, process.spec.command)
                    for instance, process in self.procfile_runs.items()
                ],
            )
        )

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, address, log) rows for the CLI."""
        rows = [("load balancer", self.url, str(self.logs_dir / "lb.log"))]
        rows += [(node.name, node.url, str(self.logs_dir / f"{node.name}.log")) for node in self.nodes]
        rows.append(("redis", self.redis.url, "embedded" if self.redis.embedded else "external"))
        rows.append(("database", self.database.url, self.database.kind))
        rows.append(("crm", self.crm.url, str(self.logs_dir / "crm.log")))
        rows += [(name, "-", str(self.logs_dir / f"{name}.log")) for name in self.procfile_runs]
        return rows
