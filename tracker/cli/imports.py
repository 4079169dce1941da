"""`tracker import orders|events|messages FILE`."""

from __future__ import annotations

import click

from tracker.cli.app import cli, open_store
from tracker.errors import BadInput


@cli.group("import")
def import_group() -> None:
    """Import orders, tracking events or chat messages (CSV or JSON Lines; '-' = stdin CSV)."""


def _import(ctx: click.Context, kind: str, file: str, skip_invalid: str | None, as_of: str | None) -> None:
    from tracker.importers import import_file
    from tracker.timeutil import resolve_as_of

    try:
        now = resolve_as_of(as_of)
    except ValueError:
        raise BadInput(f"--as-of {as_of!r}: not an ISO 8601 date or datetime") from None
    db = open_store(ctx)
    try:
        result = import_file(db, kind, file, skip_invalid=skip_invalid, now=now)
    finally:
        db.close()
    click.echo(result.line())


_skip = click.option(
    "--skip-invalid",
    "skip_invalid",
    metavar="REJECTS_FILE",
    default=None,
    help="Import the good rows and write the rejected ones, with reasons, to REJECTS_FILE.",
)
_as_of = click.option(
    "--as-of",
    "as_of",
    metavar="T",
    default=None,
    help="The time of the run (ISO 8601; default now): times more than a day after it are refused.",
)


@import_group.command("orders")
@click.argument("file")
@_skip
@_as_of
@click.pass_context
def import_orders(ctx: click.Context, file: str, skip_invalid: str | None, as_of: str | None) -> None:
    """Import orders; key order_id, re-importing an order updates it.

    FILE is .csv (comma or semicolon, with or without a BOM), .jsonl/.ndjson, or '-' for CSV on stdin.
    Required columns: order_id, buyer_id, seller_id, ordered_at, dest_country. Atomic: one bad row and
    nothing is written, unless --skip-invalid is given.
    """
    _import(ctx, "orders", file, skip_invalid, as_of)


@import_group.command("events")
@click.argument("file")
@_skip
@_as_of
@click.pass_context
def import_events(ctx: click.Context, file: str, skip_invalid: str | None, as_of: str | None) -> None:
    """Import tracking events obtained elsewhere (aggregator export, webhook dump).

    Required columns: tracking_number, occurred_at, and description when status is empty (the status
    is then derived from it). Identical scans are stored once.
    """
    _import(ctx, "events", file, skip_invalid, as_of)


@import_group.command("messages")
@click.argument("file")
@_skip
@_as_of
@click.pass_context
def import_messages(ctx: click.Context, file: str, skip_invalid: str | None, as_of: str | None) -> None:
    """Import buyer-seller chat messages.

    Columns: order_id, sender (seller or buyer), sent_at, text. Identical messages are stored once.
    """
    _import(ctx, "messages", file, skip_invalid, as_of)
