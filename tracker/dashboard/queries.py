"""What the dashboard's own pages read: plain functions over one sqlite3 connection (Datasette's read thread).

Every query here is bounded by an index: one case, one order, one tracking number, or a LIMIT.
"""

from __future__ import annotations

import json
import math
import sqlite3
import zlib
from typing import Any

from tracker.cases.privacy import pseudonym
from tracker.dashboard.counts import has_case_counts
from tracker.db import scored_by

# Rows shown per section of a case page; a tracking number with more is a story told by the table view.
TIMELINE_LIMIT = 500
CLUSTER_LIMIT = 200


def _rows(conn: sqlite3.Connection, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [name]).fetchone() is not None


def status_counts(conn: sqlite3.Connection, category: str | None) -> dict[str, int]:
    """Cases per status (within one category when given), from the trigger-kept case_counts."""
    table = "case_counts" if has_case_counts(conn) else "(SELECT status, category, 1 AS n FROM cases)"
    where, params = ("WHERE category = ?", [category]) if category else ("", [])
    cursor = conn.execute(f"SELECT status, sum(n) FROM {table} {where} GROUP BY status", params)
    return {status: count for status, count in cursor.fetchall() if count}


def category_counts(conn: sqlite3.Connection) -> dict[str, int]:
    table = "case_counts" if has_case_counts(conn) else "(SELECT status, category, 1 AS n FROM cases)"
    cursor = conn.execute(f"SELECT category, sum(n) FROM {table} GROUP BY category")
    return {category: count for category, count in cursor.fetchall() if count}


def due_next(
    conn: sqlite3.Connection, statuses: list[str], category: str | None, limit: int = 20
) -> list[dict[str, Any]]:
    """The open cases whose next deadline comes first (statuses whose deadlines still count)."""
    if not statuses:
        return []
    marks = ", ".join("?" for _ in statuses)
    where = f"next_deadline_at IS NOT NULL AND status IN ({marks})"
    params: list[Any] = list(statuses)
    if category:
        where += " AND category = ?"
        params.append(category)
    return _rows(
        conn,
        "SELECT id, order_id, status, category, reason, score, next_deadline_at, next_deadline_name "
        f"FROM cases WHERE {where} ORDER BY next_deadline_at LIMIT ?",
        [*params, limit],
    )


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def log_odds(score: float | None) -> float | None:
    """A score's log-odds (what its reasons add up to, with the base), None at exactly 0 or 1."""
    if score is None or not 0.0 < score < 1.0:
        return None
    return math.log(score / (1.0 - score))


def score_reasons(reasons: Any) -> list[str]:
    """The classifier's top reasons as readable lines, whatever shape the scorer stored them in."""
    lines = []
    for reason in reasons if isinstance(reasons, list) else []:
        if isinstance(reason, dict):
            name = reason.get("feature") or reason.get("name") or reason.get("reason") or reason.get("code") or ""
            weight = reason.get("contribution", reason.get("weight", reason.get("value")))
            text = reason.get("explanation") or reason.get("text") or ""
            parts = [str(name)]
            if isinstance(weight, int | float):
                parts.append(f"({weight:+.2f} log-odds)")
            if text:
                parts.append(f"— {text}")
            lines.append(" ".join(p for p in parts if p))
        else:
            lines.append(str(reason))
    return lines


def case_page(conn: sqlite3.Connection, case_id: int, key: bytes) -> dict[str, Any] | None:
    """Everything a case page shows, or None for an unknown case; `key` pseudonymises other buyers."""
    found = _rows(conn, "SELECT * FROM cases WHERE id = ?", [case_id])
    if not found:
        return None
    case = found[0]
    order_rows = _rows(conn, "SELECT * FROM orders WHERE order_id = ?", [case["order_id"]])
    order = order_rows[0] if order_rows else None
    flags = _rows(
        conn,
        "SELECT code, severity, explanation, evidence, detected_at, rule_version, resolved_at "
        "FROM flags WHERE order_id = ? ORDER BY resolved_at IS NOT NULL, "
        "CASE severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, code",
        [case["order_id"]],
    )
    score_rows = _rows(conn, "SELECT * FROM scores WHERE order_id = ?", [case["order_id"]])
    score = score_rows[0] if score_rows else None
    if score is not None:
        score["reason_lines"] = score_reasons(_json(score.get("reasons"), []))
        score["scored_by"] = scored_by(conn, score.get("model_id"))
        score["log_odds"] = log_odds(score["score"])
    tracking_number = (order or {}).get("tracking_number") or None
    events: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    cluster: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []  # the other buyers' identities: only for the visitors' view to hide
    if tracking_number:
        events = _rows(
            conn,
            "SELECT id, occurred_at, status, description, location, country, carrier, raw_code, source, "
            "snapshot_sha256 FROM tracking_events WHERE tracking_number = ? ORDER BY occurred_at, id LIMIT ?",
            [tracking_number, TIMELINE_LIMIT],
        )
        snapshots = _rows(
            conn,
            "SELECT sha256, carrier, url, fetched_at, http_status, content_type, size FROM page_snapshots "
            "WHERE tracking_number = ? ORDER BY fetched_at DESC LIMIT 100",
            [tracking_number],
        )
        own_buyer = order["buyer_id"] if order else None
        # Other buyers appear only as the packet's keyed pseudonyms: the orders are the evidence, not the people.
        for row in _rows(
            conn,
            "SELECT o.order_id, o.buyer_id, o.ordered_at, o.dest_country, o.dest_postcode, o.extra, "
            "c.id AS case_id FROM orders o "
            "LEFT JOIN cases c ON c.order_id = o.order_id WHERE o.tracking_number = ? "
            "ORDER BY o.ordered_at, o.order_id LIMIT ?",
            [tracking_number, CLUSTER_LIMIT],
        ):
            people.append({k: row.pop(k) for k in ("dest_postcode", "extra")} | {"buyer_id": row["buyer_id"]})
            buyer = row.pop("buyer_id")
            row["buyer_hash"] = pseudonym(key, "buyer", str(buyer).strip()) if buyer else ""
            row["same_buyer"] = buyer == own_buyer
            row["this_order"] = row["order_id"] == case["order_id"]
            cluster.append(row)
    deadlines: list[dict[str, Any]] = []
    if _has_table(conn, "case_deadlines"):
        deadlines = _rows(
            conn, "SELECT name, due_at, label FROM case_deadlines WHERE case_id = ? ORDER BY due_at", [case_id]
        )
    history = _rows(
        conn,
        "SELECT at, actor, kind, from_status, to_status, note FROM case_events WHERE case_id = ? ORDER BY at, id",
        [case_id],
    )
    messages = _rows(
        conn,
        "SELECT sender, sent_at, text FROM messages WHERE order_id = ? ORDER BY sent_at, id LIMIT 200",
        [case["order_id"]],
    )
    return {
        "case": case,
        "order": order,
        "flags": flags,
        "score": score,
        "tracking_number": tracking_number,
        "events": events,
        "snapshots": snapshots,
        "cluster": cluster if len(cluster) > 1 else [],
        "deadlines": deadlines,
        "history": history,
        "chat": messages,
        "people": people,
    }


def snapshot_body(conn: sqlite3.Connection, sha256: str) -> tuple[dict[str, Any], str] | None:
    """A stored carrier page as text (decompressed), with its row; None when unknown."""
    found = _rows(
        conn,
        "SELECT sha256, tracking_number, carrier, url, fetched_at, http_status, content_type, body "
        "FROM page_snapshots WHERE sha256 = ?",
        [sha256],
    )
    if not found:
        return None
    row = found[0]
    body = row.pop("body") or b""
    if isinstance(body, str):
        return row, body
    try:
        raw = zlib.decompress(body)
    except zlib.error:
        raw = bytes(body)  # stored uncompressed
    return row, raw.decode("utf-8", errors="replace")


def _fts_match(query: str) -> str:
    """User words to an FTS5 query: each word quoted (no operators), prefix-matched, all required."""
    words = [w.replace('"', "") for w in query.split()]
    return " ".join(f'"{w}"*' for w in words if w)


def search_queries(query: str, limit: int = 20) -> dict[str, tuple[str, list[Any]]]:
    """Full-text search over cases, orders and messages as (sql, params) per section; empty for no words.

    The caller runs each under Datasette's time limit: a word matching a million orders must not hang.
    Each hit carries its case id when the order has a case.
    """
    match = _fts_match(query)
    if not match:
        return {}
    mark = "snippet({fts}, -1, char(2), char(3), '…', 12)"
    return {
        "cases": (
            f"SELECT c.id AS case_id, c.order_id, c.status, c.category, c.reason, {mark.format(fts='cases_fts')} "
            "AS snippet FROM cases_fts JOIN cases c ON c.rowid = cases_fts.rowid "
            "WHERE cases_fts MATCH ? ORDER BY rank LIMIT ?",
            [match, limit],
        ),
        "orders": (
            f"SELECT o.order_id, o.tracking_number, o.seller_id, o.item_title, c.id AS case_id, "
            f"{mark.format(fts='orders_fts')} AS snippet FROM orders_fts JOIN orders o ON o.rowid = orders_fts.rowid "
            "LEFT JOIN cases c ON c.order_id = o.order_id WHERE orders_fts MATCH ? ORDER BY rank LIMIT ?",
            [match, limit],
        ),
        "messages": (
            f"SELECT m.id, m.order_id, m.sender, m.sent_at, c.id AS case_id, {mark.format(fts='messages_fts')} "
            "AS snippet FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid "
            "LEFT JOIN cases c ON c.order_id = m.order_id WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
            [match, limit],
        ),
    }
