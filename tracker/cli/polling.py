"""`tracker poll`, `tracker run` (the cron line) and `tracker carriers`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from tracker.cli.app import cli, open_store
from tracker.cli.output import emit_rows, format_option
from tracker.errors import BadInput
from tracker.timeutil import resolve_as_of


def _as_of(as_of: str | None) -> datetime:
    try:
        return resolve_as_of(as_of)
    except ValueError as exc:
        raise BadInput(f"--as-of {as_of}: not an ISO 8601 date or datetime") from exc


@contextmanager
def _locked(ctx: click.Context) -> Iterator[bool]:
    """Yield True while holding the run lock; False when another run holds it."""
    from tracker.poll import LockHeld, run_lock

    try:
        with run_lock(ctx.find_root().obj["db_path"]):
            yield True
    except LockHeld as exc:
        click.echo(f"tracker: {exc}; this run exits without polling", err=True)
        yield False


def _poll(ctx: click.Context, now: datetime, limit: int | None, carrier: str | None) -> None:
    import logging

    from tracker.poll import poll as run_poll

    # silence under cron: urllib3 logs each retry as a warning; the summary line reports the outcome
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    db = open_store(ctx)
    if sys.stderr.isatty():
        bars: list = []

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(click.progressbar(length=max(total, 1), label="polling", file=sys.stderr))
                bars[0].__enter__()
            bars[0].update(done - bars[0].pos)

        try:
            summary = run_poll(db, now, limit=limit, carrier=carrier, progress=progress)
        finally:
            if bars:
                bars[0].__exit__(None, None, None)
    else:
        summary = run_poll(db, now, limit=limit, carrier=carrier)
    click.echo(summary.line())


@cli.command()
@click.option("--as-of", "as_of", metavar="T", help="Fix 'now' (ISO 8601) for reproducible runs.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Poll at most N due shipments.")
@click.option("--carrier", metavar="NAME", help="Poll only this carrier.")
@click.pass_context
def poll(ctx: click.Context, as_of: str | None, limit: int | None, carrier: str | None) -> None:
    """Fetch the tracking pages that are due (the cron job).

    Politely: one request at a time per carrier host at the carrier's rate, retries with backoff,
    a circuit breaker per carrier. Silent under cron but for one summary line; a progress bar on a
    terminal. A second overlapping run exits at once (status 0). Set TRACKER_CARRIER_BASE_URL to
    send every carrier's requests to another scheme and host (the local carrier site).
    """
    now = _as_of(as_of)
    with _locked(ctx) as held:
        if held:
            _poll(ctx, now, limit, carrier)


@cli.command()
@click.option("--as-of", "as_of", metavar="T", help="Fix 'now' (ISO 8601) for reproducible runs.")
@click.pass_context
def run(ctx: click.Context, as_of: str | None) -> None:
    """Poll then detect: the one line for cron.

    \b
    */30 * * * * cd /path && .venv/bin/tracker run >> data/cron.log 2>&1
    """
    now = _as_of(as_of)
    with _locked(ctx) as held:
        if not held:
            return
        _poll(ctx, now, None, None)
        from tracker.detection.pipeline import detect

        try:
            summary = detect(open_store(ctx), now)
        except NotImplementedError as exc:
            click.echo(f"detect: skipped ({exc})")
            return
        click.echo(f"detect: {summary.line()}")


@cli.command()
@format_option
def carriers(fmt: str) -> None:
    """List the configured carriers (data/carriers/*.toml and $TRACKER_CONFIG_DIR/carriers)."""
    from tracker.carriers import load_carriers

    rows = [
        {"name": c.name, "label": c.label, "adapter": c.adapter, "url": c.url_for_host(),
         "number_pattern": c.number_pattern.pattern, "rate_per_second": c.rate_per_second, "file": c.source}
        for c in sorted(load_carriers().values(), key=lambda c: c.name)
    ]
    emit_rows(rows, ["name", "label", "adapter", "rate_per_second", "number_pattern", "url", "file"], fmt)
