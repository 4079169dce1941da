"""Reading cases: the My Reports listing and everything about one case."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from tracker.cases.settings import SEVERITY_RANK, load_settings
from tracker.cases.status import get_case
from tracker.db import scored_by
from tracker.errors import BadInput
from tracker.timeutil import to_db

_DURATION = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)


MAX_WINDOW_DAYS = 100 * 365


def parse_window(text: str) -> timedelta:
    """'3d', '12h' or '2w' as a timedelta; anything else is bad input."""
    match = _DURATION.match(text or "")
    if not match:
        raise BadInput(f"--due-within {text!r}: not a duration; write a number and d or h, like 3d or 12h")
    amount, unit = int(match.group(1)), match.group(2).lower()
    hours = amount * {"d": 24, "h": 1, "w": 24 * 7}[unit]
    if hours > MAX_WINDOW_DAYS * 24:  # past this, "now + window" would not be a date at all
        raise BadInput(f"--due-within {text}: longer than {MAX_WINDOW_DAYS // 365} years; give a shorter window")
    return timedelta(hours=hours)


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor]


def list_cases(
    db: sqlite_utils.Database,
    *,
    status: str | None = None,
    category: str | None = None,
    due_within: timedelta | None = None,
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Cases filtered like My Reports (status, category), each with its next deadline at `as_of`.

    With `due_within`, only cases whose status still tracks deadlines and whose next deadline falls
    within that window, most urgent first.
    """
    settings = load_settings()
    if status is not None:
        settings.check_status(status)
    if category is not None:
        settings.check_category(category)
    now_text = to_db(as_of)
    where, params = [], {"now": now_text}
    if status is not None:
        where.append("c.status = :status")
        params["status"] = status
    if category is not None:
        where.append("c.category = :category")
        params["category"] = category
    if due_within is not None:
        tracked = [s.id for s in settings.statuses.values() if s.deadlines]
        where.append(f"c.status IN ({', '.join(':s' + str(i) for i in range(len(tracked)))})" if tracked else "0")
        params.update({f"s{i}": s for i, s in enumerate(tracked)})
        where.append("nd.due_at <= :until")
        params["until"] = to_db(as_of + due_within)
    sql = f"""
        SELECT c.id, c.order_id, c.status, c.category, c.reason, c.score, c.flag_codes,
               nd.due_at AS next_deadline_at, nd.name AS next_deadline_name, c.opened_at, c.updated_at
        FROM cases c
        LEFT JOIN case_deadlines nd ON nd.rowid = (
            SELECT d.rowid FROM case_deadlines d WHERE d.case_id = c.id AND d.due_at > :now
            ORDER BY d.due_at, d.name LIMIT 1)
        {'WHERE ' + ' AND '.join(where) if where else ''}
        ORDER BY {'nd.due_at, c.id' if due_within is not None else 'c.id'}
    """
    rows = _rows(db.conn.execute(sql, params))
    for row in rows:
        st = settings.statuses.get(row["status"])
        row["status_label"] = st.label if st else row["status"]
        row["filter"] = st.filter if st else None
        row["category_label"] = settings.categories.get(row["category"], row["category"])
        row["reason_label"] = settings.reasons[row["reason"]].label if row["reason"] in settings.reasons else None
        row["flags"] = row.pop("flag_codes").split(",") if row["flag_codes"] else []
    return rows


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def case_detail(db: sqlite_utils.Database, case_id: int | str, *, as_of: datetime) -> dict[str, Any]:
    """Everything about one case: the case, its order, flags, score, deadlines, tracking and history."""
    settings = load_settings()
    case = get_case(db, case_id)
    order = next(iter(_rows(db.conn.execute("SELECT * FROM orders WHERE order_id = ?", [case["order_id"]]))), None)
    flags = _rows(db.conn.execute(
        "SELECT code, severity, explanation, evidence, detected_at, rule_version, resolved_at"
        " FROM flags WHERE order_id = ?", [case["order_id"]]))
    for flag in flags:
        flag["evidence"] = _json(flag["evidence"], {})
    flags.sort(key=lambda f: (f["resolved_at"] is not None, -SEVERITY_RANK.get(f["severity"], 0), f["code"]))
    score = next(iter(_rows(db.conn.execute(
        "SELECT score, codes, reasons, model_id, scored_at FROM scores WHERE order_id = ?", [case["order_id"]]))), None)
    if score is not None:
        score["reasons"] = _json(score["reasons"], [])
        score["scored_by"] = scored_by(db.conn, score["model_id"])
    now_text = to_db(as_of)
    deadlines = _rows(db.conn.execute(
        "SELECT name, label, due_at, timer_set FROM case_deadlines WHERE case_id = ? ORDER BY due_at, name",
        [case["id"]]))
    for deadline in deadlines:
        deadline["passed"] = deadline["due_at"] <= now_text
    upcoming = next((d for d in deadlines if not d["passed"]), None)
    events = []
    if order and order.get("tracking_number"):
        events = _rows(db.conn.execute(
            "SELECT id, occurred_at, status, description, location, city, postcode, country, carrier, raw_code"
            " FROM tracking_events WHERE tracking_number = ? ORDER BY occurred_at, id", [order["tracking_number"]]))
    history = _rows(db.conn.execute(
        "SELECT at, actor, kind, from_status, to_status, note, data FROM case_events WHERE case_id = ?"
        " ORDER BY at, id", [case["id"]]))
    for item in history:
        item["data"] = _json(item["data"], None)
    st = settings.statuses.get(case["status"])
    return {
        "case": {
            **case,
            "flags": case["flag_codes"].split(",") if case["flag_codes"] else [],
            "status_label": st.label if st else case["status"],
            "filter": st.filter if st else None,
            "allowed_next": list(st.next) if st else [],
            "category_label": settings.categories.get(case["category"], case["category"]),
            "reason_label": settings.reasons[case["reason"]].label if case["reason"] in settings.reasons else None,
            "next_deadline_at": upcoming["due_at"] if upcoming else None,
            "next_deadline_name": upcoming["name"] if upcoming else None,
        },
        "order": order,
        "flags": flags,
        "score": score,
        "deadlines": deadlines,
        "tracking_events": events,
        "history": history,
    }
