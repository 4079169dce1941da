"""`tracker export-parquet`."""

from __future__ import annotations

import click

from tracker.cli.app import cli, open_store


@cli.command("export-parquet")
@click.argument("dest")
@click.option("--full", is_flag=True, help="Write the whole mirror anew (also the way to change --buckets).")
@click.option("--buckets", type=int, default=None,
              help="Buckets of a new mirror (default: about 25,000 orders each, 8 to 4096).")
@click.pass_context
def export_parquet(ctx: click.Context, dest: str, full: bool, buckets: int | None) -> None:
    """Mirror orders, tracking events, messages, shipments and shipment facts as Parquet in DEST.

    DEST is a folder or an fsspec URL (s3://..., gs://...; needs pip install 'tracker[dask]'). Only what
    changed since the last export is written. Orders, events, shipments and facts are bucketed by a hash
    of the tracking number (a number's orders and scans share a bucket), messages by the same hash of
    their order id; DEST/_tracker_mirror.json, written last, lists the files and the store's change marks.
    """
    from tracker.mirror.export import export

    db = open_store(ctx)
    try:
        summary = export(db, dest, full=full, buckets=buckets)
    finally:
        db.close()
    click.echo(summary.line())
