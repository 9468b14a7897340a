"""The test workers' share of the machine (tests/machine_share.py): units up to the capacity,
first come first served, and the units of a worker that is gone freed."""

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest
from machine_share import MachineShare


@pytest.fixture
def pids():
    """Live processes to stand for test workers (a share belongs to a process)."""
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(4)]
    yield [s.pid for s in sleepers]
    for sleeper in sleepers:
        sleeper.kill()
        sleeper.wait()


def in_background(share: MachineShare, units: int) -> threading.Thread:
    thread = threading.Thread(target=share.acquire, args=(units,), daemon=True)
    thread.start()
    return thread


def wait_until_queued(share: MachineShare, thread: threading.Thread) -> None:
    for _ in range(200):
        if share.me in share.waiting():
            return
        thread.join(0.05)
    raise AssertionError(f"{share.me} never queued")


def test_a_bigger_share_waits_for_room_and_is_not_overtaken(tmp_path, pids):
    a, b, big, small = (MachineShare(tmp_path, capacity=3, pid=pid) for pid in pids)
    a.acquire(1)
    b.acquire(1)
    waiting_big = in_background(big, 2)
    wait_until_queued(big, waiting_big)
    # one unit is free, but the bigger share asked first: the small one queues behind it
    waiting_small = in_background(small, 1)
    wait_until_queued(small, waiting_small)
    assert big.waiting() == [big.me, small.me] and big.held() == small.held() == 0

    a.release()
    waiting_big.join(10)
    assert big.held() == 2 and small.waiting() == [small.me]
    big.release()
    waiting_small.join(10)
    assert small.held() == 1 and small.waiting() == []


def test_the_units_of_a_worker_that_is_gone_are_freed(tmp_path, pids):
    gone = MachineShare(tmp_path, capacity=3, pid=pids[0])
    gone.acquire(2)
    psutil.Process(pids[0]).kill()
    psutil.Process(pids[0]).wait(10)
    waiting = in_background(MachineShare(tmp_path, capacity=3, pid=pids[1]), 3)
    waiting.join(10)
    assert not waiting.is_alive() and MachineShare(tmp_path, capacity=3, pid=pids[1]).held() == 3


def test_a_share_never_asks_for_more_than_the_machine(tmp_path, pids):
    share = MachineShare(tmp_path, capacity=2, pid=pids[0])
    share.acquire(5)
    assert share.held() == 2


def test_two_workers_run_the_cpu_tests_first_each_a_chain_of_equal_cost(tmp_path):
    """Through pytest-xdist with this suite's conftest: the `cpu` tests go to two workers (two
    chains, by the rolling updates each drives), which start on them before anything else; the
    others share out the rest."""
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import os
            from pathlib import Path
            import pytest

            def record(name):
                with open(Path(__file__).parent / "order.txt", "a") as out:
                    out.write(f"{os.environ['PYTEST_XDIST_WORKER']} {name}\\n")

            @pytest.mark.parametrize("i", range(6))
            def test_other(i):
                record(f"other-{i}")

            @pytest.mark.cpu
            @pytest.mark.parametrize("i", range(3))
            def test_heavy(i):
                record(f"cpu-{i}")

            @pytest.mark.cpu(rollouts=3)
            def test_heaviest():
                record("cpu-heaviest")
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    cpu: heavy\n")
    # a session of its own (this one's markers would have it count our workers as left behind)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKSHOP_", "PYTEST_XDIST"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "3", "-p", "conftest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line.split() for line in (tmp_path / "order.txt").read_text().splitlines()]
    assert len(lines) == 10, lines
    chains = {}
    for worker, name in lines:
        if name.startswith("cpu"):
            chains.setdefault(worker, []).append(name)
    # the heaviest (3 rolling updates) alone, the three of one each together
    assert sorted(chains.values()) == [["cpu-0", "cpu-1", "cpu-2"], ["cpu-heaviest"]], lines
    for worker in chains:
        first_of_that_worker = next(name for w, name in lines if w == worker)
        assert first_of_that_worker.startswith("cpu"), lines
