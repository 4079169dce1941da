"""`tracker poll`, `tracker run` (the cron line) and `tracker carriers`."""

from __future__ import annotations

import click

from tracker.cli import cli
from tracker.errors import RunFailure


@cli.command()
@click.option("--as-of", "as_of", metavar="T", help="Fix 'now' (ISO 8601) for reproducible runs.")
@click.option("--limit", type=click.IntRange(min=1), help="Poll at most N due shipments.")
@click.option("--carrier", metavar="NAME", help="Poll only this carrier.")
@click.pass_context
def poll(ctx: click.Context, as_of: str | None, limit: int | None, carrier: str | None) -> None:
    """Fetch the tracking pages that are due (the cron job)."""
    raise RunFailure("poll is not built yet")


@cli.command()
@click.option("--as-of", "as_of", metavar="T", help="Fix 'now' (ISO 8601) for reproducible runs.")
@click.pass_context
def run(ctx: click.Context, as_of: str | None) -> None:
    """Poll then detect: the one line for cron."""
    raise RunFailure("run is not built yet")


@cli.command()
def carriers() -> None:
    """List the configured carriers."""
    raise RunFailure("carriers is not built yet")
