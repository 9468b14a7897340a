"""The topology with real processes: Procfile workers, node restarts, teardown."""

import httpx
import pytest

from workshop.curriculum import find_lab
from workshop.layers import lab_files_dir
from workshop.topology import Cluster

pytestmark = pytest.mark.cluster


def test_a_worker_from_the_procfile_runs_cms_tasks():
    lab = find_lab("01")
    with Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=1, procfile_processes=("worker",)) as cluster:
        output = cluster.manage(
            "shell", "-c", "from cms.signage.tasks import ping; print(ping.delay().get(timeout=30))"
        )
        assert "pong worker/" in output, output
        worker = cluster.procfile_runs["worker"]
        assert worker.running()
    assert not worker.running()


def test_every_node_serves_through_the_load_balancer_and_all_stop():
    lab = find_lab("01")
    with Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=3) as cluster:
        served = {httpx.get(f"{cluster.url}/healthz/ready").headers["X-Served-By"].split("/")[0] for _ in range(6)}
        assert served == {"node-1", "node-2", "node-3"}
        processes = [node.process for node in cluster.nodes] + [cluster.lb, cluster.crm.process]
        if cluster.redis.embedded:
            processes.append(cluster.redis.process)
    assert not any(process.running() for process in processes)
