"""Runs last (file order): every process this test session started is gone."""

import os

import psutil


def test_no_process_of_this_session_is_left_behind():
    session = os.environ["WORKSHOP_TEST_SESSION"]
    me = psutil.Process()
    mine = {me.pid, *(parent.pid for parent in me.parents())}
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid in mine:
            continue
        try:
            if process.environ().get("WORKSHOP_TEST_SESSION") == session:
                left.append((process.pid, " ".join(process.info["cmdline"] or [])[:120]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    assert not left, f"processes left behind: {left}"
