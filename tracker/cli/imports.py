"""`tracker import orders|events|messages FILE`."""

from __future__ import annotations

import click

from tracker.cli import cli
from tracker.errors import RunFailure


@cli.group("import")
def import_group() -> None:
    """Import orders, tracking events or chat messages (CSV or JSON Lines; '-' = stdin CSV)."""


def _import(ctx: click.Context, kind: str, file: str, skip_invalid: str | None) -> None:
    raise RunFailure(f"import {kind} is not built yet")


_skip = click.option(
    "--skip-invalid",
    "skip_invalid",
    metavar="REJECTS_FILE",
    default=None,
    help="Import the good rows and write the rejected ones, with reasons, to REJECTS_FILE.",
)


@import_group.command("orders")
@click.argument("file")
@_skip
@click.pass_context
def import_orders(ctx: click.Context, file: str, skip_invalid: str | None) -> None:
    """Import orders; key order_id, re-importing an order updates it."""
    _import(ctx, "orders", file, skip_invalid)


@import_group.command("events")
@click.argument("file")
@_skip
@click.pass_context
def import_events(ctx: click.Context, file: str, skip_invalid: str | None) -> None:
    """Import tracking events obtained elsewhere (aggregator export, webhook dump)."""
    _import(ctx, "events", file, skip_invalid)


@import_group.command("messages")
@click.argument("file")
@_skip
@click.pass_context
def import_messages(ctx: click.Context, file: str, skip_invalid: str | None) -> None:
    """Import buyer-seller chat messages."""
    _import(ctx, "messages", file, skip_invalid)
