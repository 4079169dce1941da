"""Builders for the case-tracker tests: orders, events, flags and scores inserted directly."""

from __future__ import annotations

import json
from datetime import datetime

from tracker.timeutil import normalize_time


def add_order(
    db,
    order_id: str,
    *,
    buyer_id: str = "buyer-own",
    ordered_at: str = "2026-03-02T10:00:00Z",
    tracking_number: str | None = None,
    **fields,
) -> None:
    row = {
        "order_id": order_id,
        "buyer_id": buyer_id,
        "seller_id": fields.pop("seller_id", "store-1"),
        "ordered_at": normalize_time(ordered_at),
        "dest_country": fields.pop("dest_country", "DE"),
        "tracking_number": tracking_number,
        **fields,
    }
    for key in ("shipped_at", "buyer_confirmed_at"):
        if row.get(key):
            row[key] = normalize_time(row[key])
    if isinstance(row.get("extra"), dict):
        row["extra"] = json.dumps(row["extra"])
    with db.conn:
        db["orders"].insert(row, replace=True)


def add_flag(
    db,
    order_id: str,
    code: str,
    severity: str = "high",
    explanation: str | None = None,
    evidence: dict | None = None,
    resolved_at: str | None = None,
) -> None:
    with db.conn:
        db.conn.execute(
            "INSERT INTO flags(order_id, code, severity, explanation, evidence, detected_at, rule_version, resolved_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(order_id, code) DO UPDATE SET severity = excluded.severity,"
            " explanation = excluded.explanation, evidence = excluded.evidence, resolved_at = excluded.resolved_at",
            [
                order_id,
                code,
                severity,
                explanation or f"{code} on order {order_id}.",
                json.dumps(evidence or {}),
                "2026-03-10T00:00:00Z",
                "1",
                resolved_at,
            ],
        )


def add_score(db, order_id: str, score: float, codes: str = "", reasons: list | None = None) -> None:
    with db.conn:
        db.conn.execute(
            "INSERT OR REPLACE INTO scores(order_id, score, codes, reasons, model_id, scored_at)"
            " VALUES (?, ?, ?, ?, 'm1', '2026-03-10T00:00:00Z')",
            [order_id, score, codes, json.dumps(reasons or [])],
        )


def add_event(
    db, tracking_number: str, occurred_at: str, status: str, description: str = "", **fields
) -> None:
    with db.conn:
        db.conn.execute(
            "INSERT INTO tracking_events(tracking_number, occurred_at, status, description, location, city,"
            " postcode, country, carrier, raw_code, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                tracking_number,
                normalize_time(occurred_at),
                status,
                description or status,
                fields.get("location"),
                fields.get("city"),
                fields.get("postcode"),
                fields.get("country"),
                fields.get("carrier", "cainiao"),
                fields.get("raw_code"),
                f"{tracking_number}|{occurred_at}|{status}",
            ],
        )


def at(text: str) -> datetime:
    return datetime.fromisoformat(normalize_time(text))


def case_of(db, order_id: str) -> dict:
    cursor = db.conn.execute("SELECT * FROM cases WHERE order_id = ?", [order_id])
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None


def history(db, case_id: int) -> list[dict]:
    cursor = db.conn.execute("SELECT * FROM case_events WHERE case_id = ? ORDER BY id", [case_id])
    return [dict(zip([d[0] for d in cursor.description], r, strict=True)) for r in cursor]
