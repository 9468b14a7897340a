"""Lab 04 checks: two beats side by side (beat-1, beat-2: the Procfile's beat line, each with a
disk of its own), a worker (the Procfile's worker line), and the lab's schedule, plus one entry
the checks add, `probe`, every 4 s (workshop/scenarios/beat_probe.py): its period is known, so
a check can restart every beat between two of its runs in seconds.

Each run of record_tick is a row: when it ran, and which process sent it (Celery's origin header
carries the sending process's pid). Each beat's log says when it sent what, and its startup
banner the settings it really runs with, whichever route set them: the messages quote those.
"""

from collections import Counter
from pathlib import Path

import pytest

from workshop.curriculum import load_lab
from workshop.local_writes import describe
from workshop.scenarios.beat import schedule_files
from workshop.scenarios.beat_failover import kill_the_sender
from workshop.scenarios.beat_restart import PROBE, PROBE_SECONDS, probe_layers, restart_across_due
from workshop.scenarios.beat_startup import (
    exited_beats,
    lock_holder,
    procfile_line,
    redbeat_redis_url_setting,
    seconds_text,
    startup_settings,
    worker_runs_a_beat,
)
from workshop.scenarios.beat_ticks import BEATS, EMBEDDED, clock, sends, shortest_gap, utcnow, watch
from workshop.waiting import wait_until

LAB = load_lab(Path(__file__).resolve().parents[1])
CLUSTER_OPTIONS = {"nodes": 0, "extra_env": probe_layers(LAB)}  # a worker and two beats; no web nodes
WINDOW = 4  # seconds of watching the 1 s tick
FIRST_TICKS = 8  # seconds a check waits for ticks to flow
# The longest silence after the sender dies, from its last tick to the next one: the lab's lock
# timeout (5 s) and loop interval (1 s), and a second for the tick itself.
BUDGET = 7


def fail(message: str) -> None:
    """The check fails with its message alone: what it saw, and the hint that fits."""
    pytest.fail(message, pytrace=False)


def senders(items) -> dict[str, int]:
    return dict(sorted(Counter(tick.sent_by for tick in items).items()))


def listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in counts.items()) or "nobody"


def exited_text(exited: dict[str, str]) -> str:
    return "; ".join(f"{name} has exited ({reason})" for name, reason in exited.items())


def lost_its_lock(exited: dict[str, str]) -> bool:
    """A beat stopped because its lock expired under it (RedBeatScheduler.tick's lock.extend)."""
    return any("LockNotOwnedError" in reason for reason in exited.values())


def beat_line(cluster) -> str:
    scheduler = startup_settings(cluster, BEATS[0]).scheduler or "unknown: no startup banner in the beat's log"
    return f"your beat line, run by beat-1 and beat-2: `{procfile_line(cluster, 'beat')}` (scheduler: {scheduler})"


def worker_line(cluster) -> str:
    return f"your worker line starts a beat of its own: `{procfile_line(cluster, 'worker')}`"


def lock_settings(cluster, name: str) -> str:
    banner = startup_settings(cluster, name)
    return (
        f"{name} runs with a lock timeout of {seconds_text(banner.lock_timeout)} and a loop interval of "
        f"{seconds_text(banner.max_interval)} (its startup banner)"
    )


def test_one_beat_sends_each_tick(cluster, failure):
    started = utcnow()
    wait_until(
        lambda: [when for when, _ in sends(cluster) if when >= started],
        "the first tick",
        timeout=FIRST_TICKS,
        interval=0.2,
        raise_on_timeout=False,  # no tick: the window below says what it saw
    )
    window = utcnow()
    redbeat_url = redbeat_redis_url_setting(cluster)  # read while the window runs
    seen = watch(cluster, WINDOW, start=window)
    by_sender, exited = senders(seen), exited_beats(cluster)
    counted = (
        f"in {WINDOW} s the 1 s tick ran {len(seen)} times, sent by {listed(by_sender)} "
        f"(one sender expected, {WINDOW - 2} to {WINDOW + 1} runs)"
    )

    if len(by_sender) > 1:
        counted += f"; the shortest gap between two runs was {shortest_gap(seen)} s"
        if any(name.endswith(EMBEDDED) for name in by_sender):
            fail(failure("redbeat", f"{counted}; {worker_line(cluster)}; {beat_line(cluster)}.", hint=1))
        if lost_its_lock(exited):  # one after the other: a lock that expires between two renewals
            fail(failure("failover", f"{counted}; {exited_text(exited)}; {lock_settings(cluster, BEATS[0])}.", hint=2))
        fail(failure("redbeat", f"{counted}; {beat_line(cluster)}.", hint=0))

    if lost_its_lock(exited):  # a lock that expires between two renewals: the failover step's settings
        fail(failure("failover", f"{counted}; {exited_text(exited)}; {lock_settings(cluster, BEATS[0])}.", hint=2))
    if exited:  # one sender because the other beat is dead is no proof: both must run, one standing by
        redbeat = startup_settings(cluster, BEATS[0]).redbeat
        seen_exited = f"{counted}; {exited_text(exited)}, where both beats must keep running; {beat_line(cluster)}"
        fail(failure("redbeat", seen_exited + ".", hint=4 if redbeat else 0))
    if not WINDOW - 2 <= len(seen) <= WINDOW + 1:
        holder = f"RedBeat's lock is held by {lock_holder(cluster) or 'nobody'}"
        fail(failure("redbeat", f"{counted}; {holder}; {beat_line(cluster)}.", hint=4))

    # what the beats wrote to a local disk, wherever (the audit hook), and schedule files on
    # their own disks (a dbm written by C code is not seen by the hook)
    files = schedule_files(cluster)
    writes = [write for write in cluster.local_writes() if write.machine.startswith("beat")]
    if files or writes:
        found = "; ".join(filter(None, [", ".join(files), describe(writes) if writes else ""]))
        seen_files = f"one process sent the ticks, but the beats keep state on a local disk: {found}"
        fail(failure("redbeat", f"{seen_files}; {beat_line(cluster)}.", hint=3))

    if redbeat_url is None:
        fail(
            failure(
                "redbeat",
                "one beat sends each tick, but RedBeat finds its Redis only by borrowing the broker's URL: the app's "
                "configuration has no redbeat_redis_url (RedBeat 2.4 falls back to broker_url and warns that "
                "version 2.5.0 will not).",
                hint=2,
            )
        )


def test_the_other_beat_takes_over_when_the_leader_dies(cluster, failure):
    failover = kill_the_sender(cluster, wait_seconds=BUDGET + 1, flowing_timeout=FIRST_TICKS)
    before, exited = senders(failover.before), exited_beats(cluster)

    if failover.killed is None:  # nothing to kill: no tick, several senders, or one the harness did not start
        if lost_its_lock(exited):
            ticked = f"the ticks came from {listed(before)}" if before else "no tick ran"
            seen = f"nothing was killed: in the seconds the check waited, {ticked}; {exited_text(exited)}"
            fail(failure("failover", f"{seen}; {lock_settings(cluster, BEATS[0])}.", hint=2))
        if len(before) > 1:
            where = worker_line(cluster) if worker_runs_a_beat(cluster) else beat_line(cluster)
            seen = f"before the kill, the ticks of the last seconds came from {listed(before)}: more than one sends"
            fail(failure("failover", f"{seen}; {where}.", hint=3))
        if before:
            seen = f"the ticks came from {listed(before)}, a process the workshop did not start: it cannot kill it"
            fail(failure("failover", seen + ".", hint=3))
        state = exited_text(exited) or "every beat still runs"
        fail(
            failure(
                "failover",
                f"no tick ran in the {FIRST_TICKS} s the check waited, so nothing was killed; {state}.",
                hint=3,
            )
        )

    gap, after = failover.send_gap_seconds, senders(failover.after)
    if failover.next_send is not None and failover.killed not in after and gap is not None and gap <= BUDGET:
        return
    survivor = next(name for name in BEATS if name != failover.killed)
    banner = startup_settings(cluster, survivor)
    if failover.next_send is None:
        seen = (
            f"{failover.killed} (which sent the last ticks, the last at {clock(failover.last_send)}) was SIGKILLed "
            f"at {clock(failover.killed_at)}; no other process sent a tick in the {failover.waited:.0f} s after "
            f"(this lab asks for the next tick within {BUDGET} s of the last)"
        )
    else:
        seen = (
            f"{failover.killed} (which sent the last ticks) was SIGKILLed; {failover.next_send[1]} sent the next "
            f"tick {gap} s after its last one (this lab asks for at most {BUDGET} s)"
        )
    seen += f"; {lock_settings(cluster, survivor)}"
    if banner.lock_timeout and banner.max_interval:
        seen += (
            f": a waiting beat takes over {banner.lock_timeout:g} to {banner.lock_timeout + banner.max_interval:g} s "
            "after the holder's last renewal"
        )
    if lost_its_lock(exited):
        fail(failure("failover", f"{seen}; {exited_text(exited)}.", hint=2))
    others = {name: reason for name, reason in exited.items() if name != failover.killed}
    if others:  # the beat that should take over is dead already
        fail(failure("failover", f"{seen}; {exited_text(others)}; finish step redbeat first.", hint=3))
    # the lock outlives the budget: its timeout; it expires in time but nobody takes it: the loop interval
    expires_in_time = banner.lock_timeout is not None and banner.lock_timeout < BUDGET
    fail(failure("failover", seen + ".", hint=1 if expires_in_time else 0))


def test_a_restart_neither_reruns_nor_skips_a_due_run(cluster, failure):
    restart = restart_across_due(cluster, PROBE, PROBE_SECONDS)
    if restart.last_send is None:
        exited = exited_beats(cluster)
        seen = (
            f"no process sent the `{PROBE}` entry (every {PROBE_SECONDS} s) in the {PROBE_SECONDS + 4} s before "
            f"the restart; {exited_text(exited) or 'every beat ran'}; finish steps redbeat and failover first"
        )
        fail(failure("state-outlives", seen + ".", hint=0))

    sent = "; ".join(f"{clock(when)} by {who}" for when, who in restart.sent_after) or "never"
    seen = (
        f"the `{PROBE}` entry (every {PROBE_SECONDS} s) was last sent at {clock(restart.last_send[0])} by "
        f"{restart.last_send[1]}; every beat was stopped, it fell due at {clock(restart.due)} while none ran, "
        f"and beat-1 and beat-2 started again on empty disks at {clock(restart.started['beat-1'])} and "
        f"{clock(restart.started['beat-2'])}; until {clock(restart.watched_until)} it was sent: {sent} "
        f"(and ran {len(restart.runs)} time(s))"
    )
    if restart.doubled or restart.unrestarted_senders:
        where = f"; {worker_line(cluster)}" if worker_runs_a_beat(cluster) else ""
        fail(failure("state-outlives", f"{seen}: more than once for one missed run{where}.", hint=1))
    late = restart.late_seconds
    if late is None or late >= PROBE_SECONDS / 2:
        skipped = f"{late:.1f} s after its beat started" if late is not None else "not within a period"
        seen += (
            f": the missed run was skipped, sent {skipped} (a beat that forgot when it last ran sends it "
            f"only {PROBE_SECONDS} s after it starts; one that knows sends it at once)"
        )
        fail(failure("state-outlives", seen + ".", hint=0))
