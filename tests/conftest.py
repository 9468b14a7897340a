"""Test-session setup: the harness keeps its state (progress, run directories) in a
temporary folder, so `make test` never touches a learner's progress or files."""

import os
import resource
import secrets
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from machine_share import CpuFirstScheduling, MachineShare, chain_cpu_tests

# Set once by the process that runs the session (pytest-xdist's workers inherit both).
if "WORKSHOP_TEST_SESSION" not in os.environ:
    _state = tempfile.TemporaryDirectory(prefix="workshop-test-state-")
    os.environ["WORKSHOP_STATE_DIR"] = _state.name
    # Marks every process this session starts (children inherit the environment), so the
    # end of the session can prove that none is left behind.
    os.environ["WORKSHOP_TEST_SESSION"] = f"{os.getpid()}"

# A suite started in the background (`make test &`, `nohup`) inherits SIGINT ignored, and so
# would every process it starts: the Ctrl-C tests would send their SIGINT to programs that
# cannot hear it. A learner's terminal gives the default; so does the suite (a process
# started from here then gets SIG_DFL, and Python turns it into KeyboardInterrupt).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# -- sharing the machine: run what waits side by side, what needs the CPU beside little -----------
#
# Under `make test` (pytest-xdist, N workers) most cluster tests wait: on beats, on restarts,
# on timeouts. They run side by side, one unit each of the machine's N; a test marked
# `kit(units=2)` (a pip install of the whole offline kit: most of a core for a minute) takes 2,
# never more than N - 1, so something else always runs beside it. The tests marked `cpu`
# (lab 05's rolling updates at 120 requests/s: a third of a core each, but the longest tests of
# the suite) are shared out between CPU_CHAINS chains (tests/machine_share.py): each chain is
# one unit of work for pytest-xdist, and its worker runs it from the start of the session, one
# test after the other, so no more than CPU_CHAINS rolling updates ever run at once, while the
# other workers run the rest. Tests that start no process take no unit.
TIERS = ("kind", "kit", "notebook", "cpu", "cluster")  # the first marker a test has names its tier
CPU_CHAINS = 2
COSTLIEST_SHOWN = 12  # in the summary at the end: where a change would save the most


def tier_of(item_or_report) -> str:
    keywords = item_or_report.keywords
    return next((tier for tier in TIERS if tier in keywords), "fast")


def units_of(item, workers: int) -> int:
    kit = item.get_closest_marker("kit")
    units = kit.kwargs.get("units", 1) if kit else 1
    return max(1, min(units, workers - 1))


def cpu_tests_file() -> Path:
    return Path(os.environ["WORKSHOP_STATE_DIR"]) / "cpu-tests.json"


# Under pytest-xdist, the longest-running kinds of test first: a long test handed out last would
# keep the session waiting.
START_ORDER = ("cpu", *(tier for tier in TIERS if tier != "cpu"), "fast")


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: START_ORDER.index("cpu" if "cpu" in item.keywords else tier_of(item)))
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        chain_cpu_tests(items, cpu_tests_file(), chains=max(1, min(CPU_CHAINS, workers - 1)))


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # pytest-xdist's hook
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "load":  # what -n N gives; another --dist is taken as asked
        return CpuFirstScheduling(config, log, cpu_tests_file())
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Outermost, so the wait for the machine is outside the test's own timeout (pytest-timeout
    times the protocol inside this wrapper): a test that waits its turn is not slow."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if tier_of(item) == "fast" or workers < 2:
        item.stash[CPU_AT_START] = cpu_seconds()
        return (yield)
    share = MachineShare(Path(os.environ["WORKSHOP_STATE_DIR"]), capacity=workers)
    units = units_of(item, workers)
    if share.held() != units:  # a test after one that held as many (two `kit` tests) keeps them
        share.release()
        share.acquire(units)
    item.stash[CPU_AT_START] = cpu_seconds()
    try:
        return (yield)
    finally:
        if not (units > 1 and nextitem is not None and units_of(nextitem, workers) == units):
            share.release()


CPU_AT_START = pytest.StashKey[float]()


def cpu_seconds() -> float:
    """The CPU of this process, and of every process it started that has ended (uWSGI, Celery,
    a check's pytest: each waits for its own children, so theirs is counted too)."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "teardown" and CPU_AT_START in item.stash:
        report.user_properties.append(("cpu_seconds", cpu_seconds() - item.stash[CPU_AT_START]))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Where the time went, per tier (the tests' time and the CPU they used); and how many proofs
    of the curriculum ran and passed."""
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the controller sums up
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    tests: dict[str, int] = {}
    proofs: dict[str, int] = {}
    costs: dict[str, list[float]] = {}  # each test's [seconds, CPU seconds]
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            tier = tier_of(report)
            used = sum(value for key, value in report.user_properties if key == "cpu_seconds")
            seconds[tier] = seconds.get(tier, 0.0) + report.duration
            cpu[tier] = cpu.get(tier, 0.0) + used
            cost = costs.setdefault(report.nodeid, [0.0, 0.0])
            cost[0] += report.duration
            cost[1] += used
            if report.when == "call":
                tests[tier] = tests.get(tier, 0) + 1
                for key, value in report.user_properties:
                    if key == "proofs" and report.passed:
                        for name, count in value.items():
                            proofs[name] = proofs.get(name, 0) + count
    if not tests:
        return
    terminalreporter.section("where the time went (test time and CPU per tier; tiers run side by side)")
    for tier in ("fast", *reversed(TIERS)):
        if tier in tests:
            terminalreporter.write_line(
                f"tier {tier:<9} {tests[tier]:>4} tests  {seconds[tier]:>8.1f} s  {cpu[tier]:>8.1f} s of CPU"
            )
    terminalreporter.write_line("the costliest tests (CPU: the suite is bound by the machine's cores):")
    for nodeid, (spent, used) in sorted(costs.items(), key=lambda item: -item[1][1])[:COSTLIEST_SHOWN]:
        terminalreporter.write_line(f"  {used:>6.1f} s of CPU  {spent:>6.1f} s  {nodeid}")
    if proofs:
        terminalreporter.write_line(
            "proofs that passed: " + ", ".join(f"{count} {name}" for name, count in sorted(proofs.items()))
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Every process this test session started is gone (after pytest-xdist's workers)."""
    if hasattr(session.config, "workerinput"):
        return
    left = processes_left_behind(os.environ["WORKSHOP_TEST_SESSION"])
    if left:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"processes left behind by this test session: {left}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def processes_left_behind(session_marker: str) -> list[tuple[int, str]]:
    import psutil

    from workshop.processes import processes_whose_environment

    me = psutil.Process()
    mine = {me.pid, *(parent.pid for parent in me.parents())}
    left = []
    for process in processes_whose_environment("WORKSHOP_TEST_SESSION", session_marker.__eq__):
        if process.pid in mine:
            continue
        try:
            left.append((process.pid, " ".join(process.cmdline())[:120]))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # it ended meanwhile
        except psutil.AccessDenied:
            left.append((process.pid, "(command line not readable)"))
    return left


@dataclass
class RunningLab:
    base: str  # http://127.0.0.1:<port>
    token: str


@contextmanager
def running_make_lab(log_dir: Path, env: dict[str, str] | None = None):
    """`make lab` on a free port with a token, as a learner starts it; stopped on exit."""
    from workshop.paths import ROOT
    from workshop.ports import free_port
    from workshop.processes import ProcessSpec, Supervisor

    port, token = free_port(), secrets.token_hex(8)
    base = f"http://127.0.0.1:{port}"
    with Supervisor() as supervisor:
        supervisor.start(
            ProcessSpec(
                name="make-lab",
                command=[
                    "make",
                    "-s",
                    "lab",
                    f"JUPYTER_PORT={port}",
                    f"JUPYTER_ARGS=--no-browser --ip=127.0.0.1 --IdentityProvider.token={token}",
                ],
                cwd=ROOT,
                env=env or {},
                log_path=log_dir / "jupyter.log",
                ready_url=f"{base}/api/status?token={token}",
                timeout=120,
            )
        )
        yield RunningLab(base, token)


@pytest.fixture
def make_lab():
    """running_make_lab(log_dir, env=None): a context manager giving the base URL and token."""
    return running_make_lab
