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


def test_ports_taken_before_the_processes_bind_them_are_retried():
    """free_port() races with every other program: a port handed out and then taken (here,
    on purpose, before the cluster starts) sends the node and the load balancer to fresh ones."""
    import socket

    lab = find_lab("01")
    cluster = Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=2)
    taken = []
    for port in (cluster.nodes[0].stats_port, cluster.nodes[1].port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        taken.append(sock)
    # the load balancer's port held by a client connection: nothing answers on it, so only
    # nginx's own bind() fails (its words for it are not glibc's)
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.bind(("127.0.0.1", cluster.lb_port))
    client.connect(listener.getsockname())
    taken += [listener, client]
    lb_port = cluster.lb_port
    try:
        with cluster:
            assert cluster.nodes[0].stats_port != taken[0].getsockname()[1]
            assert cluster.nodes[1].port != taken[1].getsockname()[1]
            assert cluster.lb_port != lb_port
            served = {httpx.get(f"{cluster.url}/healthz/ready").headers["X-Served-By"].split("/")[0] for _ in range(6)}
            assert served == {"node-1", "node-2"}

            # a node restarted after another program took its port comes back on a fresh one,
            # and the load balancer follows it
            node = cluster.nodes[1]
            cluster.stop_node(node)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its old connections linger
            sock.bind(("127.0.0.1", node.port))
            sock.listen()
            taken.append(sock)
            old_port = node.port
            cluster.start_node(node)
            assert node.port != old_port
            served = {httpx.get(f"{cluster.url}/healthz/ready").headers["X-Served-By"].split("/")[0] for _ in range(6)}
            assert served == {"node-1", "node-2"}
    finally:
        for sock in taken:
            sock.close()


def test_two_checks_side_by_side_never_fail_on_a_port():
    """Learners run two checks at once; so does a facilitator's laptop. Bounded: 2 rounds of 2."""
    from concurrent.futures import ThreadPoolExecutor

    from workshop.checking import run_checks

    lab = find_lab("01")
    for _ in range(2):
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = list(pool.map(lambda _: run_checks(lab, lab_files_dir(lab, "solution"), quiet=True), range(2)))
        assert [run.returncode for run in runs] == [0, 0], [what_failed(run) for run in runs]


def what_failed(run) -> dict[str, str]:
    """Each check of a run that did not pass: its verdict (an error in setup, or failed), what it saw."""
    return {
        name: f"{run.verdict(name)}: {run.saw(name)}" for name, outcome in run.outcomes.items() if outcome != "passed"
    }


def test_a_node_whose_master_exits_after_its_workers_answered_is_a_port_clash(tmp_path):
    """uWSGI's master binds its stats server after forking the workers: one that finds the
    port taken exits, possibly after a worker already answered the readiness URL. That node
    is not ready: its start fails with the log's clash (what retry_port_clash retries), and
    a stats port another program listens on is not taken for the node's own."""
    import socket
    import sys

    from workshop.ports import is_port_clash
    from workshop.processes import ProcessSpec, ServiceFailed

    lab = find_lab("01")
    cluster = Cluster(lab, files_dir=lab_files_dir(lab, "solution"), nodes=1)
    node = cluster.nodes[0]
    squatter = socket.create_server(("127.0.0.1", node.stats_port))  # listens, never answers
    # a master that served, then failed to bind its stats server, as uWSGI logs it
    late_exit = (
        "import time; time.sleep(0.5); print('bind(): Address already in use [core/socket.c line 769]'); exit(1)"
    )
    try:
        node.process = cluster.supervisor.start(
            ProcessSpec(name="node-1", command=[sys.executable, "-c", late_exit], log_path=tmp_path / "node-1.log")
        )
        with pytest.raises(ServiceFailed) as failed:
            cluster._wait_for_stats_server(node)
        assert is_port_clash(str(failed.value)) and "has stopped" in str(failed.value)
    finally:
        squatter.close()
        cluster.stop()
