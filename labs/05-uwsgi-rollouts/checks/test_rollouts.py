"""Lab 05 checks: the rolling-update rehearsal with real processes. Each pod runs the
lab's uwsgi.ini (uWSGI) and nginx.conf (the sidecar) as k8s/deployment.yaml says; pods
start as real ones do (the app warms up for seconds after its socket is open); the
kubelet runs each container's preStop, then sends the container's stop signal (the
nginx image's SIGQUIT, SIGTERM for cms). The fixtures (conftest.py): one rolling update
of 3 pods through the Service as kube-proxy makes it (registration after 1 s,
deregistration after 3 s), then one of a single pod behind the ALB (registration after 8 s).

The checks count failed requests by the class of failure each step removes; the
timing margins (preStop 5 s against a 3 s lag) are seconds, not milliseconds.
"""

import re

import yaml

from workshop.rollout.lb import ALB_GATE
from workshop.rollout.load import SLOW_SECONDS
from workshop.rollout.manifest import surge_and_unavailable
from workshop.rollout.rules import grace_problems, strategy_problems
from workshop.scenarios.uwsgi_rollouts import SIGNAL_LEAD_SECONDS, SIGTERM_TRIAL_SECONDS, sigterm_in_flight


def documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def taken_out_of(manifest: dict, replicas: int) -> int:
    """Pods the rolling update takes out before their replacement is Ready, at this count."""
    rolling = manifest["spec"].get("strategy", {}).get("rollingUpdate", {})
    return surge_and_unavailable(replicas, rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"))[1]


def failures(timeline, kind, window: int | None = None):
    requests = timeline.window(window) if window is not None else timeline.requests
    return [r for r in requests if r.failure == kind]


def describe(requests, limit=3):
    return "; ".join(
        f"{r.path} to {r.pod or 'no pod'} at {r.start:.2f}-{r.end:.2f} s: {r.status or r.error}"
        for r in requests[:limit]
    )


def pre_stop_seconds(container) -> float | None:
    return container.pre_stop.seconds if container and container.pre_stop else None


def too_little_load(timeline, what: str) -> str:
    rollout = timeline.summary()["rollouts"][0]
    runs = f"the last of {timeline.attempts} runs" if timeline.attempts > 1 else "one run"
    return (
        f"{what} carried {rollout['requests']} requests at {rollout['rate']:g} /s ({runs}, no request failed); "
        f"the check needs at least {timeline.floor} to prove anything (is the machine overloaded?)"
    )


def ini_lines(path) -> list[str]:
    """The settings of a uwsgi.ini, comments left out."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith(("#", ";"))]


def test_sigterm_lets_requests_in_flight_finish(rehearsal, lab_files, failure):
    result = sigterm_in_flight(rehearsal, pod=rehearsal.spare)
    lines = ini_lines(lab_files / "uwsgi.ini")
    hooked = any("gracefully_kill_them_all" in line for line in lines)
    die_on_term = any(re.fullmatch(r"die-on-term\s*(=\s*(true|1|yes))?", line) for line in lines)
    uwsgi = rehearsal.deployment.container("uwsgi")
    writes_q = uwsgi.pre_stop is not None and "fifo" in " ".join(uwsgi.pre_stop.command)
    why = " A 502 is the sidecar finding uWSGI's worker gone."
    if writes_q and not hooked:
        why += (
            " Your preStop wrote q (a graceful stop) and returned at once; the kubelet sends the stop signal "
            f"right after it, so uWSGI got SIGTERM in the middle of its graceful stop "
            f"({'die-on-term: a brutal kill' if die_on_term else 'no hook: its default, a brutal reload'})."
        )
    # die-on-term without a hook: what SIGTERM does; q without a hook: the kubelet's order;
    # a hook that does not work: what hooks can do
    hint = 0 if die_on_term and not hooked else 2 if writes_q and not hooked else 1 if hooked else 0
    assert result.all_ok, failure(
        "graceful-sigterm",
        f"4 requests of {result.seconds:g} s were running when the kubelet stopped the pod's uWSGI container "
        f"({result.sequence}); they ended {result.statuses}.{why}",
        hint=hint,
    )
    assert result.exited, failure(
        "graceful-sigterm",
        f"the requests finished, but uWSGI was still running {result.seconds + 10:g} s after {result.sequence} "
        "(it reloaded instead of stopping: the kubelet would SIGKILL it at the end of the grace period).",
        hint=2 if writes_q else 0,
    )
    # A pass proves something only if the stop signal landed while the requests ran (not a
    # machine too busy to send it before a preStop's graceful stop had finished them).
    last = "never sent: uWSGI had exited" if result.signal_lead is None else f"{result.signal_lead:g} s left"
    assert result.conclusive, (
        f"inconclusive, not a verdict on your files: in each of {len(SIGTERM_TRIAL_SECONDS)} tries the machine "
        f"was too busy to send the stop signal while the requests still ran ({SIGNAL_LEAD_SECONDS:g} s of them "
        f"left needed; the last try, requests of {result.seconds:g} s: {last}). Run the check again."
    )


def test_no_request_is_lost_to_a_terminating_pod(rehearsal, timeline, failure):
    lost = failures(timeline, "after-termination")
    deployment = rehearsal.deployment
    lag = rehearsal.lags.deregistration
    uwsgi, nginx = deployment.container("uwsgi"), next((c for c in deployment.containers if c.role == "nginx"), None)
    uwsgi_wait, nginx_wait = pre_stop_seconds(uwsgi), pre_stop_seconds(nginx)
    state = (
        f"preStop waits: uwsgi {'none' if uwsgi_wait is None else f'{uwsgi_wait:g} s'}, "
        f"nginx {'none' if nginx_wait is None else f'{nginx_wait:g} s'}; the load balancer lets go "
        f"{lag:g} s after termination begins"
    )
    # the state decides the hint: uWSGI stops before the lag is over, else the sidecar does,
    # else the sidecar outlasts uWSGI (keep-alive clients pinned to the pod)
    if uwsgi_wait is None or uwsgi_wait <= lag:
        hint = 0
    elif nginx is not None and (nginx_wait is None or nginx_wait <= lag):
        hint = 2
    elif nginx is not None and nginx_wait >= uwsgi_wait:
        hint = 3
    else:
        hint = 0
    keep_alive = sum(r.connection == "keep-alive" for r in lost)
    assert not lost, failure(
        "prestop",
        f"{len(lost)} requests failed that reached a pod after its termination had begun ({keep_alive} of them "
        f"on keep-alive connections, which stay with their pod through a Service). {state}. "
        f"For example: {describe(lost)}.",
        hint=hint,
    )


def test_no_request_reaches_a_pod_before_the_app_serves(rehearsal, timeline, failure):
    deployment = rehearsal.deployment
    probes = {
        c.name: (
            "none"
            if c.readiness is None
            else f"tcpSocket :{c.readiness.port}"
            if c.readiness.kind == "tcpSocket"
            else f"GET {c.readiness.path} :{c.readiness.port}"
        )
        for c in deployment.containers
    }
    early = failures(timeline, "not-serving-yet")
    uwsgi = deployment.container("uwsgi")
    asks_app = [
        c.name
        for c in deployment.containers
        if c.readiness
        and c.readiness.kind == "httpGet"
        and not c.readiness.path.startswith(("/nginx", "/healthz/live"))
    ]
    # no probe of the app at all: which container could ask it; a probe that proves nothing: why
    hint = 2 if uwsgi.readiness is None and not asks_app else 1 if not asks_app else 0
    assert not early, failure(
        "readiness",
        f"{len(early)} requests failed on a new pod that was Ready, and registered, before its app served "
        f"anything (the app warms up for {rehearsal.app_warmup:g} s after uWSGI opens its socket). "
        f"For example: {describe(early)}. Readiness probes: {probes}.",
        hint=hint,
    )


def test_a_rolling_update_under_load_loses_no_request(request, lab_files, failure):
    # The rules first (workshop.rollout.rules, the ones `workshop kind deploy` enforces): a
    # grace period or a strategy that breaks one is answered in a second, before any rollout.
    manifest = documents(lab_files / "k8s" / "deployment.yaml")[0]
    grace, strategy = grace_problems(manifest, SLOW_SECONDS), strategy_problems(manifest)
    assert not grace, failure(
        "grace-and-strategy",
        f"{'; '.join(grace)}: the kubelet SIGKILLs whatever still runs when the grace period ends, and the "
        "preStop hooks count against it (the default, when it is not set, is 30 s: this lab wants it set).",
        hint=0,
    )
    assert not strategy, failure(
        "grace-and-strategy",
        f"{'; '.join(strategy)}; taken out before a replacement is Ready, per replica count: "
        f"{ {n: out for n in range(1, 11) if (out := taken_out_of(manifest, n))} }.",
        hint=1,
    )
    rehearsal, timeline = request.getfixturevalue("rehearsal"), request.getfixturevalue("timeline")
    deployment = rehearsal.deployment
    summary = timeline.summary()
    longest_pre_stop = max((c.pre_stop.seconds for c in deployment.containers if c.pre_stop), default=0)
    taken_out = {n: deployment.surge_and_unavailable(n)[1] for n in range(1, 11)}
    short_grace = deployment.grace_seconds < longest_pre_stop + SLOW_SECONDS
    # the state decides the hint: a grace period too short, else pods taken out too early
    hint = 0 if short_grace or not any(taken_out.values()) else 1
    rollout = summary["rollouts"][0]
    assert rollout["failed"] == 0, failure(
        "grace-and-strategy",
        f"the rolling update of {rehearsal.replicas} pods: {rollout['failed']} of its {rollout['requests']} requests "
        f"failed; by class over the whole run: { {k: v for k, v in summary['failures_by_class'].items() if v} }. "
        f"terminationGracePeriodSeconds {deployment.grace_seconds:g}, longest preStop {longest_pre_stop:g} s.",
        hint=hint,
    )
    slow = timeline.in_flight_slow()
    assert all(r.ok for r in slow), failure(
        "grace-and-strategy",
        f"{sum(not r.ok for r in slow)} of {len(slow)} slow requests in flight when their pod began to stop "
        f"failed: {describe([r for r in slow if not r.ok])}.",
        hint=hint,
    )
    assert summary["failed"] == 0, failure(
        "grace-and-strategy",
        f"failed requests of the whole run, by class: {summary['failures_by_class']}.",
        hint=hint,
    )
    declared = deployment.declared["terminationGracePeriodSeconds"]
    default = "" if declared else " (the default: not set)"
    assert not short_grace and declared, failure(
        "grace-and-strategy",
        f"terminationGracePeriodSeconds is {deployment.grace_seconds:g}{default}; "
        f"it must be set and cover the longest preStop ({longest_pre_stop:g} s) + the slowest request "
        f"({SLOW_SECONDS:g} s).",
        hint=0,
    )
    assert not any(taken_out.values()), failure(
        "grace-and-strategy",
        f"maxUnavailable is {deployment.max_unavailable!r}: pods taken out before their replacement is Ready, "
        f"per replica count: { {n: k for n, k in taken_out.items() if k} }.",
        hint=1,
    )
    carried_enough = timeline.floor_met()
    assert carried_enough, too_little_load(timeline, "the rolling update")


def test_behind_the_alb_no_request_finds_no_target(rehearsal, alb_timeline, failure):
    stranded = failures(alb_timeline, "no-target", window=0)
    events = {(e.pod, e.event): e.t for e in alb_timeline.events}
    start, end = alb_timeline.rollouts[0]
    new = sorted({e.pod for e in alb_timeline.events if e.event == "created" and e.t >= start})
    old = sorted({e.pod for e in alb_timeline.events if e.event == "terminating" and start <= e.t <= end})

    def when(pod, event):
        t = events.get((pod, event))
        return "never" if t is None else f"{t:.1f} s"

    story = "; ".join(
        [f"new pod {p}: Ready {when(p, 'ready')}, registered {when(p, 'registered')}" for p in new]
        + [f"old pod {p}: terminating {when(p, 'terminating')}, deregistered {when(p, 'deregistered')}" for p in old]
    )
    gated = ALB_GATE in alb_timeline.settings["readiness_gates"]
    settings = alb_timeline.settings
    assert not stranded, failure(
        "readiness-gate",
        f"{settings['replicas']} pod behind the ALB (a new target gets its first request "
        f"{settings['registration_lag']:g} s after its containers are ready), {settings['rate']:g} requests/s: "
        f"{len(stranded)} requests found no registered "
        f"target (503 from the ALB) during the rolling update. {story}. Readiness gate on the new pods: "
        f"{'yes' if gated else 'none'}.",
        hint=0 if not gated else 1,
    )
    rollout = alb_timeline.summary()["rollouts"][0]
    classes = {r.failure for r in alb_timeline.window(0) if r.failure}
    assert rollout["failed"] == 0, failure(
        "readiness-gate",
        f"behind the ALB, {rollout['failed']} of {rollout['requests']} requests of the rolling update failed "
        f"(classes {sorted(classes)}). {story}.",
        hint=0,
    )
    carried_enough = alb_timeline.floor_met()
    assert carried_enough, too_little_load(alb_timeline, "the rolling update behind the ALB")
