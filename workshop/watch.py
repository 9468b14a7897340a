"""`workshop watch NN`: re-run the lab's checks each time you save one of its files.

What runs on a save: the check of the step you are on (the first checked step that has
not passed), because that is the feedback you wait for; when it passes, the rest of the
lab's checks (its other steps and its regression checks) run right after, so a fix that
broke an earlier step shows up at once. Results go to the progress file, never to your
files. After a failure it prints the hint that the failure named, as `workshop hint`
would; `workshop hint NN` walks on to the next one.

Saves are grouped: watchfiles gathers the changes while a check runs and hands them
over as one batch afterwards, so any number of saves during a run (or in one burst)
make exactly one re-run. The loop is testable without a cluster: the runner (a
`run_checks`-like function) and the source of change batches are injectable, and a
`threading.Event` stops it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import watchfiles
from rich.console import Console
from rich.markup import escape

from workshop import progress
from workshop.check_report import named_hint_text, progress_line, regression_verdict
from workshop.checking import CheckRun, run_checks
from workshop.curriculum import Lab
from workshop.room import client as room_client

Runner = Callable[[Lab, Path, "list[str] | None"], CheckRun]
Batch = set[tuple[watchfiles.Change, str]]

DEBOUNCE_MS = 400  # an editor's save is often several writes (a temp file, a rename): one batch


def quiet_runner(lab: Lab, files_dir: Path, select: list[str] | None) -> CheckRun:
    """The checks in a subprocess with pytest's own output hidden: watch prints its summary."""
    return run_checks(lab, files_dir, select=select, quiet=True)


class Watcher:
    def __init__(
        self,
        lab: Lab,
        files_dir: Path,
        runner: Runner = quiet_runner,
        console: Console | None = None,
        stop_event: threading.Event | None = None,
        changes: Iterable[Batch] | None = None,
        progress_path: Path | None = None,
        debounce_ms: int = DEBOUNCE_MS,
    ):
        self.lab = lab
        self.files_dir = files_dir.resolve()
        self.runner = runner
        self.console = console or Console()
        self.stop_event = stop_event or threading.Event()
        self._changes = changes
        self.progress_path = progress_path
        self.debounce_ms = debounce_ms
        self.runs = 0  # check cycles started, one per batch of relevant saves
        self.noticed = 0  # changes the file watcher reported, watched or not (tests wait for the first)
        self.watched = {(self.files_dir / name).resolve() for name in lab.edit}

    # -- which saves count ---------------------------------------------------------
    def is_edit_file(self, path: str) -> bool:
        return Path(path).resolve() in self.watched

    def relevant(self, batch: Batch) -> list[str]:
        """The lab's edit files among a batch of changes (a deleted file counts: editors
        save by writing a new file over the old one)."""
        saved = {Path(path).resolve() for _, path in batch if self.is_edit_file(path)}
        return sorted(path.relative_to(self.files_dir).as_posix() for path in saved)

    def _notice(self, _change: watchfiles.Change, path: str) -> bool:
        self.noticed += 1
        return self.is_edit_file(path)

    def batches(self) -> Iterator[Batch]:
        if self._changes is not None:
            yield from self._changes
            return
        folders = sorted({path.parent for path in self.watched if path.parent.is_dir()})
        yield from watchfiles.watch(
            *folders,
            watch_filter=self._notice,
            debounce=self.debounce_ms,
            stop_event=self.stop_event,
            recursive=False,  # each edit file's own folder; not checks/ or __pycache__/
            rust_timeout=1000,  # wake up at least every second to see the stop event
            raise_interrupt=True,
        )

    # -- the loop ------------------------------------------------------------------
    def run(self) -> None:
        self.console.print(progress_line(self.lab, progress.load(self.progress_path)))
        for batch in self.batches():
            if self.stop_event.is_set():
                break
            saved = self.relevant(batch)
            if saved:
                self.runs += 1
                self.console.print(f"[bold]saved {', '.join(saved)}[/bold]: checking...")
                self.check_once()

    def check_once(self) -> CheckRun:
        """The current step's check; when it passes, the lab's other checks (its other
        steps' and its regression checks)."""
        data = progress.load(self.progress_path)
        unfinished = [s for s in self.lab.checked_steps if progress.step_status(data, self.lab, s.id) != "passed"]
        current = unfinished[0] if unfinished else None
        if current is None:
            run = self._run(None)
        else:
            run = self._run([current.check])
            rest = [s.check for s in self.lab.checked_steps if s != current] + [r.check for r in self.lab.regressions]
            if run.returncode == 0 and rest:
                self.console.print(f"{current.id} passed: running the lab's other checks...")
                run = self._run(rest)
        data = progress.load(self.progress_path)
        if run.blocked:
            self.console.print(f"[red]error:[/red] {escape(run.blocked)}: no check ran (no cluster was started)")
            return run
        self.console.print(progress_line(self.lab, data))
        self.show_hint(run)
        return run

    def _run(self, select: list[str] | None) -> CheckRun:
        run = self.runner(self.lab, self.files_dir, select)
        if run.blocked:
            progress.record_blocked(self.lab, run.blocked, self.progress_path)
        else:
            progress.record_results(self.lab, run, self.progress_path)
            room_client.report(self.lab, run)  # to the facilitator's room, if joined; never waits for it
        return run

    def show_hint(self, run: CheckRun) -> None:
        data = progress.load(self.progress_path)
        for regression in self.lab.regressions:
            verdict = regression_verdict(self.lab, regression, run.step_outcome(regression.check_name), data)
            if verdict:
                self.console.print(f"[red]{escape(verdict)}[/red]")
                named = run.failure_of(regression.check_name)
                if named:
                    self.console.print("  " + escape(named_hint_text(named, self.lab)), highlight=False)
        failed = [s for s in self.lab.checked_steps if run.step_outcome(s.check_name) == "failed"]
        if not failed:
            if run.returncode == 0:
                self.console.print("[green]all checks passed[/green]")
            return
        step = failed[0]
        named = run.failure_of(step.check_name)
        if named and named.get("lab", self.lab.code) == self.lab.code:
            shown = progress.next_hint(self.lab, named["step"], self.progress_path)  # marks it as shown
            if shown.seen is not None:
                self.console.print(escape(named_hint_text(named, self.lab)), highlight=False)
        else:
            self.console.print(
                f"{step.id} failed without naming a hint (an error?): "
                f"`workshop check {self.lab.code} --step {step.id}` shows the whole output."
            )
        self.console.print(f"More hints: workshop hint {self.lab.code}")
