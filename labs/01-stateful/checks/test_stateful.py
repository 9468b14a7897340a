"""Lab 01 checks: two real nodes (uWSGI) behind a round-robin load balancer (nginx).

Each test acts as users through the load balancer, then looks at what every node
answers. The tests share one cluster, in file order; each also passes alone.
"""

from workshop.scenarios.stateful import (
    audit_files_per_node,
    create_screens,
    logged_in,
    missing_from_reports,
    sync_crm,
)

CLUSTER_OPTIONS = {"nodes": 2}
SCREENS_PER_USER = 10
CRM_SYNCS = 10


def token_files_per_node(cluster):
    """Nodes whose local disk holds the SDK's token file (FileTokenStore writes one)."""
    return sorted(node.name for node in cluster.nodes if any(node.disk.rglob("*oauthtokens*")))


def test_every_audit_event_reaches_the_report(cluster, failure):
    with logged_in(cluster) as browsers:
        actions = create_screens(browsers, "audit", SCREENS_PER_USER)
        assert len(actions.served_by_node) == 2, (
            f"the check needs both nodes to serve requests, but only {dict(actions.served_by_node)} did; "
            f"see the load balancer's log in {cluster.logs_dir}"
        )
        missing = missing_from_reports(browsers, actions, nodes=2)
    lost = {report: count for report, count in missing.items() if count}
    in_local_files = audit_files_per_node(cluster)
    assert len(missing) == 4 and not lost, failure(
        "audit-to-db",
        f"{actions.total} screens were created ({dict(actions.served_by_node)} per node), but the "
        f"audit reports lack some of them: {lost or missing} (report@node: events missing). "
        f"Screen creations in each node's local audit files: {in_local_files}.",
        # still writing local files: the sink's base class; nothing local: its two methods
        hint=1 if any(in_local_files.values()) else 2,
    )


def test_one_crm_token_for_the_whole_cluster(cluster, crm_stats, failure):
    with logged_in(cluster) as browsers:
        statuses = sync_crm(browsers["alice"], CRM_SYNCS)
    stats = crm_stats()
    token_files = token_files_per_node(cluster)
    assert statuses == {302: CRM_SYNCS} and stats["grants"] == 1 and stats["refused"] == 0, failure(
        "crm-token",
        f"{CRM_SYNCS} CRM syncs answered {dict(statuses)} (302 is success, 503 is the CRM refusing a "
        f"token). The CRM granted {stats['grants']} access token(s) and refused {stats['refused']} "
        f"request(s) for a new one; its limit is {stats['token_limit']} per {stats['window_seconds']:g} s. "
        f"Nodes with a token file on their local disk: {token_files or 'none'}.",
        # a token file on a node's disk: still the SDK's FileTokenStore; none: the new store's methods
        hint=0 if token_files else 2,
    )


def test_wiping_a_node_loses_nothing(cluster, crm_stats, failure):
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
    assert not lost, failure(
        "wipe-a-node",
        f"after {wiped.name}'s local disk was wiped and it restarted, audit reports lack events: {lost}.",
    )
    assert before == {302: 2} and after == {302: 4} and stats["grants"] == grants_before, failure(
        "wipe-a-node",
        f"CRM syncs answered {dict(before)} before and {dict(after)} after wiping {wiped.name}; the CRM "
        f"granted {stats['grants'] - grants_before} new token(s) after the wipe and has refused "
        f"{stats['refused']} in all.",
        hint=1,
    )
