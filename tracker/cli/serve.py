"""`tracker serve`: the Datasette dashboard."""

from __future__ import annotations

import click

from tracker.cli import cli
from tracker.errors import RunFailure


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """The Datasette dashboard."""
    raise RunFailure("serve is not built yet")
