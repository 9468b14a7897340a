"""Lab 05 checks: the rolling-update rehearsal with real processes. Each pod runs the
lab's uwsgi.ini (uWSGI) and nginx.conf (the sidecar) as k8s/deployment.yaml says; a
load balancer (nginx, no retries) follows pod readiness with a 1 s registration and a
3 s deregistration lag, as kube-proxy or an ALB would.

The checks count failed requests by the class of failure each step removes; the
timing margins (preStop 5 s against a 3 s lag) are seconds, not milliseconds.
"""

import pytest

from workshop.rollout.rehearsal import SLOW_SECONDS, Rehearsal, sigterm_in_flight

ROLLOUTS = 2
MIN_REQUESTS = 2000  # per rolling update
MIN_RATE = 100.0  # requests per second, over each rolling update


@pytest.fixture(scope="module")
def rehearsal(lab, lab_files):
    with Rehearsal(lab, lab_files) as running:
        yield running


@pytest.fixture(scope="module")
def timeline(rehearsal):
    """Two rolling updates of every replica, one after the other, under steady load."""
    return rehearsal.run(rollouts=ROLLOUTS)


def failures(timeline, kind):
    return [r for r in timeline.requests if r.failure == kind]


def describe(requests, limit=3):
    return "; ".join(
        f"{r.path} to {r.pod} at {r.start:.2f}-{r.end:.2f} s: {r.status or r.error}" for r in requests[:limit]
    )


def test_sigterm_lets_requests_in_flight_finish(rehearsal, lab_files, failure):
    result = sigterm_in_flight(rehearsal)
    hooked = "gracefully_kill_them_all" in (lab_files / "uwsgi.ini").read_text()
    assert result.all_ok, failure(
        "graceful-sigterm",
        f"4 requests of {SLOW_SECONDS:g} s were running when the pod's uWSGI got SIGTERM; they ended "
        f"{result.statuses} (a 502 is the sidecar finding uWSGI's worker gone).",
        # no hook yet: what SIGTERM does; a hook that does not work: its exact line
        hint=2 if hooked else 0,
    )
    assert result.exited, failure(
        "graceful-sigterm",
        f"the requests finished, but uWSGI was still running {SLOW_SECONDS + 10:g} s after SIGTERM "
        "(it reloaded instead of stopping: the kubelet would SIGKILL it at the end of the grace period).",
        hint=2,
    )


def test_no_request_is_lost_to_a_terminating_pod(timeline, failure):
    lost = failures(timeline, "after-termination")
    assert not lost, failure(
        "prestop",
        f"{len(lost)} requests failed that the load balancer sent to a pod after its termination had begun "
        f"(it still had the pod registered). For example: {describe(lost)}.",
        hint=0 if len(lost) > 20 else 2,
    )


def test_no_request_reaches_a_pod_before_uwsgi_serves(rehearsal, timeline, failure):
    unprobed = [c.name for c in rehearsal.deployment.containers if c.readiness is None]
    early = failures(timeline, "not-serving-yet")
    # uWSGI's container unprobed: its probe; only the sidecar unprobed: nginx's own health endpoint
    fitting = 1 if any("uwsgi" in name for name in unprobed) else 2 if unprobed else 0
    assert not early, failure(
        "readiness",
        f"{len(early)} requests failed on a new pod that was Ready, and registered, before its uWSGI "
        f"served anything. For example: {describe(early)}. Containers without a readinessProbe: "
        f"{unprobed or 'none'}.",
        hint=fitting,
    )
    assert not unprobed, failure("readiness", f"container(s) {unprobed} have no readinessProbe.", hint=fitting)


def test_two_rollouts_under_load_lose_no_request(rehearsal, timeline, failure):
    deployment = rehearsal.deployment
    summary = timeline.summary()
    longest_pre_stop = max((c.pre_stop.seconds for c in deployment.containers if c.pre_stop), default=0)
    taken_out = {n: deployment.surge_and_unavailable(n)[1] for n in range(1, 11)}
    short_grace = deployment.grace_seconds < longest_pre_stop + SLOW_SECONDS
    # the state decides the hint: a grace period too short, else pods taken out too early, else the why
    fitting = 1 if short_grace else 2 if any(taken_out.values()) else 0
    for number, rollout in enumerate(summary["rollouts"], start=1):
        assert rollout["failed"] == 0, failure(
            "grace-and-strategy",
            f"rolling update {number} of {ROLLOUTS}: {rollout['failed']} of {rollout['requests']} requests failed; "
            f"by class over the whole run: {summary['failures_by_class']}.",
            hint=fitting,
        )
    slow = timeline.in_flight_slow()
    assert all(r.ok for r in slow), failure(
        "grace-and-strategy",
        f"{sum(not r.ok for r in slow)} of {len(slow)} slow requests in flight when uWSGI was told to stop "
        f"failed: {describe([r for r in slow if not r.ok])}.",
        hint=fitting,
    )
    assert summary["failed"] == 0, failure(
        "grace-and-strategy", f"failed requests by class: {summary['failures_by_class']}.", hint=fitting
    )
    assert (
        deployment.grace_seconds >= longest_pre_stop + SLOW_SECONDS
        and deployment.declared["terminationGracePeriodSeconds"]
    ), failure(
        "grace-and-strategy",
        f"terminationGracePeriodSeconds is {deployment.grace_seconds:g}"
        f"{'' if deployment.declared['terminationGracePeriodSeconds'] else ' (the default: not set)'}; "
        f"it must be set and cover the longest preStop ({longest_pre_stop:g} s) + the slowest request "
        f"({SLOW_SECONDS:g} s).",
        hint=1,
    )
    assert not any(taken_out.values()), failure(
        "grace-and-strategy",
        f"maxUnavailable is {deployment.max_unavailable!r}: pods taken out before their replacement is Ready, "
        f"per replica count: { {n: k for n, k in taken_out.items() if k} }.",
        hint=2,
    )
    for number, rollout in enumerate(summary["rollouts"], start=1):
        assert rollout["requests"] >= MIN_REQUESTS and rollout["rate"] >= MIN_RATE, (
            f"rolling update {number} carried {rollout['requests']} requests at {rollout['rate']} /s; the check "
            f"needs at least {MIN_REQUESTS} at {MIN_RATE:g} /s to prove anything (is the machine overloaded?)"
        )
