"""The rehearsal's load balancers: what stands between the users and the pods.

Both follow the pods' readiness after a registration and a deregistration lag (the time
kube-proxy, the AWS Load Balancer Controller and the ALB take to notice); the rehearsal's
controller thread calls `set_endpoints` when a lag has passed.

- `HttpLoadBalancer` (the L7 kinds, "l7" and "alb"): nginx, a new upstream connection per
  request, no retry of another target (`proxy_next_upstream off`), strict round-robin, like
  an ALB. It names the pod in `X-Pod`; with no registered target it answers 503 itself
  (`X-No-Target`), as an ALB with no healthy target does. Its upstreams change by
  rewriting its conf and reloading it (SIGHUP): connections in flight are not dropped, and
  `set_endpoints` returns once only workers started with the new conf take connections
  (until then, the old ones still answer "no registered target").
- `TcpLoadBalancer` (the kind "l4"): a Service as kube-proxy makes it, connection by
  connection. A new connection goes to a registered pod (round-robin); an established
  one stays with its pod until either side closes it, whatever happens to the endpoints
  (conntrack keeps it), so a keep-alive client stays pinned to its pod through that
  pod's shutdown. It records which pod each client connection went to.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

from workshop import nginx
from workshop.errors import BadInput
from workshop.ports import free_port, retry_port_clash
from workshop.processes import ManagedProcess, ProcessSpec, ServiceFailed
from workshop.rollout.manifest import ALB_GATE_PREFIX
from workshop.waiting import wait_until

# The TargetGroupBinding the AWS Load Balancer Controller would make for the Ingress of
# k8s/aws (its name is generated), and so the condition type of the gate it injects.
ALB_TARGET_GROUP_BINDING = "k8s-workshop-cms-5e0d1a5b2c"
ALB_GATE = ALB_GATE_PREFIX + ALB_TARGET_GROUP_BINDING


@dataclass(frozen=True)
class Lags:
    registration: float = 1.0  # the pod's containers Ready -> the load balancer sends it traffic
    deregistration: float = 3.0  # termination (or un-Ready) -> the load balancer stops sending


# kube-proxy and a proxy in front of it take a second or so; an ALB registers a target,
# then health-checks it until it is healthy: tens of seconds on AWS (this repository's
# Ingress checks every 5 s and wants 2 in a row), scaled down here so a check costs seconds.
DEFAULT_LAGS = {"l4": Lags(1.0, 3.0), "alb": Lags(8.0, 3.0), "l7": Lags(1.0, 3.0)}


def lags_from_environment(name: str, default: Lags) -> Lags:
    """The lags `name` sets, "REGISTRATION,DEREGISTRATION" in seconds (WORKSHOP_ALB_LAGS=30,3:
    an ALB's registration as long as on AWS), else `default`."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        registration, deregistration = (float(part) for part in value.split(","))
    except ValueError:
        registration = deregistration = -1.0
    if not (0 <= registration <= 120 and 0 <= deregistration <= 120):
        raise BadInput(f"{name}={value!r}: expected registration,deregistration in seconds (0-120), e.g. 30,3")
    return Lags(registration, deregistration)


LB_KINDS = ("l4", "alb", "l7")  # the first is the default: what kind runs
# The title nginx gives a worker that takes connections; after a reload, the old workers are
# "nginx: worker process is shutting down" (listening sockets closed) until their last request.
NGINX_WORKER_TITLE = "nginx: worker process"


class HttpLoadBalancer:
    """nginx standing in for the Service and the cloud load balancer in front of it."""

    def __init__(self, run_dir: Path, logs_dir: Path, start_process):
        self.port = free_port()
        self.dir = run_dir / "service-lb"
        self.logs_dir = logs_dir
        self.start_process = start_process
        self.endpoints: dict[str, int] = {}  # pod name -> port
        self.known: dict[int, str] = {}  # port -> pod name (for X-Pod), every pod ever registered
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.dir / "nginx.conf"

    def conf(self) -> str:
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=0;" for port in self.endpoints.values())
        pods = "\n".join(f"        127.0.0.1:{port} {name};" for port, name in self.known.items())
        if servers:
            upstream = f"""    upstream pods {{
{servers}
        keepalive 0;  # uWSGI closes each connection: reusing one gives spurious 502s
    }}
"""
            route = """            proxy_pass http://pods;
            proxy_next_upstream off;  # an ALB does not retry another target
            proxy_read_timeout 60s;
            proxy_set_header Host $http_host;
            add_header X-Pod $pod always;"""
        else:  # no registered target: the load balancer answers itself, like an ALB
            upstream = ""
            route = """            add_header X-No-Target 1 always;
            return 503 "no registered target\\n";"""
        body = f"""    map $upstream_addr $pod {{
        default "";
{pods}
    }}
{upstream}    server {{
        listen 127.0.0.1:{self.port};
        keepalive_requests 100000;
        location = /_lb/health {{ return 200 "ok\\n"; }}
        location / {{
{route}
        }}
    }}
"""
        return nginx.main_conf(
            self.dir, self.logs_dir, "service-lb", body, connections=4096, access_log_options="buffer=16k flush=1s"
        )

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        retry_port_clash(self._start)

    def _start(self, attempt: int) -> None:
        if attempt:
            self.port = free_port()
        self.conf_path.write_text(self.conf())
        self.process = self.start_process(
            ProcessSpec(
                name="service-lb",
                command=nginx.command(self.dir, self.conf_path),
                log_path=self.logs_dir / "service-lb.log",
                ready_url=f"{self.url}/_lb/health",
                timeout=30,
            )
        )

    def set_endpoints(self, endpoints: dict[str, int]) -> None:
        self.endpoints = dict(endpoints)
        self.known.update({port: name for name, port in endpoints.items()})
        if self.process and self.process.running():
            before = self._workers_taking_connections()
            self.conf_path.write_text(self.conf())
            self.process.send_signal(signal.SIGHUP)  # nginx -s reload
            # The reload takes about 0.1 s: a target counts as registered once it is served.
            wait_until(  # (a load balancer stopped meanwhile, on Ctrl-C, routes nothing: no wait)
                lambda: (
                    not self.process.running() or ((now := self._workers_taking_connections()) and not now & before)
                ),
                "the load balancer's reload",
                timeout=10,
                interval=0.01,
                logs=[self.logs_dir / "service-lb.log"],
                error=ServiceFailed,
            )

    def _workers_taking_connections(self) -> set[int]:
        pids = set()
        try:
            workers = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:  # stopped
            return pids
        for worker in workers:
            try:
                if " ".join(worker.cmdline()).strip() == NGINX_WORKER_TITLE:
                    pids.add(worker.pid)
            except psutil.Error:  # exiting
                continue
        return pids

    def pod_of(self, client_port: int) -> tuple[str | None, bool] | None:
        return None  # the pod is in the response's X-Pod header

    def stop(self) -> None:
        pass  # a process of the rehearsal's Supervisor: stopped with the others


class TcpLoadBalancer:
    """A connection-level Service (kube-proxy), in a thread of this process."""

    def __init__(self, logs_dir: Path):
        self.port = free_port()
        self.logs_dir = logs_dir
        self.endpoints: list[tuple[str, int]] = []
        self.connections: dict[int, tuple[str | None, bool]] = {}  # client port -> (pod, no target)
        self.open_connections: dict[str, int] = {}  # pod -> client connections open now
        self.lock = threading.Lock()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="l4-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        retry_port_clash(self._listen_on)

    def _listen_on(self, attempt: int) -> None:
        if attempt:
            self.port = free_port()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)

    def set_endpoints(self, endpoints: dict[str, int]) -> None:
        with self.lock:
            self.endpoints = list(endpoints.items())

    def pod_of(self, client_port: int) -> tuple[str | None, bool] | None:
        with self.lock:
            return self.connections.get(client_port)

    def _choose(self) -> tuple[str, int] | None:
        with self.lock:
            if not self.endpoints:
                return None
            self._next = (self._next + 1) % len(self.endpoints)
            return self.endpoints[self._next]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._proxy(reader, writer)
        except asyncio.CancelledError:  # the Service stops: drop the connection, quietly
            writer.transport.abort()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_port = writer.get_extra_info("peername")[1]
        chosen = self._choose()
        with self.lock:
            self.connections[client_port] = (chosen[0] if chosen else None, chosen is None)
        if chosen is None:  # a Service without endpoints: the connection is refused
            writer.transport.abort()
            return
        pod, port = chosen
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # the pod's socket is closed: the client gets a reset
            writer.transport.abort()
            return
        with self.lock:
            self.open_connections[pod] = self.open_connections.get(pod, 0) + 1
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            with self.lock:
                self.open_connections[pod] -= 1
            for side in (writer, up_writer):
                side.transport.abort() if side.transport.is_closing() else side.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()  # a FIN goes through as a FIN: the other side may still answer
        except (ConnectionError, OSError):
            sink.transport.abort()  # a reset goes through as a reset

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
