"""`tracker serve`: the Datasette dashboard."""

from __future__ import annotations

import click

from tracker.cli.app import cli, open_store


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """The Datasette dashboard: My Reports, case pages, charts and search.

    Prints the address and a one-time sign-in link; signed-in users may change a case's status (the
    same transition rules and history as 'tracker case set-status'). Set
    TRACKER_DASHBOARD_PASSWORD_HASH (from 'datasette hash-password') for a password sign-in as
    'tracker' (or $TRACKER_DASHBOARD_USER), and TRACKER_DASHBOARD_SECRET to keep sign-ins across restarts.
    """
    from tracker.dashboard.server import serve as run_dashboard

    open_store(ctx).close()  # create or migrate first: the dashboard relies on the search tables and indexes
    run_dashboard(ctx.find_root().obj["db_path"], host=host, port=port, echo=click.echo)
