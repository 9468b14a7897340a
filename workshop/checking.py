"""Running a lab's checks (pytest, in a subprocess) and the curriculum verification."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workshop.curriculum import Lab, lint
from workshop.layers import lab_files_dir
from workshop.paths import PYTHON, ROOT


@dataclass
class CheckRun:
    returncode: int
    outcomes: dict[str, str]  # test name -> "passed" / "failed" / "skipped"

    def step_outcome(self, check_name: str | None) -> str:
        return self.outcomes.get(check_name or "", "not run")


def run_checks(lab: Lab, files_dir: Path, select: list[str] | None = None, quiet: bool = False) -> CheckRun:
    """Run the lab's checks against the editable files in `files_dir`."""
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
        return CheckRun(returncode, json.loads(results.read_text()) if results.exists() else {})


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
class LabVerification:
    lab: Lab
    problems: list[str]
    steps: list[StepVerdict]

    @property
    def ok(self) -> bool:
        return not self.problems and all(verdict.sound for verdict in self.steps)


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
    return LabVerification(lab, [], verdicts)
