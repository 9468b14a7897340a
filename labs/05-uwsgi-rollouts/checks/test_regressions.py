"""Regression check: lab 02's guarantee, re-checked through this lab's rolling update.

Lab 02 made sessions survive any node. Here every pod that served the login is replaced
by a rolling update; the user must still be logged in on the new pods (the session is in
the database and the shared cache, not in a process that is gone).

What it catches, honestly: this lab's files are uwsgi.ini, nginx.conf and the
Deployment; none of them holds the session store, so a learner's lab 05 edit can break
this only by starting the app some other way (a `module`/`env` in uwsgi.ini that drops
the settings layers). It also catches a broken layer stack (the curriculum tests prove it
by running it on lab 02's starter). It cannot catch a change to your lab 02 files: every
lab runs on the earlier labs' solutions. Failed requests of the rollout itself (502s,
this lab's own steps) are not logouts: it counts only redirects to the login page.
"""

import time
from collections import Counter

import pytest

from workshop.client import CMSClient
from workshop.rollout.rehearsal import Rehearsal

PAGE_VIEWS = 30  # answered page views after the rollout, spread over every new pod


def log_in(client: CMSClient):
    """Log in, through this lab's own failures: with the starter files, a pod may answer 502
    until its uWSGI serves (no readiness probe yet)."""
    for _ in range(50):
        try:
            return client.login("alice")
        except (AssertionError, KeyError):  # a 5xx instead of the login page or its redirect
            time.sleep(0.2)
    pytest.fail(f"could not log in through the load balancer in 50 tries: {dict(client.served_by)}")


@pytest.fixture(scope="module")
def rehearsal(lab, lab_files, earlier_files):
    with Rehearsal(lab, lab_files, earlier_files=earlier_files) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(rehearsal):
    """The rehearsal's services (database, Valkey): what `setting` asks, where errors are logged."""
    return rehearsal.cluster


def test_sessions_survive_a_rolling_update(rehearsal, setting, failure):
    with CMSClient(rehearsal.lb.url) as client:
        login = log_in(client)
        login_pod = login.headers.get("X-Served-By", "?").split("/")[0]
        before = {pod.name for pod in rehearsal.live_pods()}
        rehearsal.roll()
        after = {pod.name for pod in rehearsal.live_pods()}
        assert not before & after, f"the rollout left pods {before & after} in place"
        answered, served, logged_out = 0, Counter(), Counter()
        for _ in range(10 * PAGE_VIEWS):
            if answered >= PAGE_VIEWS:
                break
            response = client.get("/")
            if response.status_code >= 500:
                continue  # this lab's own failure classes, not a lost session
            answered += 1
            pod = response.headers.get("X-Served-By", "?").split("/")[0]
            served[pod] += 1
            if response.status_code != 200:
                logged_out[pod] += 1
    assert answered >= PAGE_VIEWS, f"only {answered} page views were answered after the rollout: {dict(served)}"
    if logged_out:
        backend = (setting("CACHES") or {}).get("default", {}).get("BACKEND", "LocMemCache (CACHES not set)")
        assert not logged_out, failure(
            "shared-cache",
            f"logged in on {login_pod}; after a rolling update replaced every pod, {sum(logged_out.values())} "
            f"of {answered} page views redirected to the login page ({dict(logged_out)}). "
            f"The default cache is {backend}.",
            hint=0 if "LocMemCache" in backend else 1,
            lab="02",
        )
