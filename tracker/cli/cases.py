"""`tracker cases`, `tracker case ...`, `tracker export`."""

from __future__ import annotations

import click

from tracker.cli import cli
from tracker.cli.output import format_option
from tracker.errors import RunFailure


@cli.command("cases")
@click.option("--status", metavar="S", help="Only cases with this status.")
@click.option("--category", metavar="C", help="Only cases of this report category.")
@format_option
@click.pass_context
def cases_cmd(ctx: click.Context, status: str | None, category: str | None, fmt: str) -> None:
    """Cases, filtered like My Reports."""
    raise RunFailure("cases is not built yet")


@cli.group()
def case() -> None:
    """One case: show it or change its status."""


@case.command("show")
@click.argument("case_id")
@click.pass_context
def case_show(ctx: click.Context, case_id: str) -> None:
    """Show one case."""
    raise RunFailure("case show is not built yet")


@case.command("set-status")
@click.argument("case_id")
@click.argument("status")
@click.option("--note", metavar="TEXT", help="Why; kept in the case history.")
@click.pass_context
def case_set_status(ctx: click.Context, case_id: str, status: str, note: str | None) -> None:
    """Change a case's status (audited)."""
    raise RunFailure("case set-status is not built yet")


@cli.command()
@click.argument("case_id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.pass_context
def export(ctx: click.Context, case_id: str, out_dir: str) -> None:
    """Write the complaint packet for one case."""
    raise RunFailure("export is not built yet")
