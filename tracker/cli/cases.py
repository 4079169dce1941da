"""`tracker cases`, `tracker case ...`, `tracker export`."""

from __future__ import annotations

import getpass
import json
import os

import click

from tracker.cli.app import cli, open_store
from tracker.cli.output import emit_rows, format_option
from tracker.errors import BadInput

as_of_option = click.option("--as-of", "as_of", metavar="T", help="Fix 'now' (ISO 8601) for reproducible runs.")

LIST_COLUMNS = ["id", "order_id", "status", "category", "reason", "score", "flags",
                "next_deadline_at", "next_deadline_name"]
JSON_COLUMNS = ["id", "order_id", "status", "status_label", "filter", "category", "category_label", "reason",
                "reason_label", "score", "flags", "next_deadline_at", "next_deadline_name", "opened_at", "updated_at"]


def _as_of(text: str | None):  # noqa: ANN202
    from tracker.timeutil import resolve_as_of

    try:
        return resolve_as_of(text)
    except ValueError:
        raise BadInput(f"--as-of {text!r}: not an ISO 8601 date or datetime") from None


def _store(ctx: click.Context):  # noqa: ANN202
    """The existing store, brought up to date (the case tables come from a migration)."""
    from tracker.migrations import migrate

    db = open_store(ctx, create=False)
    migrate(db)
    return db


def _actor() -> str:
    """Who is acting: $TRACKER_ACTOR, else the OS user."""
    actor = os.environ.get("TRACKER_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (some containers)
        return "unknown"


@cli.command("cases")
@click.option("--status", metavar="S", help="Only cases with this status (new, to_report, pending, ...).")
@click.option("--category", metavar="C", help="Only cases of this report category (trade_rules, ipr, ...).")
@click.option("--due-within", "due_within", metavar="N[d|h]",
              help="Only cases with a deadline within this window (3d, 12h), most urgent first.")
@as_of_option
@format_option
@click.pass_context
def cases_cmd(ctx: click.Context, status: str | None, category: str | None, due_within: str | None,
              as_of: str | None, fmt: str) -> None:
    """Cases, filtered like My Reports."""
    from tracker.cases.queries import list_cases, parse_window

    window = parse_window(due_within) if due_within is not None else None
    when = _as_of(as_of)
    db = _store(ctx)
    rows = list_cases(db, status=status, category=category, due_within=window, as_of=when)
    emit_rows(rows, JSON_COLUMNS if fmt != "table" else LIST_COLUMNS, fmt)


@cli.group()
def case() -> None:
    """One case: show it, change its status, record its dispute timeline."""


@case.command("show")
@click.argument("case_id")
@as_of_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@click.pass_context
def case_show(ctx: click.Context, case_id: str, as_of: str | None, fmt: str) -> None:
    """Show one case: order, flags, score reasons, deadlines, dispute timeline, history."""
    from tracker.cases.queries import case_detail
    from tracker.cases.render import render_case

    when = _as_of(as_of)
    detail = case_detail(_store(ctx), case_id, as_of=when)
    if fmt == "json":
        click.echo(json.dumps(detail, indent=2, default=str))
    else:
        click.echo(render_case(detail), nl=False)


@case.command("set-status")
@click.argument("case_id")
@click.argument("status")
@click.option("--note", metavar="TEXT", help="Why; kept in the case history.")
@click.pass_context
def case_set_status(ctx: click.Context, case_id: str, status: str, note: str | None) -> None:
    """Change a case's status (audited). The actor is $TRACKER_ACTOR or the OS user."""
    from tracker.cases import set_status

    updated = set_status(_store(ctx), case_id, status, actor=_actor(), note=note)
    click.echo(f"case {updated['id']}: {status}")


@case.command("update")
@click.argument("case_id")
@click.option("--dispute-opened", metavar="T", help="When the dispute was opened.")
@click.option("--escalated", metavar="T", help="When the dispute was escalated to mediation.")
@click.option("--dispute-closed", metavar="T", help="When the dispute was closed.")
@click.option("--complaint-submitted", metavar="T", help="When the complaint against the result was submitted.")
@click.option("--decision", metavar="T", help="When the complaint was decided (View results).")
@click.option("--outcome", metavar="O", help="upheld, rejected, full_refund, partial_refund, no_refund, ...")
@click.option("--coupon-value", metavar="X", help="Value of the compensation coupons.")
@click.option("--coupon-issued", metavar="T", help="When the coupons arrived.")
@click.option("--clear", "clear", metavar="FIELD", multiple=True,
              help="Erase a recorded value, e.g. --clear escalated (a correction; audited). Repeatable.")
@click.option("--note", metavar="TEXT", help="Kept in the case history.")
@as_of_option
@click.pass_context
def case_update(ctx: click.Context, case_id: str, dispute_opened: str | None, escalated: str | None,
                dispute_closed: str | None, complaint_submitted: str | None, decision: str | None,
                outcome: str | None, coupon_value: str | None, coupon_issued: str | None,
                clear: tuple[str, ...], note: str | None, as_of: str | None) -> None:
    """Record the dispute timeline of a case (audited); deadlines follow from it."""
    from tracker.cases.timeline import CLEAR, OTHER, TIMELINE, option_column, update_case

    changes = {
        "dispute_opened_at": dispute_opened, "dispute_escalated_at": escalated,
        "dispute_closed_at": dispute_closed, "complaint_submitted_at": complaint_submitted,
        "decision_at": decision, "outcome": outcome, "coupon_value": coupon_value,
        "coupon_issued_at": coupon_issued,
    }
    for name in clear:
        column = option_column(name)
        if column is None:
            valid = ", ".join(o.lstrip("-") for o in [*TIMELINE.values(), *OTHER.values()])
            raise BadInput(f"--clear {name!r}: not a recorded field; valid: {valid}")
        if changes[column] is not None:
            raise BadInput(f"--clear {name!r}: cannot both set and clear {column}")
        changes[column] = CLEAR
    if all(v is None for v in changes.values()):
        raise BadInput("case update: nothing to record; give at least one of the options (see --help)")
    when = _as_of(as_of)
    updated = update_case(_store(ctx), case_id, changes, actor=_actor(), note=note, as_of=when)
    nxt = (f"; next deadline {updated['next_deadline_name']} at {updated['next_deadline_at']}"
           if updated["next_deadline_at"] else "; no deadline ahead")
    click.echo(f"case {updated['id']}: updated{nxt}")


@cli.command()
@click.argument("case_id")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@as_of_option
@click.pass_context
def export(ctx: click.Context, case_id: str, out_dir: str, force: bool, as_of: str | None) -> None:
    """Write the complaint packet for one case: complaint.txt, evidence, timeline picture, manifest."""
    from tracker.cases.export import export_case

    when = _as_of(as_of)
    manifest = export_case(_store(ctx), case_id, out_dir, force=force, as_of=when)
    written = ", ".join([*manifest["files"], "manifest.json"])
    click.echo(f"{out_dir}: complaint packet for case {manifest['case_id']}: {written}")
