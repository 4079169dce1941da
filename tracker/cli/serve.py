"""`tracker serve`: the Datasette dashboard."""

from __future__ import annotations

import click

from tracker.cli.app import cli, open_store


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@click.option("--public-read", "public_read", is_flag=True,
              help="Let visitors read without signing in (buyers pseudonymised, no SQL); prints a warning.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, public_read: bool) -> None:
    """The Datasette dashboard: My Reports, case pages, charts and search.

    Everything needs sign-in: the one-time link it prints, or a password account (set
    TRACKER_DASHBOARD_PASSWORD_HASH from 'datasette hash-password'; the user is 'tracker' or
    $TRACKER_DASHBOARD_USER). Signed-in users may change a case's status (the same transition rules and
    history as 'tracker case set-status'). --public-read lets visitors read, with every buyer shown only
    as a pseudonym. Set TRACKER_DASHBOARD_SECRET to keep sign-ins across restarts. Answers only to the
    host names 127.0.0.1, localhost, the --host value and data/dashboard.toml's allowed_hosts.
    """
    from tracker.dashboard.server import serve as run_dashboard

    open_store(ctx).close()  # create or migrate first: the dashboard relies on the search tables and indexes
    run_dashboard(ctx.find_root().obj["db_path"], host=host, port=port, public_read=public_read, echo=click.echo)
