"""The test workers' share of the machine (tests/machine_share.py): units up to the capacity,
first come first served, and the units of a worker that is gone freed."""

import subprocess
import threading

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
