"""Lab 01: users acting through the load balancer, audit reports and CRM syncs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from workshop.client import CMSClient
from workshop.topology import Cluster

# Seeded by `manage.py seed_workshop`: one user of each partner account.
USERS = {"alice": "acme", "carol": "globex"}


@dataclass
class Actions:
    """What the users did: screen names per account, and the node that served each."""

    screens: dict[str, set[str]] = field(default_factory=dict)
    served_by_node: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(len(names) for names in self.screens.values())


@contextmanager
def logged_in(cluster: Cluster) -> Iterator[dict[str, CMSClient]]:
    """One browser per seeded user, logged in through the load balancer; closed after."""
    browsers = {username: CMSClient(cluster.url) for username in USERS}
    try:
        for username, browser in browsers.items():
            browser.login(username)
        yield browsers
    finally:
        for browser in browsers.values():
            browser.close()


def create_screens(browsers: dict[str, CMSClient], tag: str, per_user: int) -> Actions:
    """Each user creates `per_user` screens; every creation is one audit event."""
    actions = Actions()
    users = list(browsers.items())
    for index in range(per_user):
        # Alternate the users' order each round, so that with a strict round-robin each
        # user's requests land on every node rather than always on the same one.
        for username, browser in users if index % 2 == 0 else users[::-1]:
            name = f"{tag}-{username}-{index}"
            response = browser.post_form("/screens/", {"name": name, "location": "lobby"})
            if response.status_code != 302:
                raise AssertionError(f"creating screen {name} failed: HTTP {response.status_code}")
            actions.screens.setdefault(USERS[username], set()).add(name)
            actions.served_by_node[response.headers.get("X-Served-By", "?").split("/")[0]] += 1
    return actions


def screens_in_report(report: dict) -> set[str]:
    return {event["detail"].get("name") for event in report["events"] if event["action"] == "screen.created"}


def reports_from_every_node(browser: CMSClient, nodes: int, attempts: int = 8) -> dict[str, dict]:
    """Read the account's audit report until every node has answered once (node -> report)."""
    reports: dict[str, dict] = {}
    for _ in range(attempts):
        response = browser.get("/audit/report.json")
        response.raise_for_status()
        report = response.json()
        reports.setdefault(report["node"], report)
        if len(reports) == nodes:
            break
    return reports


def missing_from_reports(browsers: dict[str, CMSClient], actions: Actions, nodes: int) -> dict[str, int]:
    """For each "account@node" report, how many of the account's events it lacks."""
    missing: dict[str, int] = {}
    for username, browser in browsers.items():
        account = USERS[username]
        for node, report in reports_from_every_node(browser, nodes).items():
            missing[f"{account}@{node}"] = len(actions.screens[account] - screens_in_report(report))
    return missing


def sync_crm(browser: CMSClient, times: int) -> Counter[int]:
    """Press "Sync to CRM" `times` times; returns how many answers of each HTTP status."""
    return Counter(browser.post_form("/crm/sync/").status_code for _ in range(times))


def audit_files_per_node(cluster: Cluster) -> dict[str, int]:
    """Screen creations each node wrote to the audit files on its own local disk."""
    counts = {}
    for node in cluster.nodes:
        lines = [
            line for path in sorted((node.disk / "audit").glob("audit-*.log")) for line in path.read_text().splitlines()
        ]
        counts[node.name] = sum(json.loads(line)["action"] == "screen.created" for line in lines)
    return counts


@dataclass
class Observation:
    """One run of the lab's story on `nodes` nodes, as numbers."""

    nodes: int
    screens_created: int
    served_by_node: dict[str, int]
    local_audit_lines: dict[str, int]  # node -> screen creations in its own audit files
    report_coverage: dict[str, int]  # "account@node" -> events of the account that report shows
    crm_statuses: dict[int, int]
    crm: dict


def observe(lab, files_dir, nodes: int = 2, per_user: int = 5, crm_syncs: int = 4) -> Observation:
    """Start a cluster, act as the users through the load balancer, and measure."""
    with Cluster(lab, files_dir=files_dir, nodes=nodes) as cluster:
        with logged_in(cluster) as browsers:
            actions = create_screens(browsers, "demo", per_user)
            missing = missing_from_reports(browsers, actions, nodes)
            crm_statuses = sync_crm(browsers["alice"], crm_syncs)
        per_account = {account: len(names) for account, names in actions.screens.items()}
        return Observation(
            nodes=nodes,
            screens_created=actions.total,
            served_by_node=dict(actions.served_by_node),
            local_audit_lines=audit_files_per_node(cluster),
            report_coverage={report: per_account[report.split("@")[0]] - count for report, count in missing.items()},
            crm_statuses=dict(crm_statuses),
            crm=cluster.crm.stats(),
        )


def demo(lab, files_dir, console) -> None:
    """`workshop demo 01`: the same story on one node, then on two."""
    from rich.table import Table

    for nodes in (1, 2):
        with console.status(f"running {nodes} node(s)..."):
            seen = observe(lab, files_dir, nodes=nodes)
        table = Table(title=f"{nodes} node(s): {seen.screens_created} screens created, served {seen.served_by_node}")
        for column in ("audit report (account@node)", "events shown", "of"):
            table.add_column(column)
        for report, shown in sorted(seen.report_coverage.items()):
            expected = seen.screens_created // len(USERS)
            colour = "green" if shown == expected else "red"
            table.add_row(report, f"[{colour}]{shown}[/{colour}]", str(expected))
        console.print(table)
        console.print(f"  screen creations in each node's local audit files: {seen.local_audit_lines}")
        console.print(
            f"  CRM syncs answered {seen.crm_statuses} (302 ok, 503 refused); the CRM granted "
            f"{seen.crm['grants']} token(s) and refused {seen.crm['refused']}\n"
        )
