"""The dispute timeline of a case: opened, escalated, closed, complaint, decision, outcome, coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils

from tracker.cases.settings import load_settings
from tracker.cases.status import get_case, record_event
from tracker.cases.sync import refresh_deadlines
from tracker.errors import BadInput
from tracker.search_index import fold_pending
from tracker.timeutil import normalize_time, now, to_db

# the case column each `tracker case update` option writes, in the order things happen
TIMELINE = {
    "dispute_opened_at": "--dispute-opened",
    "dispute_escalated_at": "--escalated",
    "dispute_closed_at": "--dispute-closed",
    "complaint_submitted_at": "--complaint-submitted",
    "decision_at": "--decision",
    "coupon_issued_at": "--coupon-issued",
}
OTHER = {"outcome": "--outcome", "coupon_value": "--coupon-value"}

# (earlier, later): a timeline that runs backwards is a typo, not a fact
_ORDER = [
    ("dispute_opened_at", "dispute_escalated_at"),
    ("dispute_opened_at", "dispute_closed_at"),
    ("dispute_closed_at", "complaint_submitted_at"),
    ("complaint_submitted_at", "decision_at"),
    ("decision_at", "coupon_issued_at"),
]


CLEAR = object()  # a value meaning "forget what was recorded" (a correction), audited like any change


def option_column(option: str) -> str | None:
    """The case column behind an option name ('escalated' or '--escalated'); None if there is none."""
    name = "--" + option.lstrip("-")
    return next((col for col, opt in {**TIMELINE, **OTHER}.items() if opt == name), None)


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    problems: list[str] = []
    out: dict[str, Any] = {}
    for column, value in changes.items():
        if value is None:
            continue
        if value is CLEAR:
            if column in TIMELINE or column in OTHER:
                out[column] = None
            else:
                problems.append(f"{column}: not part of a case's dispute timeline")
            continue
        if column in TIMELINE:
            try:
                out[column] = normalize_time(str(value))
            except ValueError as exc:
                problems.append(f"{TIMELINE[column]}: {exc}")
        elif column == "outcome":
            if value not in settings.outcomes:
                problems.append(f"--outcome: {value!r} is not an outcome; valid: {', '.join(settings.outcomes)}")
            else:
                out[column] = value
        elif column == "coupon_value":
            try:
                amount = float(value)
            except (TypeError, ValueError):
                amount = -1.0
            if amount < 0:
                problems.append(f"--coupon-value: {value!r} is not a non-negative amount")
            else:
                out[column] = amount
        else:
            problems.append(f"{column}: not part of a case's dispute timeline")
    if problems:
        raise BadInput(problems)
    return out


def update_case(
    db: sqlite_utils.Database,
    case_id: int | str,
    changes: dict[str, Any],
    *,
    actor: str,
    note: str | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Record dispute-timeline facts on a case (audited), then recompute its deadlines.

    `changes` maps case columns (dispute_opened_at, …, outcome, coupon_value) to user values; times are
    ISO 8601 text; the value CLEAR erases a recorded one. Unknown case, bad time, unknown outcome or a timeline running backwards → BadInput.
    """
    values = _checked(changes)
    as_of = as_of or now()
    with db.conn:
        case = get_case(db, case_id)
        merged = {**case, **values}
        problems = [
            f"{TIMELINE[later]}: {merged[later]} is before {TIMELINE[earlier].lstrip('-')} {merged[earlier]}"
            for earlier, later in _ORDER
            if merged.get(earlier) and merged.get(later) and merged[later] < merged[earlier]
        ]
        if problems:
            raise BadInput([f"case {case['id']}: {p}" for p in problems])
        changed = {col: [case[col], val] for col, val in values.items() if case[col] != val}
        if not changed:
            return case
        assignments = ", ".join(f"{col} = ?" for col in changed)
        db.conn.execute(
            f"UPDATE cases SET {assignments}, updated_at = ? WHERE id = ?",
            [*(new for _, new in changed.values()), to_db(as_of), case["id"]],
        )
        record_event(db, case["id"], kind="update", actor=actor, at=to_db(as_of), note=note, data=changed)
        refresh_deadlines(db, case["id"], as_of)
        fold_pending(db.conn)  # the outcome is searched
    return get_case(db, case["id"])
