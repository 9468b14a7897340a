"""Running a lab's checks (pytest, in a subprocess) and the curriculum verification."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from workshop.curriculum import Lab, Regression, Variant, find_lab
from workshop.curriculum_lint import lint
from workshop.layers import lab_files_dir, materialize_variant
from workshop.paths import PYTHON, ROOT
from workshop.precheck import LabFileError, precheck_files, precheck_imports
from workshop.processes import descendants, kill_with_descendants
from workshop.waiting import wait_until


@dataclass
class CheckRun:
    returncode: int
    outcomes: dict[str, str]  # test name -> "passed" / "failed" / "skipped"
    # test name -> {"step", "hint", "seen"}: the hint its failure named, and what it saw
    failures: dict[str, dict] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)  # failed test name -> the phase it failed in
    blocked: str | None = None  # a lab file that does not compile or import: no check ran
    errors: dict[str, str] = field(default_factory=dict)  # failed test name -> its message, when it named no hint

    def step_outcome(self, check_name: str | None) -> str:
        return self.outcomes.get(check_name or "", "not run")

    def failure_of(self, check_name: str | None) -> dict | None:
        return self.failures.get(check_name or "")

    def saw(self, check_name: str | None) -> str:
        """What a failed check saw: its failure()'s words, else its plain assertion's message."""
        return (self.failure_of(check_name) or {}).get("seen", "") or self.errors.get(check_name or "", "")

    @classmethod
    def from_results(cls, returncode: int, path: Path) -> "CheckRun":
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(
            returncode,
            data.get("outcomes", {}),
            data.get("failures", {}),
            data.get("phases", {}),
            errors=data.get("errors", {}),
        )

    @classmethod
    def combined(cls, parts: list["CheckRun"]) -> "CheckRun":
        """The runs of one check's modules, side by side, as one run."""
        return cls(
            returncode=max(part.returncode for part in parts),
            outcomes={name: outcome for part in parts for name, outcome in part.outcomes.items()},
            failures={name: failure for part in parts for name, failure in part.failures.items()},
            phases={name: phase for part in parts for name, phase in part.phases.items()},
            errors={name: error for part in parts for name, error in part.errors.items()},
        )

    def failed_in_call(self, check_name: str | None) -> bool:
        """Did this check's own assertion fail (not its setup: a cluster that did not start)?"""
        return self.step_outcome(check_name) == "failed" and self.phases.get(check_name or "") == "call"

    def verdict(self, check_name: str | None) -> str:
        """passed / failed (its assertion) / error in setup / not run, as `verify` reports it."""
        outcome = self.step_outcome(check_name)
        if self.blocked:
            return "blocked: " + self.blocked
        if outcome == "failed" and not self.failed_in_call(check_name):
            return f"error in {self.phases.get(check_name or '', 'setup')}"
        return outcome


def check_groups(lab: Lab, select: list[str] | None = None, side_by_side: bool = True) -> list[list[str]]:
    """The pytest runs of one check, started side by side: one per check module, each with
    the cluster of its own that its module starts, so a lab's regression check (another
    lab's cluster) does not wait for the step checks. A cpu-bound lab's checks stay in one
    run: they share one rehearsal, and its load would time whatever ran beside it. So does
    every check run without `side_by_side`."""
    targets = select or sorted(path.relative_to(lab.path).as_posix() for path in lab.checks_dir.glob("test_*.py"))
    if lab.cpu_bound or not side_by_side:
        return [targets]
    by_module: dict[str, list[str]] = {}
    for target in targets:
        by_module.setdefault(target.split("::")[0], []).append(target)
    return list(by_module.values())


def run_checks(
    lab: Lab,
    files_dir: Path,
    select: list[str] | None = None,
    quiet: bool = False,
    earlier_files: dict[str, Path] | None = None,
) -> CheckRun:
    """Run the lab's checks (its steps' and its regression checks) against the editable
    files in `files_dir`; `earlier_files` replaces earlier labs' solutions ({"01": folder}).
    A lab file that does not compile or import stops it before any cluster starts. The
    first module's output comes as it runs; the others' (run beside it) when it has ended."""
    try:
        modules = precheck_files(lab, files_dir)
        if not quiet:  # the learner's terminal: nothing of pytest's before the one-line answer
            precheck_imports(lab, files_dir, modules, earlier_files)
    except LabFileError as exc:
        return CheckRun(returncode=2, outcomes={}, blocked=str(exc))
    with tempfile.TemporaryDirectory(prefix="workshop-results-") as scratch:
        runs = [
            _start_pytest(lab, files_dir, group, Path(scratch) / f"run-{index}", earlier_files, quiet, live=index == 0)
            # A quiet run (verify, the corpus, watch) runs its modules one after the other: the
            # test suite runs them beside each other and beside a rehearsal, and its share of
            # the machine counts one cluster per test.
            for index, group in enumerate(check_groups(lab, select, side_by_side=not quiet))
        ]
        processes = [process for process, _ in runs]
        try:
            if quiet:  # the imports are tried while pytest starts up, and stop it if one fails
                try:
                    precheck_imports(lab, files_dir, modules, earlier_files)
                except LabFileError as exc:
                    for process in processes:
                        process.terminate()  # torn down as after Ctrl-C (workshop.pytest_plugin)
                    _let_them_stop(runs)
                    return CheckRun(returncode=2, outcomes={}, blocked=str(exc))
            for process in processes:
                process.wait()
        except KeyboardInterrupt:
            # pytest got the same Ctrl-C and is stopping its cluster: let it finish,
            # or the cluster's processes would outlive us.
            _let_them_stop(runs)
            raise
        for _, folder in runs[1:]:
            if not quiet and (folder / "output.txt").exists():
                print((folder / "output.txt").read_text(), end="", flush=True)
        return CheckRun.combined(
            [CheckRun.from_results(process.returncode, folder / "results.json") for process, folder in runs]
        )


def _start_pytest(
    lab: Lab,
    files_dir: Path,
    targets: list[str],
    folder: Path,
    earlier_files: dict[str, Path] | None,
    quiet: bool,
    live: bool,
) -> tuple[subprocess.Popen, Path]:
    """One check run: pytest over `targets`, its results (and its output, unless `live` on
    the terminal) in `folder`."""
    folder.mkdir()
    command = [
        str(PYTHON),
        "-m",
        "pytest",
        *(str(lab.path / target) for target in targets),
        "--lab-files",
        str(files_dir),
        "--workshop-results",
        str(folder / "results.json"),
        "--workshop-stacks",
        str(folder / STACKS_FILE),
        *(f"--earlier-files={code}={path}" for code, path in (earlier_files or {}).items()),
        # Only the plugins a check uses (the others installed cost half a second to load);
        # pytest-django (for the cms tests) stays out: a check drives a real cluster, never
        # Django in-process, and its `client` fixture is the workshop's.
        *("-p", "workshop.pytest_plugin", "-p", "pytest_timeout", "-p", "no:cacheprovider"),
        "--rootdir",
        str(ROOT),
        "--tb=short",
        "-q" if not quiet else "-qq",
    ]
    if quiet:
        output = subprocess.DEVNULL
    else:
        output = None if live else open(folder / "output.txt", "w")
    try:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        )
    finally:
        if output not in (None, subprocess.DEVNULL):
            output.close()  # the child holds its own copy
    return process, folder


STACKS_FILE = "stacks.txt"  # in a run's folder: what its threads were doing, if it had to be asked
STOP_GRACE = 40  # seconds: a cluster stops in a few (side by side, each process within its stop timeout)


def _let_them_stop(runs: list[tuple[subprocess.Popen, Path]], grace: float = STOP_GRACE) -> None:
    """Wait for a check's pytest runs that were told to stop: each stops its cluster first. One
    still running `grace` seconds later is stuck: it is killed with every process it started
    (its cluster's run in sessions of their own, out of reach of its process group), and what
    its threads were doing goes to stderr, for a bug report."""
    deadline = time.monotonic() + grace
    for process, folder in runs:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stacks = folder / STACKS_FILE
            started = descendants(process.pid)  # a run that has not set up its dump yet dies of SIGUSR1
            process.send_signal(signal.SIGUSR1)  # faulthandler writes every thread's stack (pytest_plugin)
            written = lambda path=stacks: path.exists() and path.stat().st_size  # noqa: E731
            gone = lambda run=process: run.poll() is not None  # noqa: E731
            wait_until(written, "its stacks", 5, give_up=gone, raise_on_timeout=False)
            left = kill_with_descendants(process.pid, known=started)
            process.wait()
            print(
                f"A check run (pytest, pid {process.pid}) had not stopped {grace:g} s after it was told to: "
                f"killed it and what it had started ({left} still running). What its threads were doing:\n"
                + (stacks.read_text() if stacks.exists() else "(nothing recorded)"),
                file=sys.stderr,
                flush=True,
            )


@dataclass
class StepVerdict:
    step_id: str
    starter: str  # CheckRun.verdict: "failed" means the check's own assertion failed
    solution: str
    solution_saw: str = ""  # what the check saw when it failed on the solution (the seen of its failure)

    @property
    def sound(self) -> bool:
        # a check with teeth: its own assertion fails on the starter, and it passes on the solution
        return self.starter == "failed" and self.solution == "passed"


@dataclass
class RegressionVerdict:
    """A regression check is not a step: it must pass on the solution (and passes on the
    starter too, since the earlier labs' solutions are underneath). Its teeth, failing
    when the earlier guarantee breaks, are proven by `prove_regression_teeth`."""

    key: str
    starter: str
    solution: str

    @property
    def sound(self) -> bool:
        return self.solution == "passed"


@dataclass
class VariantVerdict:
    """A fix of the corpus on trial. A wrong fix is sound when its step's own check fails
    in its assertion (and names the hint lab.toml expects, if it names one); an
    alternative is sound when every step's check passes."""

    variant: Variant
    outcome: str  # wrong fix: its step's check verdict; alternative: "passed" or the steps that did not
    named_hint: int | None = None  # the hint the failure named (wrong fixes)
    problem: str = ""

    @property
    def sound(self) -> bool:
        return not self.problem


@dataclass
class LabVerification:
    lab: Lab
    problems: list[str]
    steps: list[StepVerdict]
    regressions: list[RegressionVerdict] = field(default_factory=list)
    wrong_fixes: list[VariantVerdict] = field(default_factory=list)
    alternatives: list[VariantVerdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(
            verdict.sound for verdict in [*self.steps, *self.regressions, *self.wrong_fixes, *self.alternatives]
        )


def verify_lab(lab: Lab, quiet: bool = True, corpus: bool = True) -> LabVerification:
    """The starter fails every step (each in its own check's assertion), the solution passes
    them all, every wrong fix of the corpus fails at its step, every alternative passes."""
    problems = lint(lab)
    if problems:
        return LabVerification(lab, problems, [])
    # The starter's checks, then the solution's, never side by side: each run already has
    # a cluster per check module (check_groups), and more at once on a small laptop would
    # make the checks' timing depend on the machine's load.
    starter_dir = lab_files_dir(lab, "starter")
    try:
        starter = run_checks(lab, starter_dir, quiet=quiet)
    finally:
        shutil.rmtree(starter_dir, ignore_errors=True)
    solution = run_checks(lab, lab_files_dir(lab, "solution"), quiet=quiet)
    verdicts = [
        StepVerdict(
            step.id,
            starter.verdict(step.check_name),
            solution.verdict(step.check_name),
            solution.saw(step.check_name),
        )
        for step in lab.checked_steps
    ]
    regressions = [
        RegressionVerdict(
            regression.key, starter.verdict(regression.check_name), solution.verdict(regression.check_name)
        )
        for regression in lab.regressions
    ]
    result = LabVerification(lab, [], verdicts, regressions)
    if corpus:
        result.wrong_fixes = [try_wrong_fix(lab, variant, quiet) for variant in lab.wrong_fixes]
        result.alternatives = [try_alternative(lab, variant, quiet) for variant in lab.alternatives]
    return result


def _run_variant(lab: Lab, variant: Variant, select: list[str] | None, quiet: bool) -> CheckRun:
    folder = materialize_variant(lab, variant)
    try:
        return run_checks(lab, folder, select=select, quiet=quiet)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def try_wrong_fix(lab: Lab, variant: Variant, quiet: bool = True) -> VariantVerdict:
    step = lab.step(variant.step or "")
    run = _run_variant(lab, variant, [step.check], quiet)
    outcome = run.verdict(step.check_name)
    named = run.failure_of(step.check_name) or {}
    named_hint = named.get("hint") if named.get("step") == step.id and named.get("lab", lab.code) == lab.code else None
    problem = ""
    if outcome != "failed":
        saw = run.saw(step.check_name)
        problem = f"step {step.id!r}'s check should fail in its assertion on this wrong fix, but: {outcome}"
        problem += f" ({saw})" if saw else ""
    elif not named:
        problem = f"step {step.id!r}'s check failed without naming a hint (no failure() message)"
    elif variant.hint is not None and (named.get("step"), named_hint) != (step.id, variant.hint):
        problem = (
            f"the failure named step {named.get('step')!r} hint {named.get('hint')}; "
            f"lab.toml expects step {step.id!r} hint {variant.hint}"
        )
    return VariantVerdict(variant, outcome, named_hint, problem)


def try_alternative(lab: Lab, variant: Variant, quiet: bool = True) -> VariantVerdict:
    run = _run_variant(lab, variant, [step.check for step in lab.checked_steps], quiet)
    not_passed = {step.id: run.verdict(step.check_name) for step in lab.checked_steps}
    not_passed = {step_id: verdict for step_id, verdict in not_passed.items() if verdict != "passed"}
    outcome = "passed" if not not_passed else ", ".join(f"{step} {verdict}" for step, verdict in not_passed.items())
    saw = {step.id: run.saw(step.check_name) for step in lab.checked_steps}
    seen = "".join(f"; {step_id} saw: {saw[step_id]}" for step_id in not_passed if saw[step_id])
    problem = f"a right fix by another route must pass every step: {outcome}{seen}" if not_passed else ""
    return VariantVerdict(variant, outcome, None, problem)


def prove_regression_teeth(lab: Lab, regression: Regression, quiet: bool = True) -> str:
    """Run one regression check on the lab's solution with the earlier lab's STARTER files
    in place of its solution (the earlier guarantee broken): its outcome, "failed" if it
    has teeth."""
    earlier = find_lab(regression.lab)
    broken = lab_files_dir(earlier, "starter")
    try:
        run = run_checks(
            lab,
            lab_files_dir(lab, "solution"),
            select=[regression.check],
            quiet=quiet,
            earlier_files={earlier.code: broken},
        )
    finally:
        shutil.rmtree(broken, ignore_errors=True)
    return run.verdict(regression.check_name)
