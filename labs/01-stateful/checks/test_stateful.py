"""Lab 01 checks: two real nodes (uWSGI) behind a round-robin load balancer (nginx).

Each test acts as users through the load balancer, then looks at what every node
answers, and at what the nodes wrote to a local disk while it ran: any file, in any
folder (each node's own, the temporary folder, a path every process on this computer
can reach), is state that one pod has and the others never see.
The tests share one cluster, in file order; each also passes alone.
"""

import time

from workshop.local_writes import describe
from workshop.scenarios.stateful import (
    create_screens,
    logged_in,
    missing_from_reports,
    sync_crm,
)

CLUSTER_OPTIONS = {"nodes": 2}
CRM_SDK = "cms.crm_sdk"  # a write made inside a call into the CRM's SDK is the token store's
SCREENS_PER_USER = 10
CRM_SYNCS = 10


def test_every_audit_event_reaches_the_report(cluster, failure):
    started = time.time()
    with logged_in(cluster) as browsers:
        actions = create_screens(browsers, "audit", SCREENS_PER_USER)
        assert len(actions.served_by_node) == 2, (
            f"the check needs both nodes to serve requests, but only {dict(actions.served_by_node)} did; "
            f"see the load balancer's log in {cluster.logs_dir}"
        )
        missing = missing_from_reports(browsers, actions, nodes=2)
    lost = {report: count for report, count in missing.items() if count}
    writes = [write for write in cluster.local_writes(since=started) if not write.made_under(CRM_SDK)]
    assert len(missing) == 4 and not lost and not writes, failure(
        "audit-to-db",
        f"{actions.total} screens were created ({dict(actions.served_by_node)} per node). "
        + (f"The audit reports lack some of them: {lost} (report@node: events missing). " if lost else "")
        + (f"The nodes wrote to a local disk: {describe(writes)}." if writes else "No node wrote to a local disk."),
        # still writing files (wherever they are): where events live; nothing local: the two methods
        hint=1 if writes else 2,
    )


def test_one_crm_token_for_the_whole_cluster(cluster, crm_stats, failure):
    started = time.time()
    with logged_in(cluster) as browsers:
        statuses = sync_crm(browsers["alice"], CRM_SYNCS)
    stats = crm_stats()
    writes = [write for write in cluster.local_writes(since=started) if write.made_under(CRM_SDK)]
    ok = statuses == {302: CRM_SYNCS} and stats["grants"] == 1 and stats["refused"] == 0
    assert ok and not writes, failure(
        "crm-token",
        f"{CRM_SYNCS} CRM syncs answered {dict(statuses)} (302 is success, 503 is the CRM refusing a "
        f"token). The CRM granted {stats['grants']} access token(s) and refused {stats['refused']} "
        f"request(s) for a new one; its limit is {stats['token_limit']} per {stats['window_seconds']:g} s. "
        + (f"The nodes wrote to a local disk: {describe(writes)}." if writes else "No node wrote to a local disk."),
        # the SDK's file, wherever it is: the idea of a shared store; nothing local: the store's methods
        hint=1 if writes else 2,
    )


def test_wiping_a_node_loses_nothing(cluster, crm_stats, failure):
    started = time.time()
    with logged_in(cluster) as browsers:
        actions = create_screens(browsers, "wipe", SCREENS_PER_USER // 2)
        before = sync_crm(browsers["alice"], 2)
        grants_before = crm_stats()["grants"]

        wiped = cluster.nodes[0]
        cluster.restart_node(wiped, wipe_disk=True)  # a replaced machine: a new, empty disk

        missing = missing_from_reports(browsers, actions, nodes=2)
        after = sync_crm(browsers["alice"], 4)
    stats = crm_stats()
    lost = {report: count for report, count in missing.items() if count}
    writes = cluster.local_writes(since=started)
    assert not lost and not writes, failure(
        "wipe-a-node",
        f"after {wiped.name}'s local disk was wiped and it restarted, "
        + (f"audit reports lack events: {lost}. " if lost else "every report had every event. ")
        + (f"The nodes wrote to a local disk: {describe(writes)}." if writes else ""),
    )
    assert before == {302: 2} and after == {302: 4} and stats["grants"] == grants_before, failure(
        "wipe-a-node",
        f"CRM syncs answered {dict(before)} before and {dict(after)} after wiping {wiped.name}; the CRM "
        f"granted {stats['grants'] - grants_before} new token(s) after the wipe and has refused "
        f"{stats['refused']} in all.",
        hint=1,
    )
