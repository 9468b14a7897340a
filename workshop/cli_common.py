"""What the `workshop` commands share: the consoles they print to, the lab argument, the
--solution option, and a lab by the name given on the command line."""

from __future__ import annotations

import typer
from rich.console import Console

from workshop.curriculum import Lab, find_lab

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # messages stay one line, easy to copy

LAB_ARG = typer.Argument(..., help="lab number, e.g. 01")
SOLUTION_OPT = typer.Option(False, "--solution", help="use the reference solution instead of your files")


def resolve_lab(name: str) -> Lab:
    return find_lab(name)  # UnknownLab, CurriculumError: BadInput, exit 2


def variant_of(solution: bool) -> str:
    return "solution" if solution else "learner"
