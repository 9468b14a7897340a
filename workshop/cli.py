"""The `workshop` command: list, start, top, demo, check, watch, hint, solve, reset, verify, doctor."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from typer.core import TyperGroup

from workshop import cli_labs, cli_run
from workshop.cli_common import errors
from workshop.errors import WorkshopError
from workshop.kind.cli import app as kind_app
from workshop.room.cli import app as room_app


class WorkshopGroup(TyperGroup):
    """The one place where an error the workshop explains becomes a message and an exit
    code (as Django's BaseCommand.run_from_argv does with CommandError): a WorkshopError
    raised anywhere below any command, the `kind` and `room` ones included."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WorkshopError as exc:
            errors.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(cls=WorkshopGroup, add_completion=False, no_args_is_help=True, help=__doc__)

# In the order `workshop --help` lists them.
app.command("list")(cli_labs.list_labs)
for command in (
    cli_run.start,
    cli_run.top,
    cli_run.demo,
    cli_run.sweep,
    cli_run.rollout,
    cli_labs.check,
    cli_labs.hint,
    cli_labs.watch,
    cli_labs.solve,
    cli_labs.reset,
    cli_labs.verify,
    cli_run.doctor,
):
    app.command()(command)
app.add_typer(kind_app, name="kind")  # lab 05 part 2: `workshop kind ...`
app.add_typer(room_app, name="room")  # `workshop room ...`: the facilitator's live view


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
