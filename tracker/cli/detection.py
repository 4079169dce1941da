"""`tracker detect`, `tracker flags`, `tracker validate`."""

from __future__ import annotations

import json
from typing import Any

import click

from tracker.cli.app import cli, open_store
from tracker.cli.output import emit_rows, format_option
from tracker.errors import BadInput

FLAG_COLUMNS = ["order_id", "code", "severity", "explanation", "evidence", "detected_at", "rule_version"]
VALIDATE_COLUMNS = ["number", "valid", "formats", "carrier", "check_digit", "country", "dest_zip", "reason"]


def parse_as_of(as_of: str | None):  # noqa: ANN201
    from tracker.timeutil import resolve_as_of

    try:
        return resolve_as_of(as_of)
    except ValueError as exc:
        raise BadInput(f"--as-of {as_of!r}: not an ISO 8601 date or datetime ({exc})") from exc


@cli.command()
@click.option("--as-of", "as_of", metavar="T", help="Fix 'now' (ISO 8601) for reproducible runs.")
@click.option("--full", is_flag=True, help="Re-examine every order, not only what changed.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: this process; dask: the same detectors on a Dask cluster over the Parquet mirror "
                   "(needs pip install 'tracker[dask]').")
@click.option("--scheduler", metavar="ADDR",
              help="With --engine dask: the Dask scheduler (e.g. tcp://10.0.0.5:8786); default a LocalCluster "
                   "of worker processes on this machine.")
@click.option("--parquet", metavar="DEST",
              help="With --engine dask: the Parquet mirror to bring up to date and read (a folder or URL the "
                   "workers reach); default a folder beside the store (data/tracker.parquet).")
@click.pass_context
def detect(ctx: click.Context, as_of: str | None, full: bool, engine: str, scheduler: str | None,
           parquet: str | None) -> None:
    """Run the rules and the classifier; update flags, scores and cases.

    Only orders whose data changed since the last run (and the orders sharing their tracking numbers) are
    examined, unless --full. With --engine dask every order is examined on the cluster, with the same
    answer; flags and scores are merged into the store in one transaction.
    """
    if engine == "local" and (scheduler or parquet):
        raise BadInput("--scheduler and --parquet go with --engine dask")
    when = parse_as_of(as_of)
    db = open_store(ctx)
    if engine == "dask":
        from tracker.detection.cluster import detect as run_detect_on_cluster

        summary = run_detect_on_cluster(db, when, scheduler=scheduler, parquet=parquet)
    else:
        from tracker.detection.pipeline import detect as run_detect

        summary = run_detect(db, when, full=full)
    click.echo(summary.line())


def active_flags(db) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every active flag, most severe first, as plain rows (evidence decoded)."""
    rank = "CASE severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END"
    rows = []
    for r in db.conn.execute(
        f"SELECT {', '.join(FLAG_COLUMNS)} FROM flags WHERE resolved_at IS NULL ORDER BY {rank}, order_id, code"
    ):
        row = dict(zip(FLAG_COLUMNS, r, strict=True))
        try:
            row["evidence"] = json.loads(row["evidence"] or "{}")
        except ValueError:
            pass
        rows.append(row)
    return rows


@cli.command()
@format_option
@click.pass_context
def flags(ctx: click.Context, fmt: str) -> None:
    """Every active flag: order_id, code, severity, explanation, evidence, detected_at, rule_version."""
    rows = active_flags(open_store(ctx, create=False))
    if fmt != "json":
        rows = [{**r, "evidence": json.dumps(r["evidence"], sort_keys=True, ensure_ascii=False)} for r in rows]
    emit_rows(rows, FLAG_COLUMNS, fmt, max_width=80)


def validation_rows(numbers: list[str], carrier_patterns: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per number: the verdict (valid yes / no / unknown), the formats it has the shape of, the carrier, the
    check digit, the issuing country or destination ZIP, and why it is not valid."""
    from detectors.tracking_numbers import validate

    rows = []
    for text in numbers:
        v = validate(text, carrier_patterns)
        best = v.best
        if best is None:
            check = ""
        elif best.check_digit_ok is None:
            check = "none"
        else:
            check = "ok" if best.check_digit_ok else "fails"
        zip_code = best.dest_zip if best and best.dest_zip else ""
        if zip_code and best.dest_zip4:
            zip_code = f"{zip_code}-{best.dest_zip4}"
        rows.append({
            "number": v.number or text,
            "valid": {"valid": "yes", "invalid": "no"}.get(v.verdict, "unknown"),
            "formats": ",".join(m.format for m in v.matches) or "none",
            "carrier": best.carrier if best and v.verdict != "unknown" else "",
            "check_digit": check,
            "country": best.country if best and best.country else "",
            "dest_zip": zip_code,
            "reason": v.reason(),
        })
    return rows


@cli.command()
@click.argument("numbers", nargs=-1, required=True)
@format_option
def validate(numbers: tuple[str, ...], fmt: str) -> None:
    """Say, per number, whether it is valid (yes), invalid (no) or of no known format (unknown), with the
    format and carrier.

    A number is invalid when its shape claims a known format (S10, UPS 1Z, USPS IMpb, ...) and it fails
    that format's check digit, issuing country or service rule; a number matching a configured carrier
    file's number_pattern is recognised by that carrier. Exit status 2 when any number is invalid (not for
    unknown ones).
    """
    from tracker.carrier_files import declared_number_patterns  # the files alone: no adapter is imported

    rows = validation_rows(list(numbers), declared_number_patterns())
    emit_rows(rows, VALIDATE_COLUMNS, fmt)
    bad = [r for r in rows if r["valid"] == "no"]
    if bad:
        raise BadInput([f"{r['number']}: invalid tracking number: {r['reason']}" for r in bad])
