"""One error type for everything the workshop explains in one line.

Raised anywhere, turned into a message and an exit code in one place (workshop.cli.main),
as Django's CommandError and click's ClickException are: exit 2 for bad input or
something missing (nothing was changed), 1 for something that failed while running.
"""


class WorkshopError(Exception):
    exit_code = 1


class BadInput(WorkshopError):
    """An unknown lab, a malformed file, a missing tool: nothing was changed."""

    exit_code = 2
