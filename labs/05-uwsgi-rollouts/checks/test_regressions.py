"""Regression check: lab 02's guarantee, re-checked through this lab's rolling update.

Lab 02 made sessions survive any node. Here a user logs in before the rolling update of
the lab's checks (conftest.py: `witness`, then `timeline`), which replaces every pod,
the one that served the login included; the user must still be logged in on the new
pods (the session is in the database and the shared cache, not in a process that is gone).

What it catches, honestly: this lab's files are uwsgi.ini, nginx.conf and the
manifests; none of them holds the session store, so a learner's lab 05 edit can break
this only by starting the app some other way (a `module`/`env` in uwsgi.ini that drops
the settings layers). It also catches a broken layer stack (the curriculum tests prove it
by running it on lab 02's starter). It cannot catch a change to your lab 02 files: every
lab runs on the earlier labs' solutions. Failed requests of the rollout itself (502s,
this lab's own steps) are not logouts: it counts only redirects to the login page.
"""

from collections import Counter

import pytest

PAGE_VIEWS = 30  # answered page views after the rollout, on the new pods


@pytest.fixture(scope="module")
def cluster(rehearsal):
    """The rehearsal's services (database, Valkey): what `setting` asks, where errors are logged."""
    return rehearsal.cluster


def test_sessions_survive_a_rolling_update(rehearsal, witness, request, setting, failure):
    before = {pod.name for pod in rehearsal.live_pods() if pod.in_service}
    request.getfixturevalue("timeline")  # the rolling update, after the witness logged in
    after = {pod.name for pod in rehearsal.live_pods() if pod.in_service}
    assert not before & after, f"the rollout left pods {before & after} in place"
    client = witness.client
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
            f"logged in on {witness.login_pod}; after a rolling update replaced every pod, "
            f"{sum(logged_out.values())} of {answered} page views redirected to the login page ({dict(logged_out)}). "
            f"The default cache is {backend}.",
            hint=0 if "LocMemCache" in backend else 1,
            lab="02",
        )
