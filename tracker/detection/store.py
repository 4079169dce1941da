"""Reading the store for detection through this process's connection (sqlite3): the SQL side of the readers.

Scopes are explicit: a set of order ids or tracking numbers travels as one JSON parameter, read back by
SQLite's `json_each` (no temporary table carries state from one call to the next). Times become Julian
days in SQLite (`julianday`), text stays plain Python objects.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors import facts

FETCH_ROWS = 100_000


def as_json(values: Iterable[Any]) -> str:
    """Values as one JSON array parameter, for `IN (SELECT value FROM json_each(?))`."""
    return json.dumps([v for v in values if v is not None], ensure_ascii=False)


def as_sorted_json(values: Iterable[Any]) -> str:
    """`as_json` in key order, for a loop of lookups driven by the list (`json_each(?) j CROSS JOIN ...`): it then
    walks the index in order and reads each page once, where a random order reads a page per value."""
    return as_json(sorted(v for v in values if v is not None))


def frame(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """A query's rows as a frame, fetched in slices so a million rows never sit twice in memory.

    Text columns are plain object columns: pandas 3's default string dtype is several times slower for
    the per-value work rules do.
    """
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    parts = []
    while True:
        rows = cur.fetchmany(FETCH_ROWS)
        if not rows:
            break
        parts.append(pd.DataFrame.from_records(rows, columns=names))
        del rows
    if not parts:
        out = pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    else:
        out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for col in out.columns:
        if isinstance(out[col].dtype, pd.StringDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def query(conn: sqlite3.Connection, sql: str, columns: list[str], params: Sequence[Any] = ()) -> pd.DataFrame:
    """Rows as a frame with plain object text columns: pandas 3's default string dtype is several times slower
    for the comparisons, maps and factorisations the features make over a million orders."""
    rows = conn.execute(sql, params).fetchall()
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    del rows
    out = {}
    for name, column in zip(columns, values, strict=True):
        array = np.array(column, dtype=object)
        # numbers become int64 (float64 with NaN when some are missing), as from_records would type them
        numeric = len(array) and pd.api.types.infer_dtype(array, skipna=True) in ("integer", "floating",
                                                                                 "mixed-integer-float")
        out[name] = pd.to_numeric(array) if numeric else pd.Series(array, dtype=object)
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------ events

# the definition reads a description only where the scan has no raw code (see detectors.facts)
EVENT_FACTS_SQL = """SELECT id, tracking_number, occurred_at, status, raw_code,
    CASE WHEN raw_code IS NULL OR raw_code = '' THEN description END, country, city, postcode FROM tracking_events"""


def event_columns(conn: sqlite3.Connection, numbers: Iterable[str] | None = None, *,
                  ids: tuple[int, int] | None = None) -> dict[str, Any]:
    """Events as the columns `detectors.facts` reads: those of these numbers, or with ids in [low, high). Text is
    coded and times read as the child readers do it (`arrow.event_columns`), from the same Arrow arrays."""
    import pyarrow as pa

    from tracker.detection import arrow

    if numbers is not None:
        sql, params = f"{EVENT_FACTS_SQL} WHERE tracking_number IN (SELECT value FROM json_each(?))", \
            [as_json(set(numbers))]
    else:
        low, high = ids or (0, 1 << 62)
        sql, params = f"{EVENT_FACTS_SQL} WHERE id >= ? AND id < ?", [low, high]
    rows = conn.execute(sql, params).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 9
    del rows
    names = ("id", "tracking_number", "occurred_at", "status", "raw_code", "description", "country", "city",
             "postcode")
    table = pa.table([pa.array(columns[0], pa.int64()), *(_text(c) for c in columns[1:])], names=list(names))
    return arrow.event_columns(table)


def _text(values: Sequence[Any]) -> Any:
    """Values of a text column as Arrow text (a number SQLite kept in it as its text)."""
    import pyarrow as pa

    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())


EVENT_DETAIL_COLUMNS = ("id", "tracking_number", "occurred_at", "status", "raw_code", "description", "location",
                        "city", "postcode", "country", "snapshot_sha256")


def event_records(conn: sqlite3.Connection, tracking_numbers: Iterable[str]) -> list[dict[str, Any]]:
    """Every event of these numbers (for the few orders a rule flags), ordered by number and time, as plain
    dicts straight from the cursor (a frame's to_dict costs several times more)."""
    numbers = sorted(set(tracking_numbers))
    if not numbers:
        return []
    cur = conn.execute(
        f"SELECT {', '.join(EVENT_DETAIL_COLUMNS)} FROM tracking_events WHERE tracking_number IN "
        "(SELECT value FROM json_each(?)) ORDER BY tracking_number, occurred_at, id", [as_json(numbers)])
    return [dict(zip(EVENT_DETAIL_COLUMNS, row, strict=True)) for row in cur]


def has_events(conn: sqlite3.Connection, tracking_numbers: Iterable[str]) -> set[str]:
    """Which of these numbers have at least one event."""
    return {r[0] for r in conn.execute(
        "SELECT value FROM json_each(?) WHERE EXISTS (SELECT 1 FROM tracking_events e WHERE "
        "e.tracking_number = value)", [as_json(set(tracking_numbers))])}


# ------------------------------------------------------------------------------------------------ orders

def orders_per_number(conn: sqlite3.Connection, tracking_numbers: Iterable[str]) -> dict[str, int]:
    """How many orders (in the whole store) carry each of these numbers."""
    return dict(conn.execute(
        "SELECT tracking_number, count(*) FROM orders WHERE tracking_number IN (SELECT value FROM json_each(?)) "
        "GROUP BY tracking_number", [as_json(set(tracking_numbers))]).fetchall())


def numbers_of(conn: sqlite3.Connection, order_ids: Iterable[str]) -> set[str]:
    """The tracking numbers of these orders."""
    return {r[0] for r in conn.execute(
        "SELECT o.tracking_number FROM json_each(?) j CROSS JOIN orders o ON o.order_id = j.value "
        "WHERE coalesce(o.tracking_number, '') <> ''", [as_sorted_json(order_ids)])}


def seller_messages(conn: sqlite3.Connection, order_ids: Iterable[str] | None) -> pd.DataFrame:
    """Seller messages of these orders (every order's when None): id, order_id, sent_jd, text, in no particular
    order (the rule that reads them orders what it reports; sorting a million orders' messages cost half the
    read)."""
    scope, params = ("AND order_id IN (SELECT value FROM json_each(?))", [as_json(order_ids)]) \
        if order_ids is not None else ("", [])
    return frame(conn, "SELECT id, order_id, julianday(sent_at) AS sent_jd, text FROM messages "
                       f"WHERE lower(sender) = 'seller' {scope}", params)


def latest_seller_messages(conn: sqlite3.Connection, order_ids: Iterable[str]) -> pd.DataFrame:
    """Seller messages of these orders, newest first: id, order_id, text (where chats correct a number)."""
    return frame(conn, "SELECT m.id, m.order_id, m.text FROM json_each(?) j CROSS JOIN messages m "
                       "ON m.order_id = j.value WHERE lower(m.sender) = 'seller' ORDER BY m.sent_at DESC, m.id DESC",
                 [as_sorted_json(order_ids)])


def disputes(conn: sqlite3.Connection, order_ids: Iterable[str] | None) -> pd.DataFrame:
    """When a dispute was opened on these orders (from their cases): order_id, dispute_jd."""
    scope, params = ("AND order_id IN (SELECT value FROM json_each(?))", [as_json(order_ids)]) \
        if order_ids is not None else ("", [])
    return frame(conn, "SELECT order_id, julianday(dispute_opened_at) AS dispute_jd FROM cases "
                       f"WHERE dispute_opened_at IS NOT NULL {scope}", params)


def read_facts(conn: sqlite3.Connection, tracking_numbers: Iterable[str]) -> pd.DataFrame:
    """The stored facts of these numbers: tracking_number, then every fact."""
    return frame(conn, f"SELECT tracking_number, {', '.join(facts.FACT_COLUMNS)} FROM shipment_facts "
                       "WHERE tracking_number IN (SELECT value FROM json_each(?))", [as_json(set(tracking_numbers))])
