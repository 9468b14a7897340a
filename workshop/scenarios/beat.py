"""Lab 04: the shelve file on each beat's disk (celery beat's default scheduler keeps its state
there), what a beat does with a damaged one, and `workshop demo 04`: two beats side by side,
then two kinds of damaged schedule file.
"""

from __future__ import annotations

import re
from pathlib import Path

from workshop.scenarios.beat_ticks import BEATS, read_log, sends, watch
from workshop.topology import Cluster
from workshop.waiting import wait_until

SCHEDULE_FILE = "celerybeat-schedule"


def schedule_files(cluster: Cluster) -> list[str]:
    """Schedule files on the beats' local disks (shelve may add .db, .dat, .dir...)."""
    return sorted(
        str(path.relative_to(cluster.run_dir))
        for name in BEATS
        for path in (cluster.run_dir / name).glob(f"{SCHEDULE_FILE}*")
    )


def damage_and_restart(cluster: Cluster, beat: str, damage) -> list[str]:
    """Stop `beat`, damage its schedule files with `damage(path)`, start it again, and return
    what its log then says about the file (and, if it exited, whether it exits again)."""
    cluster.stop_procfile_process(beat)
    log = cluster.logs_dir / f"{beat}.log"
    offset = log.stat().st_size
    for path in sorted((cluster.run_dir / beat).glob(f"{SCHEDULE_FILE}*")):
        damage(path)

    def start() -> bool:
        """Start it; True if it is still running once it sent a task (or after 5 s)."""
        process = cluster.start_procfile_process("beat", instance=beat)
        wait_until(
            lambda: not process.running() or "Sending due task" in read_log(log)[offset:],
            f"{beat} to send a task or exit",
            timeout=5,
            interval=0.2,
            raise_on_timeout=False,
        )
        return process.running()

    running = start()
    with open(log, "rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    said = [line for line in lines if re.search(r"Removing corrupted schedule file|raised exception", line)]
    if not running:
        again = "it exited again" if not start() else "this time it ran"
        said.append(f"({beat} exited. Started once more on the same file: {again}.)")
    return said


def garble(path: Path) -> None:
    """Every schedule file overwritten with junk (a disk that lost a write)."""
    path.write_bytes(b"\x00torn write\x00" * 64)


def truncate_data(path: Path) -> None:
    """The data file cut to its first half (a write cut short); the index still points past it."""
    if path.suffix in (".dat", ".db", ""):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def corrupt_schedule_file(cluster: Cluster, beat: str) -> list[str]:
    """A schedule file damaged beyond reading: Celery removes it and starts from scratch."""
    return damage_and_restart(cluster, beat, garble)


def truncate_schedule_file(cluster: Cluster, beat: str) -> list[str]:
    """A schedule file cut short: on Python's dbm.dumb, the beat cannot start at all."""
    return damage_and_restart(cluster, beat, truncate_data)


def demo(lab, files_dir, console, seconds: float = 12) -> None:
    """`workshop demo 04`: two beats side by side, then two kinds of damaged schedule file."""
    from collections import Counter

    with Cluster(lab, files_dir=files_dir, nodes=0) as cluster:
        with console.status(f"two beats, watching the 1 s tick for {seconds:g} s..."):
            wait_until(lambda: sends(cluster), "the first tick", timeout=10, interval=0.2, raise_on_timeout=False)
            seen = watch(cluster, seconds)
        console.print(
            f"{len(seen)} executions of the 1 s tick in {seconds:g} s, sent by {dict(Counter(t.sent_by for t in seen))}"
        )
        console.print(f"schedule files on the beats' local disks: {schedule_files(cluster) or 'none'}")
        if not schedule_files(cluster):
            return
        for beat, damage, what in (
            ("beat-1", corrupt_schedule_file, "overwriting beat-1's schedule files with junk"),
            ("beat-2", truncate_schedule_file, "cutting beat-2's schedule data file in half"),
        ):
            with console.status(f"{what} and restarting it..."):
                said = damage(cluster, beat)
            console.print(f"{beat}'s log after {what.split(' ', 1)[0]} its file:")
            for line in said or ["(nothing about the file)"]:
                console.print(f"  {line}", markup=False, highlight=False)
