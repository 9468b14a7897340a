"""A running topology: services, N cms nodes (uWSGI) behind a round-robin load balancer
(nginx), and Procfile processes (worker, beat). Everything stops when the cluster does.

    with Cluster(find_lab("01"), files_dir=...) as cluster:
        httpx.get(cluster.url + "/healthz/ready")

cluster.py             the Cluster: services and database, each machine's environment, lifecycle
nodes.py               the cms nodes (uWSGI) and the load balancer in front of them (nginx)
procfile_processes.py  the Procfile's processes (worker, beat), each waited on until it logs ready
description.py         the running description `workshop top` reads, and the CLI's rows
helpers.py             starting things side by side, Procfile instances, traceback ends
"""

from workshop.topology.cluster import MACHINE_DIR, Cluster
from workshop.topology.helpers import procfile_instances, side_by_side
from workshop.topology.nodes import Node
from workshop.topology.procfile_processes import wait_for_log

__all__ = ["MACHINE_DIR", "Cluster", "Node", "procfile_instances", "side_by_side", "wait_for_log"]
