"""Lab 02: a logged-in user hopping over every node and worker, through restarts, a
cache flush and a logout; and the same story for each of Django's session engines."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from workshop.client import CMSClient
from workshop.topology import Cluster, side_by_side

USER = "alice"

# What each session engine needs in session_settings.py (the lab's editable file).
REDIS_CACHE = 'CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}'
LOCMEM_CACHE = 'CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}'
ENGINES = {
    "locmem cache": (LOCMEM_CACHE, "django.contrib.sessions.backends.cache"),
    "shared cache": (REDIS_CACHE, "django.contrib.sessions.backends.cache"),
    "db": (REDIS_CACHE, "django.contrib.sessions.backends.db"),
    "cached_db": (REDIS_CACHE, "django.contrib.sessions.backends.cached_db"),
    "signed_cookies": (REDIS_CACHE, "django.contrib.sessions.backends.signed_cookies"),
}
EVENTS = ("node hop", "node restart", "cache flush", "logout elsewhere")


@dataclass
class Hops:
    """Requests of one logged-in browser spread over the cluster, and what they saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    workers: Counter[str] = field(default_factory=Counter)  # "node-1/1234" -> requests
    logged_out_on: Counter[str] = field(default_factory=Counter)
    session_queries: list[int] = field(default_factory=list)  # per request, from X-Session-DB-Queries
    first_logout: tuple[int, str] | None = None  # (page view number, node/worker that served it)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def logged_in(self) -> int:
        return self.statuses[200]

    @property
    def always_logged_in(self) -> bool:
        return self.requests > 0 and self.logged_in == self.requests

    @property
    def never_logged_in(self) -> bool:
        return self.logged_in == 0


def hop(browser: CMSClient, cluster: Cluster, minimum: int = 50, maximum: int = 400) -> Hops:
    """GET the dashboard at least `minimum` times, and on until every worker of every node
    has answered (at most `maximum`). 200 is "logged in", a redirect to /login/ is not."""
    every_worker = len(cluster.nodes) * cluster.workers_per_node
    hops = Hops()
    while hops.requests < maximum and (hops.requests < minimum or len(hops.workers) < every_worker):
        response = browser.get("/")
        served_by = response.headers.get("X-Served-By", "?")
        hops.statuses[response.status_code] += 1
        hops.workers[served_by] += 1
        hops.session_queries.append(int(response.headers.get("X-Session-DB-Queries", -1)))
        if response.status_code != 200:
            hops.logged_out_on[served_by] += 1
            hops.first_logout = hops.first_logout or (hops.requests, served_by)
    return hops


def explain_logout(login_worker: str, hops: Hops) -> str:
    if not hops.first_logout:
        return "every page view was logged in"
    number, worker = hops.first_logout
    return (
        f"the login was served by {login_worker}; page view #{number} was served by {worker}, which "
        f"did not know the session, so Django deleted the session cookie: {hops.requests - hops.logged_in} "
        f"of {hops.requests} page views were logged out"
    )


def assert_logged_in_everywhere(client: CMSClient, cluster: Cluster, failure, setting, minimum: int, **where) -> Hops:
    """The check of lab 02's guarantee, for lab 02 and the later labs that re-check it: log
    in once and browse until every worker of every node has answered; stay logged in."""
    import pytest

    login_worker = client.login("alice").headers.get("X-Served-By", "?")
    hops = hop(client, cluster, minimum=minimum)
    every_worker = len(cluster.nodes) * cluster.workers_per_node
    if len(hops.workers) < every_worker:
        pytest.fail(f"the check could not reach every worker ({dict(hops.workers)}); see {cluster.logs_dir}")
    if not hops.always_logged_in:
        # the cache inside each process: which cache; some other cache that is not shared: Redis's
        backend = cache_backend(setting)
        assert hops.always_logged_in, failure(
            "shared-cache",
            f"{explain_logout(login_worker, hops)}. The default cache is {backend}.",
            hint=0 if "LocMemCache" in backend else 1,
            **where,
        )
    return hops


def cache_backend(setting) -> str:
    """The default cache's backend as the cluster's processes see it."""
    return (setting("CACHES") or {}).get("default", {}).get("BACKEND", "LocMemCache (CACHES not set)")


def flush_cache(cluster: Cluster) -> None:
    """Empty the shared cache, as a Redis failover, an eviction storm or a FLUSHALL would."""
    with redis.Redis.from_url(cluster.redis.url) as client:
        client.flushdb()


def restart_every_node(cluster: Cluster) -> None:
    """Every node stopped and started again, side by side (as a Deployment restarted with
    maxUnavailable 100%): whatever lived in a node's processes is gone from all at once."""
    side_by_side(*(lambda node=node: cluster.restart_node(node) for node in cluster.nodes))


def replay(cluster: Cluster, cookies: dict[str, str]) -> CMSClient:
    """A browser holding an old copy of the cookies (a second tab, a stolen cookie)."""
    browser = CMSClient(cluster.url)
    for name, value in cookies.items():
        browser.http.cookies.set(name, value)
    return browser


def expired_sessions_after_clearsessions(cluster: Cluster, count: int = 3) -> tuple[int, int]:
    """Create `count` expired sessions with the configured engine, run clearsessions:
    (expired rows in the session table before, after). One Python for all of it: the
    command is the same `manage.py clearsessions` runs, and each Python with Django set up
    costs over a second of CPU."""
    script = (
        "from importlib import import_module; from django.conf import settings\n"
        "from django.contrib.sessions.models import Session; from django.core.management import call_command\n"
        "from django.utils import timezone\n"
        "store = import_module(settings.SESSION_ENGINE).SessionStore\n"
        f"for _ in range({count}):\n"
        "    session = store(); session['lab'] = 'expired'; session.set_expiry(-3600); session.save()\n"
        "def rows(): return Session.objects.filter(expire_date__lt=timezone.now()).count()\n"
        "before = rows(); call_command('clearsessions')"
    )
    return cluster.shell_value(script, "(before, rows())")


# -- the engine matrix (notebook) ------------------------------------------------------


def session_settings(engine: str) -> str:
    caches, session_engine = ENGINES[engine]
    return f'import os\n\nREDIS_URL = os.environ["REDIS_URL"]\n{caches}\nSESSION_ENGINE = "{session_engine}"\n'


@dataclass
class EngineResult:
    engine: str
    survived: dict[str, bool]  # event -> still logged in (for "logout elsewhere": session dead)
    median_ms: float
    session_queries_per_request: float


def measure_engine(lab, engine: str, nodes: int = 2, latency_requests: int = 100) -> EngineResult:
    """Run the four events against one session engine, and time plain page views."""
    folder = Path(tempfile.mkdtemp(prefix="engine-"))
    (folder / "session_settings.py").write_text(session_settings(engine))
    survived: dict[str, bool] = {}
    try:
        with Cluster(lab, files_dir=folder, nodes=nodes) as cluster, CMSClient(cluster.url) as browser:
            browser.login(USER)
            survived["node hop"] = hop(browser, cluster, minimum=30).always_logged_in
            restart_every_node(cluster)
            survived["node restart"] = hop(browser, cluster, minimum=10).always_logged_in

            browser.login(USER)  # a fresh session for each remaining event
            flush_cache(cluster)
            survived["cache flush"] = hop(browser, cluster, minimum=10).always_logged_in

            browser.login(USER)
            cookies = dict(browser.http.cookies)
            browser.logout()
            with replay(cluster, cookies) as old_tab:
                survived["logout elsewhere"] = hop(old_tab, cluster, minimum=10).never_logged_in

            browser.login(USER)
            timings, queries = [], []
            for _ in range(latency_requests):
                started = time.perf_counter()
                response = browser.get("/")
                timings.append((time.perf_counter() - started) * 1000)
                queries.append(int(response.headers.get("X-Session-DB-Queries", 0)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return EngineResult(engine, survived, statistics.median(timings), statistics.mean(queries))


# -- workshop demo 02 --------------------------------------------------------------------


def demo(lab, files_dir, console, attempts: int = 8) -> None:
    """`workshop demo 02`: log in, browse until logged out; on one node, then on two."""
    from rich.table import Table

    for nodes in (1, 2):
        table = Table(title=f"{nodes} node(s) with {{}} workers each: log in, then browse (up to 20 page views)")
        for column in ("attempt", "login served by", "logged out at page view", "by"):
            table.add_column(column)
        with console.status(f"running {nodes} node(s)..."):
            with Cluster(lab, files_dir=files_dir, nodes=nodes) as cluster:
                table.title = table.title.format(cluster.workers_per_node)
                for attempt in range(1, attempts + 1):
                    with CMSClient(cluster.url) as browser:
                        login_worker = browser.login(USER).headers.get("X-Served-By", "?")
                        hops = hop(browser, cluster, minimum=20, maximum=20)
                    number, worker = hops.first_logout or ("never", "-")
                    table.add_row(str(attempt), login_worker, f"[red]{number}[/red]", worker)
        console.print(table)
    console.print(
        "A worker that does not hold the session answers 'not logged in', and Django deletes the\n"
        "session cookie: from then on the user is logged out on every worker."
    )
