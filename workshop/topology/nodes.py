"""The cluster's cms nodes and the load balancer in front of them. A node is a uWSGI
master run from the Procfile's web line, on a port and a disk of its own, with a stats
server for `workshop top`; it can be stopped, started again (on fresh ports if its own
were taken meanwhile) or replaced with a wiped disk. The load balancer is nginx in
strict round-robin with no retries, as a cloud load balancer sees the nodes; it learns a
node's new address by reloading its configuration without dropping connections.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from workshop import nginx
from workshop.paths import PYTHON
from workshop.ports import free_port, retry_port_clash
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.procfile import resolve_command
from workshop.top.sources import read_uwsgi_stats
from workshop.waiting import wait_until


@dataclass
class Node:
    """One cms node: a uWSGI master with several workers and a local disk of its own."""

    name: str
    port: int
    disk: Path
    stats_port: int = 0  # uWSGI's stats server (JSON per worker: requests, pid, status), read by `workshop top`
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class NodesMixin:
    """The Cluster's nodes and load balancer (its `nodes`, `lb`, `lb_port`, `supervisor`)."""

    # -- nodes -----------------------------------------------------------------
    def start_node(self, node: Node) -> Node:
        """Start a node's uWSGI; if its ports were taken meanwhile, on fresh ones (and the
        load balancer, if it runs, learns the node's new address)."""
        old_port = node.port

        def attempt(number: int) -> Node:
            if number:
                node.port, node.stats_port = free_port(), free_port()
            return self._start_node(node)

        retry_port_clash(attempt)
        if node.port != old_port and self.lb:
            self.reload_load_balancer()
        return node

    def _start_node(self, node: Node) -> Node:
        node.disk.mkdir(parents=True, exist_ok=True)
        command = [
            *resolve_command(self.procfile()["web"]),
            "--http-socket",
            f"127.0.0.1:{node.port}",
            # pyuwsgi in a virtualenv cannot re-exec itself without this (uwsgi issue 2478)
            "--binary-path",
            str(PYTHON),
            "--stats",
            f"127.0.0.1:{node.stats_port}",
        ]
        node.process = self.supervisor.start(
            ProcessSpec(
                name=node.name,
                command=command,
                env=self.machine_env(node.name, node.disk),
                cwd=node.disk,  # a vendor SDK's "current directory" is the node's own disk
                log_path=self.logs_dir / f"{node.name}.log",
                ready_url=f"{node.url}/healthz/ready",
                # SIGTERM is a brutal *reload* in uWSGI 2.0; SIGINT stops it.
                stop_signal=signal.SIGINT,
            )
        )
        self._wait_for_stats_server(node)
        self.publish()
        return node

    def _wait_for_stats_server(self, node: Node) -> None:
        """uWSGI's master binds its stats server after it has forked the workers, and exits
        if that port is taken; on a busy machine a worker can answer the readiness URL first.
        A node is ready once its own master answers there (another program listening on the
        port sends no stats); if it exited instead, its log says why (a port clash: retried)."""

        def answered() -> bool:
            stats = read_uwsgi_stats(f"127.0.0.1:{node.stats_port}")
            return stats is not None and stats.get("pid") == node.process.pid

        try:
            wait_until(
                answered,
                f"{node.name}'s uWSGI stats server",
                timeout=10,
                interval=0.05,
                give_up=lambda: not node.process.running(),
                logs=[node.process.spec.log_path],
                error=ServiceFailed,
            )
        except ServiceFailed:
            node.process.kill()  # reaped, its log closed
            raise

    @property
    def workers_per_node(self) -> int:
        """uWSGI worker processes per node, as the Procfile's web line asks (--processes N)."""
        web = self.procfile()["web"]
        for flag in ("--processes", "-p", "--workers"):
            if flag in web:
                return int(web[web.index(flag) + 1])
        return 1

    def stop_node(self, node: Node) -> None:
        if node.process:
            self.supervisor.stop(node.process)
            node.process = None
            self.publish()

    def restart_node(self, node: Node, wipe_disk: bool = False) -> Node:
        """Stop a node and start it again; `wipe_disk` is a replaced machine or pod."""
        self.stop_node(node)
        if wipe_disk:
            shutil.rmtree(node.disk, ignore_errors=True)
        return self.start_node(node)

    # -- load balancer -----------------------------------------------------------
    def load_balancer_conf(self) -> str:
        lb_dir = self.run_dir / "lb"
        servers = "\n".join(
            # max_fails=0: strict round-robin, a dead node is not skipped (a cloud LB's view)
            f"        server 127.0.0.1:{node.port} max_fails=0;"
            for node in self.nodes
        )
        return nginx.main_conf(
            lb_dir,
            self.logs_dir,
            "lb",
            f"""    upstream cms {{
{servers}
        # nginx >= 1.29.7 keeps upstream connections alive by default; uWSGI's
        # http-socket closes each one after its response, so a reused connection is
        # reset and (with retries off) the user gets a 502. One connection per request.
        keepalive 0;
    }}
    server {{
        listen 127.0.0.1:{self.lb_port};
        location = /_lb/health {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://cms;
            # An AWS ALB does not retry another target: neither does this one.
            proxy_next_upstream off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
""",
        )

    def start_load_balancer(self) -> None:
        def attempt(number: int) -> None:
            if number:
                self.lb_port = free_port()
            self._start_load_balancer()

        retry_port_clash(attempt)

    def reload_load_balancer(self) -> None:
        """New upstreams without dropping connections: nginx re-reads its file on SIGHUP."""
        import psutil

        (self.run_dir / "lb" / "nginx.conf").write_text(self.load_balancer_conf())
        old_workers = psutil.Process(self.lb.pid).children()
        self.lb.send_signal(signal.SIGHUP)
        # the reload is done when the old workers, with the old upstreams, have exited
        psutil.wait_procs(old_workers, timeout=10)

    def _start_load_balancer(self) -> None:
        lb_dir = self.run_dir / "lb"
        lb_dir.mkdir(parents=True, exist_ok=True)
        conf = lb_dir / "nginx.conf"
        conf.write_text(self.load_balancer_conf())
        self.lb = self.supervisor.start(
            ProcessSpec(
                name="load-balancer",
                command=nginx.command(lb_dir, conf),
                log_path=self.logs_dir / "lb.log",
                ready_url=f"{self.url}/_lb/health",
                timeout=30,
            )
        )
