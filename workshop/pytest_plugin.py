"""pytest fixtures for lab checks: a real cluster, a browser-like client, the CRM's
counters, and failure messages that say what was seen and which hint to read.

A check module lives in labs/NN-slug/checks/. It runs against the lab's editable
files in the folder given by --lab-files (default: the lab folder itself), on top of
the reference solutions of the earlier labs. A module may set
`CLUSTER_OPTIONS = {"nodes": 2}` to shape its cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workshop.client import CMSClient
from workshop.curriculum import Lab, load_lab
from workshop.topology import Cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workshop")
    group.addoption("--lab-files", default=None, help="folder with the lab's editable files")
    group.addoption("--workshop-results", default=None, help="write {test name: outcome} as JSON here")


def _lab_of(path: Path) -> Lab:
    for folder in path.parents:
        if (folder / "lab.toml").is_file():
            return load_lab(folder)
    raise pytest.UsageError(f"{path} is not inside a lab folder (no lab.toml above it)")


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Lab:
    return _lab_of(Path(request.path))


@pytest.fixture(scope="module")
def lab_files(request: pytest.FixtureRequest, lab: Lab) -> Path:
    option = request.config.getoption("--lab-files")
    return Path(option).resolve() if option else lab.path


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, lab: Lab, lab_files: Path):
    options = getattr(request.module, "CLUSTER_OPTIONS", {})
    with Cluster(lab, files_dir=lab_files, **options) as running:
        yield running


@pytest.fixture
def client(cluster: Cluster):
    with CMSClient(cluster.url) as browser:
        yield browser


@pytest.fixture
def crm_stats(cluster: Cluster):
    """Call it to read the CRM stand-in's counters (grants, refused, api_calls)."""
    return cluster.crm.stats


@pytest.fixture
def failure(lab: Lab):
    """failure(step_id, seen, hint=0) -> the message of a failed check."""

    def explain(step_id: str, seen: str, hint: int = 0) -> str:
        step = lab.step(step_id)
        chosen = step.hints[min(hint, len(step.hints) - 1)]
        return (
            f"\n  Step {step.id!r} ({step.title}) is not done yet."
            f"\n  What the check saw: {seen}"
            f"\n  Hint: {chosen}"
            f"\n  More hints, one at a time: workshop hint {lab.code}\n"
        )

    return explain


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed check also shows the newest traceback the cluster's processes logged
    (a learner's typo shows up as an HTTP 500; its cause is in a node's log)."""
    report = yield
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if report.failed and isinstance(cluster, Cluster):
        error = cluster.last_error()
        if error:
            report.sections.append(("the newest error in the cluster's logs", error))
    return report


class _Results:
    def __init__(self, path: Path):
        self.path = path
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "call" or report.outcome != "passed":
            # a failure in setup (the cluster did not start) is a failure of the check
            if self.outcomes.get(name) != "failed":
                self.outcomes[name] = report.outcome

    def pytest_sessionfinish(self) -> None:
        self.path.write_text(json.dumps(self.outcomes, indent=2))


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--workshop-results", default=None)
    if path:
        config.pluginmanager.register(_Results(Path(path)), "workshop-results")
