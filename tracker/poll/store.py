"""Writing what a poll found: events, page snapshots, shipment state and the poll log, one
transaction per batch. A batch commits whole or not at all, so a killed run loses only polls whose
shipments are still due, and they are polled again by the next run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlite_utils

from tracker.db import next_seq
from tracker.events import insert_events
from tracker.poll.schedule import next_poll
from tracker.timeutil import DUE_AT_ONCE, to_db

SHIPMENT_COLUMNS = (
    "tracking_number", "carrier", "state", "last_status", "first_seen_at", "next_poll_at", "last_event_at",
    "delivered_seen_at", "consecutive_failures", "not_found_count",
)

# when two events share a time, the later stage wins
_STATUS_RANK = {s: i for i, s in enumerate((
    "unknown", "not_found", "info_received", "in_transit", "exception", "available_for_pickup",
    "out_for_delivery", "delivery_failed", "returned", "delivered"))}


@dataclass
class Snapshot:
    sha256: str
    body: bytes  # zlib-compressed
    size: int
    content_type: str
    url: str
    http_status: int


@dataclass
class PollResult:
    """One fetch of one shipment, ready to be written."""

    shipment: dict[str, Any]
    carrier: str
    host: str
    started_at: str
    duration_ms: int
    outcome: str
    http_status: int | None = None
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    last_mile_number: str | None = None
    snapshot: Snapshot | None = None
    retry_after: float | None = None
    dropped: int = 0  # undated rows left out of an otherwise good page


def latest(events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The status and time of the newest event."""
    if not events:
        return None, None
    newest = max(events, key=lambda e: (e["occurred_at"], _STATUS_RANK.get(e["status"], 0)))
    return newest["status"], newest["occurred_at"]


def write_batch(db: sqlite_utils.Database, results: list[PollResult], now: datetime, cfg: dict[str, Any],
                meta: dict[str, str | None] | None = None) -> dict[str, int]:
    """Write a batch in one transaction; return events added per tracking number."""
    conn = db.conn
    added: dict[str, int] = {}
    keep = int(cfg["run"].get("snapshots_per_shipment", 3))
    ingested = to_db(now)
    changed: set[str] = set()
    with conn:
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        for r in results:
            tn = r.shipment["tracking_number"]
            sha = r.snapshot.sha256 if r.snapshot else None
            if r.snapshot:
                s = r.snapshot
                cur = conn.execute(
                    "INSERT OR IGNORE INTO page_snapshots (sha256, tracking_number, carrier, url, fetched_at, "
                    "http_status, content_type, size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (s.sha256, tn, r.carrier, s.url, r.started_at, s.http_status, s.content_type, s.size, s.body),
                )
                if cur.rowcount:
                    conn.execute(
                        "DELETE FROM page_snapshots WHERE tracking_number = ? AND sha256 NOT IN (SELECT sha256 "
                        "FROM page_snapshots WHERE tracking_number = ? ORDER BY fetched_at DESC, rowid DESC LIMIT ?)",
                        (tn, tn, keep),
                    )
            n = 0
            if r.events:
                n = insert_events(db, [
                    {**e, "source": "poll", "snapshot_sha256": sha, "ingested_at": ingested} for e in r.events
                ])
            added[tn] = n
            status, event_at = latest(r.events)
            update = next_poll(r.shipment, r.outcome, now, cfg, latest_status=status, latest_event_at=event_at,
                               retry_after=r.retry_after)
            if r.error is not None or r.outcome not in ("ok", "not_found"):
                update["last_error"] = (r.error or r.outcome)[:500]
            if r.last_mile_number:
                update["last_mile_number"] = r.last_mile_number
            if n or update.get("last_status") != r.shipment.get("last_status"):
                changed.add(tn)
            conn.execute(
                f"UPDATE shipments SET {', '.join(f'{k} = ?' for k in update)} WHERE tracking_number = ?",
                [*update.values(), tn],
            )
        conn.executemany(
            "INSERT INTO poll_log (tracking_number, carrier, host, started_at, http_status, duration_ms, outcome, "
            "error, events_added, snapshot_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.shipment["tracking_number"], r.carrier, r.host, r.started_at, r.http_status, r.duration_ms,
              r.outcome, r.error, added[r.shipment["tracking_number"]], r.snapshot.sha256 if r.snapshot else None)
             for r in results],
        )
        if changed:
            # the orders behind changed shipments are what `detect` looks at next
            seq = next_seq(db, 1)
            conn.executemany("UPDATE orders SET seq = ? WHERE tracking_number = ?", [(seq, tn) for tn in changed])
        for key, value in (meta or {}).items():
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", [key])
            else:
                conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                             "value = excluded.value", [key, value])
    return added


def seed_shipments(db: sqlite_utils.Database, now: datetime, patterns: dict[str, str] | None = None) -> int:
    """Give every order's tracking number a shipments row (importers normally do; this makes poll robust).
    `patterns`: the configured carriers' number patterns, so a number only they know is guessed as theirs."""
    from detectors.tracking_numbers import guess_carrier

    conn = db.conn
    rows = conn.execute(
        "SELECT o.tracking_number, MAX(o.carrier), MIN(COALESCE(o.shipped_at, o.ordered_at)) FROM orders o "
        "WHERE o.tracking_number IS NOT NULL AND o.tracking_number != '' AND NOT EXISTS "
        "(SELECT 1 FROM shipments s WHERE s.tracking_number = o.tracking_number) GROUP BY o.tracking_number"
    ).fetchall()
    with conn:
        conn.executemany(
            "INSERT OR IGNORE INTO shipments (tracking_number, carrier, state, first_seen_at, next_poll_at) "
            "VALUES (?, ?, 'pending', ?, ?)",
            [(tn, carrier or guess_carrier(tn, patterns), first, DUE_AT_ONCE) for tn, carrier, first in rows],
        )
        # a due row must have a time to sort by
        conn.execute("UPDATE shipments SET next_poll_at = ? WHERE next_poll_at IS NULL "
                     "AND state NOT IN ('done', 'retired', 'invalid')", [DUE_AT_ONCE])
    return len(rows)


def breaker_meta_key(carrier: str) -> str:
    return f"poll.breaker.{carrier}"
