"""Two nodes that both find no CRM token at the same moment fetch one, not two: the
reference token store's refresh_lock serializes the fetch across the cluster (a row lock
on PostgreSQL, the write lock on SQLite), and the SDK looks again once it holds the lock."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from workshop.client import CMSClient
from workshop.curriculum import find_lab
from workshop.layers import lab_files_dir
from workshop.topology import Cluster

pytestmark = pytest.mark.cluster
BROWSERS = 8  # first syncs at once, spread by the load balancer over both nodes


def test_concurrent_first_syncs_on_two_nodes_fetch_one_token():
    lab = find_lab("01")
    with Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=2) as cluster:
        browsers = [CMSClient(cluster.url) for _ in range(BROWSERS)]
        try:
            for browser in browsers:
                browser.login("alice")
            with ThreadPoolExecutor(max_workers=BROWSERS) as pool:
                answers = list(pool.map(lambda browser: browser.post_form("/crm/sync/"), browsers))
        finally:
            for browser in browsers:
                browser.close()
        stats = cluster.crm.stats()
    served = {answer.headers.get("X-Served-By", "?").split("/")[0] for answer in answers}
    assert [answer.status_code for answer in answers] == [302] * BROWSERS, stats
    assert served == {"node-1", "node-2"}
    assert (stats["grants"], stats["refused"]) == (1, 0), stats
