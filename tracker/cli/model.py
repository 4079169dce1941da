"""`tracker scores`, `tracker train`, `tracker evaluate`."""

from __future__ import annotations

import click

from tracker.cli import cli
from tracker.cli.output import format_option
from tracker.errors import RunFailure


@cli.command()
@format_option
@click.pass_context
def scores(ctx: click.Context, fmt: str) -> None:
    """One row per order with a tracking number: order_id, score (0-1), codes."""
    raise RunFailure("scores is not built yet")


@cli.command()
@click.option("--labels", type=click.Path(dir_okay=False), help="CSV of order_id,fraud (1/0, yes/no).")
@click.pass_context
def train(ctx: click.Context, labels: str | None) -> None:
    """Fit the classifier on labelled orders (without --labels: closed cases' outcomes)."""
    raise RunFailure("train is not built yet")


@cli.command()
@click.option("--labels", type=click.Path(dir_okay=False), help="CSV of order_id,fraud (1/0, yes/no).")
@click.pass_context
def evaluate(ctx: click.Context, labels: str | None) -> None:
    """Print the classifier's quality on held-out labels."""
    raise RunFailure("evaluate is not built yet")
