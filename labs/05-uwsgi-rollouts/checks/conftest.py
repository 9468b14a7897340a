"""One rehearsal for every lab 05 check of a session (starting services and pods costs
seconds; the checks read what one run recorded):

- `rehearsal`: the services, 3 pods of your Deployment behind the load balancer, and (when
  the SIGTERM check runs) a pod out of the Service for it (`rehearsal.spare`), started with them;
- `witness`: a user logged in before any rolling update (lab 02's regression check);
- `timeline`: one rolling update of the 3 pods under load, through the Service as
  kube-proxy makes it (connection by connection, as on kind: lags 1 s / 3 s), rolled again
  if the machine was too busy to carry the load and nothing failed;
- `alb_timeline`: then the Deployment scaled to one pod and put behind the ALB of
  k8s/aws (a new connection per request; a new target gets its first request 8 s after
  its containers are ready), and rolled once more, with your AWS namespace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from workshop.client import CMSClient
from workshop.curriculum import load_lab
from workshop.errors import BadInput
from workshop.pytest_plugin import parse_earlier_files
from workshop.rollout.lb import Lags, lags_from_environment
from workshop.rollout.load import LoadShape
from workshop.rollout.rehearsal import Rehearsal
from workshop.rollout.timeline import LoadFloor

LAB = load_lab(Path(__file__).resolve().parents[1])
# The load balancers' lags (registration, deregistration), the checks' own: kube-proxy takes
# about a second; the ALB registers a target and health-checks it (tens of seconds on AWS,
# 8 s here so the check costs seconds). WORKSHOP_SERVICE_LAGS / WORKSHOP_ALB_LAGS=30,3 change them.
SERVICE_LAGS = Lags(registration=1.0, deregistration=3.0)
ALB_LAGS = Lags(registration=8.0, deregistration=3.0)


def lags(kind: str) -> Lags:
    if kind == "alb":
        return lags_from_environment("WORKSHOP_ALB_LAGS", ALB_LAGS)
    return lags_from_environment("WORKSHOP_SERVICE_LAGS", SERVICE_LAGS)


def pytest_configure(config):
    try:  # a malformed value is answered before anything starts
        lags("alb"), lags("l4")
    except BadInput as exc:
        raise pytest.UsageError(str(exc)) from None


ALB_REPLICAS = 1  # the AWS docs' case: few replicas, new pods Ready before the ALB sends them anything
ALB_RATE = 40.0  # requests per second: the same per pod as 120 over 3 pods
# The least load a rolling update must carry to prove anything: a run below it (the machine was
# too busy for the load generator) with no failed request is rolled again (Rehearsal.run_conclusive).
SERVICE_FLOOR = LoadFloor(requests=2000, rate=100.0)  # of 120 /s, over about 20 s
ALB_FLOOR = LoadFloor(requests=500)  # at ALB_RATE
BEFORE, AFTER = 1.0, 0.5  # seconds of load before the rolling update and after its last old pod exited
SIGTERM_CHECK = "test_sigterm_lets_requests_in_flight_finish"
REGRESSION_CHECK = "test_sessions_survive_a_rolling_update"


def selected(request, name: str) -> bool:
    """Does this session run that check (`workshop check 05 --step ...` runs one)?"""
    return any(item.name == name for item in request.session.items)


@pytest.fixture(scope="session")
def rehearsal(request):
    option = request.config.getoption("--lab-files")
    files = Path(option).resolve() if option else LAB.path
    earlier = parse_earlier_files(request.config.getoption("--earlier-files"))
    with Rehearsal(LAB, files, earlier_files=earlier, lb="l4", lags=lags("l4")) as running:
        # started with the others only when the SIGTERM check runs: it needs a pod of its own
        running.spare = running.create_pod(in_service=False) if selected(request, SIGTERM_CHECK) else None
        yield running


@dataclass
class Witness:
    client: CMSClient
    login_pod: str


def log_in(client: CMSClient):
    """Log in, through this lab's own failures: with the starter files, a pod may answer 502
    or 503 until its app serves (no readiness probe that asks it yet)."""
    for _ in range(50):
        try:
            return client.login("alice")
        except (AssertionError, KeyError):  # a 5xx instead of the login page or its redirect
            time.sleep(0.2)
    pytest.fail(f"could not log in through the load balancer in 50 tries: {dict(client.served_by)}")


@pytest.fixture(scope="session")
def witness(rehearsal):
    with CMSClient(rehearsal.lb.url) as client:
        login = log_in(client)
        yield Witness(client, login.headers.get("X-Served-By", "?").split("/")[0])


@pytest.fixture(scope="session")
def timeline(request, rehearsal):
    """One rolling update of every replica through kube-proxy's Service, under steady load
    (after the witness logged in, when lab 02's regression check runs)."""
    assert rehearsal.lb_kind == "l4", "the kube-proxy rollout runs before the ALB one"
    if selected(request, REGRESSION_CHECK):
        request.getfixturevalue("witness")
    return rehearsal.run_conclusive(SERVICE_FLOOR, before=BEFORE, after=AFTER)


@pytest.fixture(scope="session")
def alb_timeline(rehearsal):
    """Then one pod behind the ALB, rolled once more under load."""
    rehearsal.scale(ALB_REPLICAS)
    rehearsal.use_load_balancer("alb", lags("alb"))
    return rehearsal.run_conclusive(ALB_FLOOR, before=BEFORE, after=AFTER, shape=LoadShape(rate=ALB_RATE))
