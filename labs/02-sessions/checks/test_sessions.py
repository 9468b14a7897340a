"""Lab 02 checks: a logged-in user on two real nodes (uWSGI, 3 workers each) behind the
load balancer, through node hops, restarts of every node, a cache flush and a logout.

Page views are GETs of the dashboard: 200 means logged in, a redirect to /login/ means
the session was not found. Each response says which node/worker served it and how many
queries it sent to the session table (X-Session-DB-Queries).
"""

import time

from workshop.local_writes import describe
from workshop.scenarios.sessions import (
    assert_logged_in_everywhere,
    cache_backend,
    expired_sessions_after_clearsessions,
    flush_cache,
    hop,
    replay,
    restart_every_node,
)

CLUSTER_OPTIONS = {"nodes": 2}


def test_survives_node_hopping_and_restarts(cluster, client, failure, setting):
    started = time.time()
    hops = assert_logged_in_everywhere(client, cluster, failure, setting, minimum=50)
    # a cache every node shares: after the login, no worker needs the session table to find
    # the session (cached_db over each process's own LocMemCache, or plain db, would)
    from_db = sum(queries > 0 for queries in hops.session_queries)
    writes = cluster.local_writes(since=started)
    assert not writes, failure(
        "shared-cache",
        f"logged in on every worker, but the nodes wrote the sessions to a local disk: {describe(writes)}. "
        f"The default cache is {cache_backend(setting)}.",
        hint=1,
    )
    assert from_db == 0, failure(
        "shared-cache",
        f"logged in on every worker, but {from_db} of {hops.requests} page views read the session from the "
        f"session table (queries per view: {hops.session_queries[:12]}...): the session reached those workers "
        f"through the database, not through a cache they share. The default cache is {cache_backend(setting)}; "
        f"the session engine is {setting('SESSION_ENGINE')}.",
        hint=3,
    )

    restart_every_node(cluster)
    after = hop(client, cluster, minimum=20)
    assert after.always_logged_in, failure(
        "shared-cache",
        f"after restarting every node, {after.requests - after.logged_in} of {after.requests} page views "
        "were logged out: the sessions lived in the nodes' processes.",
        hint=2,
    )


def test_survives_a_cache_flush_and_reads_stay_in_the_cache(cluster, client, failure, setting):
    warm = assert_logged_in_everywhere(client, cluster, failure, setting, minimum=12)
    assert sum(warm.session_queries) == 0, failure(
        "cached-db",
        f"{sum(warm.session_queries)} queries went to the session table in {warm.requests} page views "
        f"(per view: {warm.session_queries[:12]}...): reads should come from the cache.",
        hint=1,
    )

    flush_cache(cluster)
    first = client.get("/")
    assert first.status_code == 200, failure(
        "cached-db",
        "after a flush of the shared cache, the user was logged out: the cache was the only copy.",
        hint=0,  # logged out only by the flush: the cache engine, one setting away from cached_db
    )
    after = hop(client, cluster, minimum=12)
    assert after.always_logged_in and sum(after.session_queries) == 0, failure(
        "cached-db",
        f"after the flush, the first page view sent {first.headers.get('X-Session-DB-Queries')} queries to "
        f"the session table, then {after.requests} more views sent {sum(after.session_queries)} and were "
        f"logged in on {after.logged_in}: the first read should put the session back in the cache.",
        # logged in but reading the database each time: plain "db"; logged out: the cache is the only copy
        hint=1 if after.always_logged_in else 0,
    )
    from_db = int(first.headers.get("X-Session-DB-Queries", 0))
    assert from_db >= 1, failure(
        "cached-db",
        f"the user stayed logged in through a flush of the shared cache, yet the first page view after it read "
        f"the session table {from_db} times: the session was in neither the cache nor the database. The session "
        f"engine is {setting('SESSION_ENGINE')}: the session lives in the browser's cookie, with no copy on the "
        "server.",
        hint=2,
    )


def test_logout_ends_the_session_everywhere(cluster, client, failure, setting):
    assert_logged_in_everywhere(client, cluster, failure, setting, minimum=12)
    cookies = dict(client.http.cookies)
    assert client.logout().status_code == 302

    with replay(cluster, cookies) as old_tab:
        after = hop(old_tab, cluster, minimum=20)
    assert after.never_logged_in, failure(
        "logout-everywhere",
        f"after logging out through one node, the old session cookie was still logged in on "
        f"{after.logged_in} of {after.requests} page views.",
    )

    before, remaining = expired_sessions_after_clearsessions(cluster)
    assert before >= 3 and remaining == 0, failure(
        "logout-everywhere",
        f"3 expired sessions were created; the session table had {before} expired rows before "
        f"`manage.py clearsessions` and {remaining} after: expired sessions must be rows it can purge.",
    )
