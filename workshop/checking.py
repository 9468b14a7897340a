"""Running a lab's checks (pytest, in a subprocess) and the curriculum verification."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from workshop.curriculum import Lab, Regression, find_lab, lint
from workshop.layers import lab_files_dir
from workshop.paths import PYTHON, ROOT


@dataclass
class CheckRun:
    returncode: int
    outcomes: dict[str, str]  # test name -> "passed" / "failed" / "skipped"
    # test name -> {"step", "hint", "seen"}: the hint its failure named, and what it saw
    failures: dict[str, dict] = field(default_factory=dict)

    def step_outcome(self, check_name: str | None) -> str:
        return self.outcomes.get(check_name or "", "not run")

    def failure_of(self, check_name: str | None) -> dict | None:
        return self.failures.get(check_name or "")

    @classmethod
    def from_results(cls, returncode: int, path: Path) -> "CheckRun":
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(returncode, data.get("outcomes", {}), data.get("failures", {}))


def run_checks(
    lab: Lab,
    files_dir: Path,
    select: list[str] | None = None,
    quiet: bool = False,
    earlier_files: dict[str, Path] | None = None,
) -> CheckRun:
    """Run the lab's checks (its steps' and its regression checks) against the editable
    files in `files_dir`; `earlier_files` replaces earlier labs' solutions ({"01": folder})."""
    with tempfile.TemporaryDirectory(prefix="workshop-results-") as scratch:
        results = Path(scratch) / "results.json"
        targets = [str(lab.path / target) for target in select] if select else [str(lab.checks_dir)]
        command = [
            str(PYTHON),
            "-m",
            "pytest",
            *targets,
            "--lab-files",
            str(files_dir),
            "--workshop-results",
            str(results),
            *(f"--earlier-files={code}={folder}" for code, folder in (earlier_files or {}).items()),
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "--tb=short",
            "-q" if not quiet else "-qq",
        ]
        output = subprocess.DEVNULL if quiet else None
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if quiet else None)
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            # pytest got the same Ctrl-C and is stopping its cluster: let it finish,
            # or the cluster's processes would outlive us.
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
        return CheckRun.from_results(returncode, results)


@dataclass
class StepVerdict:
    step_id: str
    starter: str
    solution: str

    @property
    def sound(self) -> bool:
        # a check with teeth: it fails on the starter files and passes on the solution
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
class LabVerification:
    lab: Lab
    problems: list[str]
    steps: list[StepVerdict]
    regressions: list[RegressionVerdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and all(verdict.sound for verdict in self.steps)
            and all(verdict.sound for verdict in self.regressions)
        )


def verify_lab(lab: Lab, quiet: bool = True) -> LabVerification:
    problems = lint(lab)
    if problems:
        return LabVerification(lab, problems, [])
    # One after the other, never side by side: two clusters at once on a small laptop
    # would make the checks' timing depend on the machine's load.
    starter_dir = lab_files_dir(lab, "starter")
    try:
        starter = run_checks(lab, starter_dir, quiet=quiet)
    finally:
        shutil.rmtree(starter_dir, ignore_errors=True)
    solution = run_checks(lab, lab_files_dir(lab, "solution"), quiet=quiet)
    verdicts = [
        StepVerdict(step.id, starter.step_outcome(step.check_name), solution.step_outcome(step.check_name))
        for step in lab.checked_steps
    ]
    regressions = [
        RegressionVerdict(
            regression.key, starter.step_outcome(regression.check_name), solution.step_outcome(regression.check_name)
        )
        for regression in lab.regressions
    ]
    return LabVerification(lab, [], verdicts, regressions)


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
    return run.step_outcome(regression.check_name)
