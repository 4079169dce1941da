"""A person's status decisions: transitions as data, every change audited in `case_events`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlite_utils

from tracker.cases.settings import load_settings
from tracker.errors import BadInput
from tracker.timeutil import normalize_time, now, to_db

# SQLite's largest integer: a longer number cannot be a case id (and would overflow the query's parameter)
MAX_CASE_ID = 2**63 - 1


def case_id_of(value: int | str) -> int:
    """A case id from user text ('12' or '#12'); bad input otherwise."""
    text = str(value).strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        raise BadInput(f"case {value!r}: not a case id (a number; see 'tracker cases')")
    if len(text) > 19 or not 0 < int(text) <= MAX_CASE_ID:
        shown = text if len(text) <= 30 else text[:29] + "…"
        raise BadInput(f"case {shown}: no such case (case ids run from 1 to {MAX_CASE_ID}; see 'tracker cases')")
    return int(text)


def get_case(db: sqlite_utils.Database, case_id: int | str) -> dict[str, Any]:
    """The case row as a dict; an unknown id is bad input."""
    cid = case_id_of(case_id)
    cursor = db.conn.execute("SELECT * FROM cases WHERE id = ?", [cid])
    row = cursor.fetchone()
    if row is None:
        raise BadInput(f"case {cid}: no such case (see 'tracker cases')")
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def record_event(
    db: sqlite_utils.Database,
    case_id: int,
    *,
    kind: str,
    actor: str,
    at: str,
    from_status: str | None = None,
    to_status: str | None = None,
    note: str | None = None,
    data: dict | None = None,
) -> None:
    """One line of a case's history. Caller owns the transaction."""
    db.conn.execute(
        "INSERT INTO case_events(case_id, at, actor, kind, from_status, to_status, note, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [case_id, at, actor, kind, from_status, to_status, note,
         json.dumps(data, sort_keys=True) if data is not None else None],
    )


def allowed_next(status: str) -> tuple[str, ...]:
    settings = load_settings()
    return settings.statuses[status].next if status in settings.statuses else ()


def set_status(
    db: sqlite_utils.Database,
    case_id: int | str,
    status: str,
    *,
    actor: str,
    note: str | None = None,
    at: datetime | str | None = None,
) -> dict[str, Any]:
    """Move a case to `status` if the transition is allowed; record who, when, from, to and why.

    Raises BadInput (exit 2) for an unknown case, an unknown status or a refused transition (the
    message lists the allowed ones). Returns the updated case row. Commits its own transaction.
    """
    settings = load_settings()
    settings.check_status(status)
    if not actor or not str(actor).strip():
        raise BadInput("actor: required (who changes the status)")
    if isinstance(at, str):
        try:
            when = normalize_time(at)
        except ValueError as exc:
            raise BadInput(f"at: {exc}") from None
    else:
        when = to_db(at or now())
    with db.conn:
        case = get_case(db, case_id)
        current = case["status"]
        if current == status:
            raise BadInput(f"case {case['id']}: already {status!r}")
        allowed = allowed_next(current)
        if status not in allowed:
            kind = "a terminal status" if current in settings.statuses and settings.statuses[current].terminal else None
            options = ", ".join(allowed) if allowed else "none"
            raise BadInput(
                f"case {case['id']}: cannot go from {current!r} to {status!r}"
                + (f" ({current!r} is {kind})" if kind else "")
                + f"; allowed: {options}"
            )
        db.conn.execute(
            "UPDATE cases SET status = ?, status_set_by_person = 1, updated_at = ? WHERE id = ?",
            [status, when, case["id"]],
        )
        record_event(db, case["id"], kind="status", actor=str(actor), at=when,
                     from_status=current, to_status=status, note=note)
    return get_case(db, case["id"])
