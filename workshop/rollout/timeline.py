"""What a rehearsal recorded: every request (when it was due, when it was sent, when it
ended, its status or error, the pod that served it) and every pod lifecycle event, on one
clock (seconds since the run began).

Load numbers are honest about queueing: the load is open-loop, each request has a time it
was *due* on the schedule, and a request that waited for a free sender (all of them busy
with slow requests) is late, not faster. Latencies run from the due time to the end, and a
rollout's requests and rate are the requests due during it (no coordinated omission).

Each failed request is put in the one class of failure that explains it:
  in-flight-at-shutdown  it was being served when its pod began to stop (uWSGI's stop signal
                         or `q`, or the sidecar's stop signal)
  after-termination      it reached a pod whose termination had already begun
  not-serving-yet        it reached a new pod before that pod's app served anything
  no-target              the load balancer had no registered target to send it to
  other                  none of those
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

LATE_SECONDS = 0.1  # sent this long after it was due: every sender was busy (the load generator saturated)
FAILURE_CLASSES = ("in-flight-at-shutdown", "after-termination", "not-serving-yet", "no-target", "other")


@dataclass
class Request:
    start: float  # when it was sent (the failure classes compare this with pod events)
    end: float
    path: str
    connection: str  # "keep-alive" or "fresh"
    status: int | None = None
    error: str | None = None
    pod: str | None = None  # the pod the load balancer routed it to
    served_by: str | None = None  # X-Served-By: pod/worker pid
    failure: str | None = None  # one of FAILURE_CLASSES, for a failed request
    retried: bool = False  # a keep-alive connection the server closed as it went out, retried once
    due: float | None = None  # when the open-loop schedule wanted it sent (None: recorded before due times)
    no_target: bool = False  # the load balancer answered itself: it had no registered target

    @property
    def due_at(self) -> float:
        return self.start if self.due is None else self.due

    @property
    def latency(self) -> float:
        """From when it was due to its end: the wait for a free sender counts."""
        return self.end - self.due_at

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


@dataclass(frozen=True)
class LoadFloor:
    """The least load a rolling update must carry for its run to prove anything. On a busy
    machine the load generator can fall behind its schedule: a run below the floor in which
    no request failed says nothing either way."""

    requests: int
    rate: float = 0.0  # requests per second over the rolling update

    def met(self, rollout: dict) -> bool:
        """`rollout`: one of Timeline.summary()'s "rollouts"."""
        return rollout["requests"] >= self.requests and rollout["rate"] >= self.rate

    def __str__(self) -> str:
        return f"{self.requests} requests" + (f" at {self.rate:g} /s" if self.rate else "")


@dataclass
class Timeline:
    requests: list[Request] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rollouts: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each rollout
    settings: dict = field(default_factory=dict)
    floor: LoadFloor | None = None  # the load its first rolling update must carry (Rehearsal.run_conclusive)
    attempts: int = 1  # the runs it took to carry it

    def floor_met(self) -> bool:
        return self.floor is None or self.floor.met(self.summary()["rollouts"][0])

    # -- per pod ------------------------------------------------------------------
    def first(self, pod: str, event: str) -> float | None:
        times = [e.t for e in self.events if e.pod == pod and e.event == event]
        return min(times) if times else None

    def shutdown_at(self, pod: str) -> float | None:
        """When the pod began to stop taking requests: uWSGI's stop signal or the end of its
        preStop (which writes `q` to the master FIFO), or the sidecar's stop signal (nginx
        closes its listening socket and its idle keep-alive connections), whichever came first."""
        times = [
            e.t
            for e in self.events
            if e.pod == pod
            and (
                e.event in ("stop-signal", "sigterm", "prestop-end")
                and e.detail.split(" ")[0] == "uwsgi"
                or e.event == "stop-signal"
                and e.detail.split(" ")[0] == "nginx"
            )
        ]
        return min(times) if times else None

    def classify(self) -> None:
        for request in self.requests:
            request.failure = None if request.ok else self._failure_class(request)

    def _failure_class(self, request: Request) -> str:
        if request.no_target:
            return "no-target"
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
        """Slow requests being served by a pod when it began to stop (see shutdown_at)."""
        found = []
        for request in self.requests:
            shutdown = self.shutdown_at(request.pod) if request.pod else None
            if request.slow and shutdown is not None and request.start < shutdown < request.end:
                found.append(request)
        return found

    def failure_groups(self) -> list[dict]:
        """The failed requests, grouped by class, pod and what came back, each group with when
        its first and last request were sent: enough to tell a burst on one pod from a few
        requests here and there, and to set them beside the pods' milestones."""
        self.classify()
        groups: dict[tuple, list[Request]] = {}
        for request in self.requests:
            if not request.ok:
                outcome = str(request.status) if request.error is None else request.error.split(":")[0]
                groups.setdefault((request.failure, request.pod, outcome), []).append(request)
        found = [
            {
                "class": failure,
                "pod": pod,
                "outcome": outcome,
                "requests": len(these),
                "first": round(min(r.start for r in these), 2),
                "last": round(max(r.start for r in these), 2),
            }
            for (failure, pod, outcome), these in groups.items()
        ]
        return sorted(found, key=lambda group: group["first"])

    def milestones(self) -> dict[str, dict[str, float]]:
        """Each pod's first time of each lifecycle event a failure is set beside, and when it
        began to stop taking requests (`shutdown`, see shutdown_at)."""
        wanted = ("created", "serving", "ready", "registered", "terminating", "deregistered", "exited")
        pods: dict[str, dict[str, float]] = {}
        for pod in dict.fromkeys(e.pod for e in sorted(self.events, key=lambda e: e.t)):
            times = {event: t for event in wanted if (t := self.first(pod, event)) is not None}
            if (shutdown := self.shutdown_at(pod)) is not None:
                times["shutdown"] = shutdown
            if times:
                pods[pod] = times
        return pods

    # -- the summary ------------------------------------------------------------------
    def window(self, index: int | None = None) -> list[Request]:
        """Requests due during one rollout (or during any of them)."""
        spans = self.rollouts if index is None else [self.rollouts[index]]
        return [r for r in self.requests if any(a <= r.due_at <= b for a, b in spans)]

    def summary(self) -> dict:
        """Two windows, named in the keys: the whole run (the load before, during and after
        the rolling updates: `requests`, `failed`, `http_5xx`, ...) and each rolling update
        (`rollouts`: the requests due between its start and the exit of its last old pod)."""
        self.classify()
        durations = sorted(r.latency for r in self.requests)
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
        due = [r.due_at for r in self.requests]
        return {
            "run_seconds": round(max(r.end for r in self.requests) - min(due), 2) if due else 0.0,
            "late_requests": sum(r.start - r.due_at > LATE_SECONDS for r in self.requests),
            "requests": len(self.requests),
            "ok": sum(r.ok for r in self.requests),
            "http_5xx": sum(r.status is not None and r.status >= 500 for r in self.requests),
            "connection_errors": sum(r.error is not None for r in self.requests),
            "retried_on_closed_keep_alive": sum(r.retried for r in self.requests),
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
