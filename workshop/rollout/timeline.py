"""What a rehearsal recorded: every request (start, end, status or error, the pod that
served it) and every pod lifecycle event, on one clock (seconds since the run began).

Each failed request is put in the one class of failure that explains it:
  in-flight-at-shutdown  it was being served when its pod's uWSGI got SIGTERM or `q`
  after-termination      it reached a pod whose termination had already begun
  not-serving-yet        it reached a new pod before that pod's uWSGI served anything
  other                  none of those
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

FAILURE_CLASSES = ("in-flight-at-shutdown", "after-termination", "not-serving-yet", "other")


@dataclass
class Request:
    start: float
    end: float
    path: str
    connection: str  # "keep-alive" or "fresh"
    status: int | None = None
    error: str | None = None
    pod: str | None = None  # the pod the load balancer routed it to (X-Upstream)
    served_by: str | None = None  # X-Served-By: pod/worker pid
    failure: str | None = None  # one of FAILURE_CLASSES, for a failed request
    retried: bool = False  # a keep-alive connection the LB closed on reload, retried once

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 500 and self.error is None

    @property
    def slow(self) -> bool:
        return self.path.startswith("/healthz/slow")


@dataclass
class Event:
    t: float
    pod: str
    event: str  # created, container-started, serving, ready, registered, terminating, prestop-start, ...
    detail: str = ""


@dataclass
class Timeline:
    requests: list[Request] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rollouts: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each rollout
    settings: dict = field(default_factory=dict)

    # -- per pod ------------------------------------------------------------------
    def first(self, pod: str, event: str) -> float | None:
        times = [e.t for e in self.events if e.pod == pod and e.event == event]
        return min(times) if times else None

    def shutdown_at(self, pod: str) -> float | None:
        """When the pod's uWSGI was told to stop: SIGTERM or a `q` written by its preStop."""
        times = [
            e.t
            for e in self.events
            if e.pod == pod
            and (e.event == "sigterm" and e.detail == "uwsgi" or e.event == "prestop-end" and e.detail == "uwsgi")
        ]
        return min(times) if times else None

    def classify(self) -> None:
        for request in self.requests:
            request.failure = None if request.ok else self._failure_class(request)

    def _failure_class(self, request: Request) -> str:
        if request.pod is None:
            return "other"
        shutdown = self.shutdown_at(request.pod)
        if shutdown is not None and request.start < shutdown < request.end:
            return "in-flight-at-shutdown"
        terminating = self.first(request.pod, "terminating")
        if terminating is not None and request.start >= terminating:
            return "after-termination"
        serving = self.first(request.pod, "serving")
        if serving is None or request.start < serving:
            return "not-serving-yet"
        return "other"

    def in_flight_slow(self) -> list[Request]:
        """Slow requests being served by a pod when its uWSGI was told to stop."""
        found = []
        for request in self.requests:
            shutdown = self.shutdown_at(request.pod) if request.pod else None
            if request.slow and shutdown is not None and request.start < shutdown < request.end:
                found.append(request)
        return found

    # -- the summary ------------------------------------------------------------------
    def window(self, index: int | None = None) -> list[Request]:
        """Requests started during one rollout (or during any of them)."""
        spans = self.rollouts if index is None else [self.rollouts[index]]
        return [r for r in self.requests if any(a <= r.start <= b for a, b in spans)]

    def summary(self) -> dict:
        self.classify()
        durations = sorted(r.end - r.start for r in self.requests)
        failures = {name: 0 for name in FAILURE_CLASSES}
        for request in self.requests:
            if request.failure:
                failures[request.failure] += 1
        rollouts = []
        for index, (start, end) in enumerate(self.rollouts):
            inside = self.window(index)
            seconds = end - start
            rollouts.append(
                {
                    "seconds": round(seconds, 2),
                    "requests": len(inside),
                    "rate": round(len(inside) / seconds, 1) if seconds > 0 else 0.0,
                    "failed": sum(not r.ok for r in inside),
                }
            )
        slow = self.in_flight_slow()
        return {
            "requests": len(self.requests),
            "ok": sum(r.ok for r in self.requests),
            "http_5xx": sum(r.status is not None and r.status >= 500 for r in self.requests),
            "connection_errors": sum(r.error is not None for r in self.requests),
            "retried_on_lb_reload": sum(r.retried for r in self.requests),
            "failed": sum(not r.ok for r in self.requests),
            "failures_by_class": failures,
            "slow_in_flight_at_shutdown": len(slow),
            "slow_in_flight_at_shutdown_ok": sum(r.ok for r in slow),
            "p50_ms": round(1000 * statistics.median(durations), 1) if durations else None,
            "p99_ms": round(1000 * durations[min(len(durations) - 1, int(0.99 * len(durations)))], 1)
            if durations
            else None,
            "rollouts": rollouts,
        }

    def to_json(self) -> dict:
        return {
            "settings": self.settings,
            "summary": self.summary(),
            "rollouts": [{"start": round(a, 4), "end": round(b, 4)} for a, b in self.rollouts],
            "events": [asdict(e) for e in sorted(self.events, key=lambda e: e.t)],
            "requests": [asdict(r) for r in self.requests],
        }

    def write_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def from_json(cls, data: dict) -> "Timeline":
        return cls(
            requests=[Request(**r) for r in data["requests"]],
            events=[Event(**e) for e in data["events"]],
            rollouts=[(r["start"], r["end"]) for r in data["rollouts"]],
            settings=data.get("settings", {}),
        )
