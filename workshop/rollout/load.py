"""Steady open-loop load through a load balancer, every request recorded with the time it
was due: the rehearsal's and the kind path's load, one module that needs neither the
topology nor the services (`workshop kind rollout` imports only this)."""

from __future__ import annotations

import http.client
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from workshop.rollout.timeline import Request, Timeline

if TYPE_CHECKING:
    from workshop.rollout.lb import TcpLoadBalancer

SLOW_SECONDS = 3.0  # the slowest request the load sends (and the lab's "slowest request")


@dataclass(frozen=True)
class LoadShape:
    rate: float = 120.0  # requests per second, open loop (sent on schedule, not on replies)
    slow_every: int = 20  # one request in N is /healthz/slow (5 %)
    slow_seconds: float = SLOW_SECONDS
    fast_path: str = "/login/"
    workers: int = 64  # threads: bounds the requests in flight
    keep_alive_share: int = 2  # one request in N goes on a keep-alive connection (the rest on fresh ones)


class Clock:
    def __init__(self) -> None:
        self.zero = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.zero


class LoadGenerator:
    """Steady open-loop load to `url`: keep-alive and fresh connections, one request in
    `slow_every` slow; every request recorded in `timeline`, timed on `clock`, with the
    time it was due (a request that waited for a free sender is late, not fast).

    The rehearsal's L7 load balancer names the pod in X-Pod; the L4 one (`service`) tells
    which pod each client connection went to; the kind path sends through the cluster's
    port mapping, where only a response from cms names its pod (X-Served-By: pod/pid),
    hence `pod_from_served_by`."""

    def __init__(
        self,
        url: str,
        shape: LoadShape,
        timeline: Timeline,
        clock: Clock,
        pod_from_served_by: bool = False,
        service: TcpLoadBalancer | None = None,
    ):
        self.url = url
        self.shape = shape
        self.timeline = timeline
        self.clock = clock
        self.pod_from_served_by = pod_from_served_by
        self.service = service
        self.queue: queue.Queue = queue.Queue()
        # One for every sender's clients: httpx loads the CA bundle into a new context per
        # client (34 ms of CPU each, 4 s for 64 senders), though the load never uses TLS.
        self.tls = ssl.create_default_context()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._record_lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """The senders first (each builds its clients, on one shared TLS context), then the
        schedule: no request is due before every sender is there to send it."""
        work = self._work_l4 if self.service else self._work
        self._ready = threading.Semaphore(0)
        self.threads = [threading.Thread(target=work, name=f"load-{i}", daemon=True) for i in range(self.shape.workers)]
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 30
        for _ in self.threads:
            self._ready.acquire(timeout=max(0.0, deadline - time.monotonic()))
        scheduler = threading.Thread(target=self._schedule, name="load-scheduler", daemon=True)
        scheduler.start()
        self.threads.append(scheduler)

    def stop(self, settle: float = 0.5) -> None:
        """Stop sending; give the requests in flight `settle` seconds (a fast one ends in
        milliseconds), then close the record. A slow request still running then went to a pod
        that stays (a rolling update ends when its last old pod has exited): it is left out,
        not waited for (up to `slow_seconds` per run), and its sender ends with it."""
        self.stopping.set()
        deadline = time.monotonic() + settle
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._record_lock:
            self._closed = True

    def _record(self, request: Request) -> None:
        with self._record_lock:
            if not self._closed:
                self.timeline.requests.append(request)

    def _schedule(self) -> None:
        start = self.clock.now()
        index = 0
        while not self.stopping.is_set():
            due = start + index / self.shape.rate
            delay = due - self.clock.now()
            if delay > 0:
                time.sleep(delay)
            slow = index % self.shape.slow_every == self.shape.slow_every - 1
            path = f"/healthz/slow?seconds={self.shape.slow_seconds:g}" if slow else self.shape.fast_path
            keep_alive = index % self.shape.keep_alive_share == 0
            self.queue.put((due, path, "keep-alive" if keep_alive else "fresh"))
            index += 1

    def _next(self):
        while not self.stopping.is_set():
            try:
                return self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _work(self) -> None:
        url = self.url
        clock = self.clock
        timeout = httpx.Timeout(self.shape.slow_seconds + 30, connect=5)
        with (
            httpx.Client(timeout=timeout, verify=self.tls) as keep_alive,
            httpx.Client(timeout=timeout, verify=self.tls) as fresh,
        ):
            self._ready.release()
            while (item := self._next()) is not None:
                due, path, connection = item
                client, headers = (fresh, {"Connection": "close"}) if connection == "fresh" else (keep_alive, {})
                request = Request(start=clock.now(), end=0.0, path=path, connection=connection, due=due)
                try:
                    try:
                        response = client.get(url + path, headers=headers)
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        if connection != "keep-alive":
                            raise
                        # The server closed an idle keep-alive connection just as this request
                        # went out on it: a browser retries a GET once, so do we.
                        request.retried = True
                        response = client.get(url + path, headers=headers)
                    request.status = response.status_code
                    request.pod = response.headers.get("X-Pod") or None
                    request.no_target = "X-No-Target" in response.headers
                    request.served_by = response.headers.get("X-Served-By")
                    if self.pod_from_served_by and request.served_by:
                        request.pod = request.served_by.split("/")[0]
                except httpx.HTTPError as exc:
                    request.error = f"{type(exc).__name__}: {exc}"[:200]
                request.end = clock.now()
                self._record(request)

    def _work_l4(self) -> None:
        """Through the connection-level Service: http.client, whose socket tells the client
        port the Service recorded (so a failed request still names its pod)."""
        host, port = self.url.removeprefix("http://").split(":")
        timeout = self.shape.slow_seconds + 30
        kept: http.client.HTTPConnection | None = None  # this sender's keep-alive connection
        self._ready.release()
        while (item := self._next()) is not None:
            due, path, connection = item
            request = Request(start=self.clock.now(), end=0.0, path=path, connection=connection, due=due)
            fresh = connection == "fresh"
            for attempt in (1, 2):
                reused = not fresh and kept is not None
                conn = kept if reused else http.client.HTTPConnection(host, int(port), timeout=timeout)
                client_port = None
                try:
                    if conn.sock is None:
                        conn.connect()
                    client_port = conn.sock.getsockname()[1]
                    conn.request("GET", path, headers={"Connection": "close"} if fresh else {})
                    response = conn.getresponse()
                    response.read()
                    request.status = response.status
                    request.served_by = response.getheader("X-Served-By")
                    self._attribute(request, client_port)
                    if fresh:
                        conn.close()
                    elif response.will_close:  # the server said Connection: close
                        conn.close()
                        kept = None
                    else:
                        kept = conn
                    break
                except (http.client.HTTPException, OSError) as exc:
                    conn.close()
                    if not fresh:
                        kept = None
                    if client_port is not None:
                        self._attribute(request, client_port)
                    if reused and attempt == 1 and isinstance(exc, (http.client.RemoteDisconnected, ConnectionError)):
                        request.retried = True  # the server closed it as the request went out: a browser retries once
                        continue
                    request.error = f"{type(exc).__name__}: {exc}"[:200]
                    break
            request.end = self.clock.now()
            self._record(request)

    def _attribute(self, request: Request, client_port: int) -> None:
        found = self.service.pod_of(client_port) if self.service else None
        if found:
            request.pod, request.no_target = found
        elif request.served_by:
            request.pod = request.served_by.split("/")[0]
