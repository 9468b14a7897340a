"""pytest fixtures for lab checks: a real cluster, a browser-like client, the CRM's
counters, and failure messages that say what was seen and which hint to read.

A check module lives in labs/NN-slug/checks/. It runs against the lab's editable
files in the folder given by --lab-files (default: the lab folder itself), on top of
the reference solutions of the earlier labs (--earlier-files 01=FOLDER puts another
folder in place of an earlier lab's solution: the curriculum tests use it to prove
that a regression check fails when an earlier guarantee is broken). A module may set
`CLUSTER_OPTIONS = {"nodes": 2}` to shape its cluster.

A failed check names the hint that fits what it saw: failure(step_id, seen, hint=N)
also records {step, hint, seen} on the test's report, and --workshop-results writes
it next to the outcome, so that `workshop hint` and `workshop watch` show that hint.
"""

from __future__ import annotations

import faulthandler
import json
import signal
import threading
from pathlib import Path

import pytest

from workshop.client import CMSClient
from workshop.curriculum import Lab, find_lab, load_lab
from workshop.topology import Cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workshop")
    group.addoption("--lab-files", default=None, help="folder with the lab's editable files")
    group.addoption(
        "--workshop-results",
        default=None,
        help="write {outcomes: {test: outcome}, failures: {test: {step, hint, seen}}, phases: {test: phase}} as JSON",
    )
    group.addoption(
        "--workshop-stacks",
        default=None,
        metavar="FILE",
        help="on SIGUSR1, write every thread's stack to FILE (how the harness asks a stuck run what it does)",
    )
    group.addoption(
        "--earlier-files",
        action="append",
        default=[],
        metavar="NN=FOLDER",
        help="use FOLDER instead of earlier lab NN's solution (repeatable)",
    )


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


def parse_earlier_files(values: list[str]) -> dict[str, Path]:
    """["01=folder"] -> {"01": Path("folder")}"""
    earlier = {}
    for value in values:
        code, separator, folder = value.partition("=")
        if not separator or not code.strip().isdigit() or not folder:
            raise pytest.UsageError(f"--earlier-files expects NN=FOLDER, got {value!r}")
        earlier[f"{int(code):02d}"] = Path(folder).resolve()
    return earlier


@pytest.fixture(scope="module")
def earlier_files(request: pytest.FixtureRequest) -> dict[str, Path]:
    return parse_earlier_files(request.config.getoption("--earlier-files"))


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, lab: Lab, lab_files: Path, earlier_files: dict[str, Path]):
    options = getattr(request.module, "CLUSTER_OPTIONS", {})
    with Cluster(lab, files_dir=lab_files, earlier_files=earlier_files, **options) as running:
        yield running


@pytest.fixture
def client(cluster: Cluster):
    with CMSClient(cluster.url) as browser:
        yield browser


@pytest.fixture
def setting(cluster: Cluster):
    """setting(NAME) -> a Django setting as the cluster's processes see it (a literal, or
    None when unset): lets a failed check tell apart the states a learner can be in."""

    def read(name: str):
        return cluster.shell_value("from django.conf import settings", f"getattr(settings, {name!r}, None)")

    return read


@pytest.fixture
def crm_stats(cluster: Cluster):
    """Call it to read the CRM stand-in's counters (grants, refused, api_calls)."""
    return cluster.crm.stats


FAILURE_PROPERTY = "workshop_failure"


@pytest.fixture
def failure(request: pytest.FixtureRequest, lab: Lab):
    """failure(step_id, seen, hint=0) -> the message of a failed check. `hint` is the
    0-based index of the step's hint that fits what the check saw; it is recorded on the
    report, so `workshop hint` shows that hint first. A regression check names the
    earlier lab whose step it re-checks: failure(step_id, seen, hint=N, lab="01")."""

    def explain(step_id: str, seen: str, hint: int = 0, lab: str | None = None) -> str:
        owner = find_lab(lab) if lab else this_lab
        step = owner.step(step_id)
        if not 0 <= hint < len(step.hints):
            raise ValueError(
                f"the check names hint={hint} of step {step_id!r}, which has hints 0 to {len(step.hints) - 1}"
            )
        # the last call wins: it is the one whose message the failed assert shows
        request.node.user_properties[:] = [p for p in request.node.user_properties if p[0] != FAILURE_PROPERTY]
        named = {"lab": owner.code, "step": step_id, "hint": hint, "seen": seen}
        request.node.user_properties.append((FAILURE_PROPERTY, named))
        if owner is not this_lab:
            title = owner.guarantee.title if owner.guarantee else step.title
            headline = f"Lab {owner.code}'s guarantee {title!r} does not hold in lab {this_lab.code}'s cluster."
        else:
            headline = f"Step {step.id!r} ({step.title}) is not done yet."
        return (
            f"\n  {headline}"
            f"\n  What the check saw: {seen}"
            f"\n  Hint {hint + 1} of {len(step.all_hints)}: {step.hints[hint]}"
            f"\n  More hints, one at a time (the exact lines come last): workshop hint {owner.code}\n"
        )

    this_lab = lab
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
        self.failures: dict[str, dict] = {}  # test name -> {step, hint, seen} of its failure()
        self.phases: dict[str, str] = {}  # failed test name -> "setup" / "call" / "teardown"
        self.errors: dict[str, str] = {}  # failed test name -> its error's message, when it named no hint

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "call" or report.outcome != "passed":
            # a failure in setup (the cluster did not start) is a failure of the check, but
            # not its assertion failing: the phase tells `workshop verify` the two apart
            if self.outcomes.get(name) != "failed":
                self.outcomes[name] = report.outcome
                if report.failed:
                    self.phases[name] = report.when
        if report.failed:
            named = [value for key, value in report.user_properties if key == FAILURE_PROPERTY]
            if named:
                self.failures[name] = named[-1]
            else:  # a plain assertion (a run too small to prove anything): its own words
                crash = getattr(report.longrepr, "reprcrash", None)
                self.errors[name] = crash.message if crash else (report.longreprtext.strip().splitlines() or [""])[-1]

    def pytest_sessionfinish(self) -> None:
        self.path.write_text(
            json.dumps(
                {"outcomes": self.outcomes, "failures": self.failures, "phases": self.phases, "errors": self.errors},
                indent=2,
            )
        )


_stacks_file = None


def _stop_as_after_ctrl_c(signum, frame) -> None:
    raise KeyboardInterrupt  # pytest stops, and the clusters' fixtures stop their processes


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM's default ends Python at once, no fixture torn down: every process a cluster
    # started would outlive the run. Handled as Ctrl-C instead (main thread only, if unclaimed).
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_as_after_ctrl_c)
    stacks = config.getoption("--workshop-stacks", default=None)
    if stacks:
        global _stacks_file
        _stacks_file = open(stacks, "w")  # noqa: SIM115 (open while the run lasts)
        faulthandler.register(signal.SIGUSR1, file=_stacks_file, all_threads=True)
    path = config.getoption("--workshop-results", default=None)
    if path:
        config.pluginmanager.register(_Results(Path(path)), "workshop-results")
