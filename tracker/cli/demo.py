"""`tracker demo`: the whole job on a generated world and a local carrier site."""

from __future__ import annotations

from pathlib import Path

import click

from tracker.cli.app import cli

DEMO_DB = Path("data") / "demo" / "tracker.db"


class _LazyBar:
    """A progress bar that appears with the first progress report and closes before the next message."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label=self.label)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@cli.command()
@click.option("--no-serve", is_flag=True, help="Stop before serving the dashboard.")
@click.option("--orders", "n_orders", default=3000, show_default=True, type=click.IntRange(min=50),
              help="Size of the generated world.")
@click.option("--seed", default=7, show_default=True, type=int, help="World seed.")
@click.option("--port", default=8001, show_default=True, type=int, help="Dashboard port.")
@click.pass_context
def demo(ctx: click.Context, no_serve: bool, n_orders: int, seed: int, port: int) -> None:
    """The whole job on a generated world and a local carrier site, then serve it.

    Generates a world with seeded fraud and its innocent look-alikes, imports it, polls a local carrier
    site on 127.0.0.1, detects, scores, opens cases and writes one complaint packet. Uses
    data/demo/tracker.db unless --db is given (it rebuilds only databases the demo created).
    """
    from tracker.demo import run_demo

    explicit = ctx.find_root().params.get("db_path")
    db_path = Path(explicit) if explicit else DEMO_DB
    bar = _LazyBar("Polling the local carrier site")

    def echo(message: str) -> None:
        bar.close()
        click.echo(message)

    try:
        result = run_demo(db_path, db_path.parent, n_orders=n_orders, seed=seed, echo=echo, progress=bar)
    finally:
        bar.close()
    click.echo("Active flags by code: " + ", ".join(f"{c} {n}" for c, n in result.flags_by_code.items()))
    click.echo("Cases by status: " + ", ".join(f"{s} {n}" for s, n in result.cases_by_status.items()))
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    click.echo(f"Database: {db_path}  ({timings})")
    if no_serve:
        return
    from tracker.dashboard.server import serve as run_dashboard

    run_dashboard(str(db_path), host="127.0.0.1", port=port, echo=click.echo)
