"""Tracking events: the normalised statuses and the one way events enter the store.

Importers and the poller both call `insert_events`, so an event seen twice (a re-import, a re-poll of
the same page, an aggregator export of what we already polled) is stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import sqlite_utils

NORMALISED_STATUSES = (
    "info_received",
    "in_transit",
    "out_for_delivery",
    "available_for_pickup",
    "delivery_failed",
    "delivered",
    "exception",
    "returned",
    "not_found",
    "unknown",
)

# The columns of the contract's events file, in the order files carry them.
CONTRACT_EVENT_COLUMNS = (
    "tracking_number",
    "occurred_at",
    "status",
    "description",
    "location",
    "city",
    "postcode",
    "country",
    "carrier",
    "raw_code",
)

# The stored row: the contract's columns plus where and when we got the scan.
EVENT_COLUMNS = CONTRACT_EVENT_COLUMNS + (
    "source",
    "snapshot_sha256",
    "extra",
    "event_key",
    "ingested_at",
)

# What makes two scans the same scan: not where we got it from, nor when we stored it.
_KEY_FIELDS = ("tracking_number", "occurred_at", "status", "description", "location", "city", "postcode", "country", "raw_code")


def event_key(event: dict[str, Any]) -> str:
    """A stable identity for a scan, from its normalised fields."""
    return key_of_fields("" if event.get(f) is None else str(event.get(f)).strip() for f in _KEY_FIELDS)


def key_of_fields(fields: Iterable[str]) -> str:
    """The key of a scan from its `_KEY_FIELDS` as text, in order ('' where unknown): what `event_key` hashes."""
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()[:32]


def insert_events(db: sqlite_utils.Database, events: Iterable[dict[str, Any]]) -> int:
    """Insert scans not already stored; return how many were new. The caller owns the transaction.

    Each event needs the normalised fields; `event_key` is computed when missing.
    """
    rows = []
    for e in events:
        if not e.get("event_key"):
            e = {**e, "event_key": event_key(e)}
        rows.append(tuple(e.get(c) for c in EVENT_COLUMNS))
    return insert_event_rows(db.conn, rows)


INSERT_EVENT = (f"INSERT OR IGNORE INTO tracking_events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})")


def insert_event_rows(conn: Any, rows: list[tuple[Any, ...]]) -> int:
    """Insert scans given as tuples in `EVENT_COLUMNS` order, key included (the importer builds them so, in
    one pass); return how many were new. The caller owns the transaction."""
    if not rows:
        return 0
    before = conn.total_changes
    conn.executemany(INSERT_EVENT, rows)
    return conn.total_changes - before
