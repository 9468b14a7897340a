"""Small helpers of the topology that need no cluster: starting several things side by
side in threads (every one finishes before an error is raised), naming the instances of
a Procfile entry listed more than once (beat-1, beat-2), and cutting the end of a logged
traceback down to the lines that say what went wrong."""

from __future__ import annotations

from collections import Counter


def side_by_side(*starts):
    """Run the start functions in threads and return their results in order. Every one
    finishes (or fails) before this returns, so nothing is left starting after an error;
    the first error is raised. A Ctrl-C (or a SIGTERM handled as one) while they run is
    raised at once, without waiting for them: the caller stops what they started, which ends
    their waits (ManagedProcess.start), where waiting first could take a start's whole timeout."""
    from concurrent.futures import ThreadPoolExecutor, wait

    if not starts:
        return []
    pool = ThreadPoolExecutor(max_workers=len(starts))
    futures = [pool.submit(start) for start in starts]
    try:
        wait(futures)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    errors = [future.exception() for future in futures if future.exception()]
    if errors:
        raise errors[0]
    return [future.result() for future in futures]


def procfile_instances(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(instance, entry) pairs: an entry listed twice runs twice, as beat-1 and beat-2."""
    counts = Counter(names)
    seen: Counter[str] = Counter()
    pairs = []
    for name in names:
        seen[name] += 1
        pairs.append((f"{name}-{seen[name]}" if counts[name] > 1 else name, name))
    return pairs


def traceback_end(text: str, lines: int) -> str:
    """The last `lines` lines of the traceback that `text` starts with, up to its error line."""
    block = text.splitlines()
    for index, line in enumerate(block[1:], start=1):
        if line.strip() and not line.startswith((" ", "Traceback", "During handling", "The above exception")):
            block = block[: index + 1]
            break
    return "\n".join(block[-lines:])
