"""`tracker demo`: the whole job on a generated world and a local carrier site."""

from __future__ import annotations

import click

from tracker.cli import cli
from tracker.errors import RunFailure


@cli.command()
@click.option("--no-serve", is_flag=True, help="Stop before serving the dashboard.")
@click.option("--orders", "n_orders", default=3000, show_default=True, type=click.IntRange(min=10))
@click.option("--seed", default=7, show_default=True, type=int, help="World seed.")
@click.pass_context
def demo(ctx: click.Context, no_serve: bool, n_orders: int, seed: int) -> None:
    """The whole job on a generated world and a local carrier site, then serve it."""
    raise RunFailure("demo is not built yet")
