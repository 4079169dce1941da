"""The narrow, read-only view of the store that rules (and the classifier's features) read.

Everything is computed by SQLite in one aggregation pass per question and handed over as pandas frames,
so that rules are vectorised predicates over one row per order, not Python loops over events.

Times in these frames are **Julian days** (float, UTC; NaN when unknown): subtracting two gives days.
`jd_to_text` turns one back into the store's canonical text.
"""

from __future__ import annotations

import fnmatch
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

# Scans a carrier makes when it handles the parcel (not label creation, not a lookup failure)
PHYSICAL_STATUSES = (
    "in_transit",
    "out_for_delivery",
    "available_for_pickup",
    "delivery_failed",
    "delivered",
    "exception",
    "returned",
)
# the other normalised statuses (the store holds normalised statuses only): three comparisons, not seven
NON_PHYSICAL = ("info_received", "not_found", "unknown")
_JD_UNIX_EPOCH = 2440587.5

SCOPE_ORDERS = "temp.detect_scope_orders"
SCOPE_NUMBERS = "temp.detect_scope_numbers"


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def jd_to_datetime(jd: float) -> datetime | None:
    if jd is None or (isinstance(jd, float) and np.isnan(jd)):
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=round((jd - _JD_UNIX_EPOCH) * 86400))


def jd_to_text(jd: float) -> str:
    """Canonical store text ('2026-09-14T10:00:00Z') of a Julian day, '' when unknown."""
    dt = jd_to_datetime(jd)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else ""


def jd_to_date(jd: float) -> str:
    dt = jd_to_datetime(jd)
    return dt.strftime("%Y-%m-%d") if dt else "?"


def datetime_to_jd(dt: datetime) -> float:
    return dt.timestamp() / 86400 + _JD_UNIX_EPOCH


def set_scope(conn: sqlite3.Connection, order_ids: Iterable[str] | None) -> None:
    """Restrict later `load_*` calls to these orders and their tracking numbers (None: every order).

    The scope lives in two TEMP tables of this connection, so the store itself is never written.
    """
    conn.execute(f"DROP TABLE IF EXISTS {SCOPE_ORDERS}")
    conn.execute(f"DROP TABLE IF EXISTS {SCOPE_NUMBERS}")
    if order_ids is None:
        return
    conn.execute(f"CREATE TABLE {SCOPE_ORDERS} (order_id TEXT PRIMARY KEY)")
    conn.executemany(f"INSERT OR IGNORE INTO {SCOPE_ORDERS} VALUES (?)", ((o,) for o in order_ids))
    _scope_numbers(conn)


def _scope_numbers(conn: sqlite3.Connection) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {SCOPE_NUMBERS}")
    conn.execute(f"CREATE TABLE {SCOPE_NUMBERS} (tracking_number TEXT PRIMARY KEY)")
    conn.execute(
        # CROSS JOIN: the few scoped orders drive the loop (a plain JOIN lets SQLite scan every order)
        f"INSERT OR IGNORE INTO {SCOPE_NUMBERS} SELECT o.tracking_number FROM {SCOPE_ORDERS} s "
        "CROSS JOIN orders o ON o.order_id = s.order_id WHERE o.tracking_number IS NOT NULL "
        "AND o.tracking_number <> ''"
    )


def has_scope(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM temp.sqlite_master WHERE name = 'detect_scope_orders'").fetchone() is not None


FETCH_ROWS = 100_000


def _frame(conn: sqlite3.Connection, sql: str, params: Sequence = (), columns: Sequence[str] | None = None) -> pd.DataFrame:
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
        frame = pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    else:
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.StringDtype):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame if columns is None else frame[list(columns)]


@dataclass(frozen=True)
class ScanKinds:
    """Which scans are which, by raw-code GLOB pattern or normalised status (data/rules.toml [scans])."""

    transit_statuses: tuple[str, ...] = ("in_transit", "out_for_delivery", "available_for_pickup")
    export_codes: tuple[str, ...] = ("CC_EX*",)
    import_codes: tuple[str, ...] = ("CC_IM*",)
    # scans made after export: their country must be the order's
    country_side_codes: tuple[str, ...] = ("CC_IM*", "GTMS_*")
    # scans at the delivery office, out for delivery or delivered: city and postcode must be the order's
    locality_codes: tuple[str, ...] = ("GTMS_DO_*", "GTMS_SIGNED", "GTMS_DEL_FAILURE")
    locality_statuses: tuple[str, ...] = ("out_for_delivery", "available_for_pickup", "delivery_failed", "delivered")

    @classmethod
    def from_settings(cls, settings: dict) -> ScanKinds:
        scans = settings.get("scans", {})
        return cls(**{k: tuple(v) for k, v in scans.items() if k in cls.__dataclass_fields__})

    def _glob(self, patterns: Sequence[str]) -> str:
        """SQL for 'raw_code matches one of these GLOB patterns'; a prefix pattern ('CC_IM*') becomes a range
        comparison, several times cheaper per row than GLOB."""
        terms = []
        for p in patterns:
            p = p.replace("'", "''")
            prefix = p[:-1]
            if p.endswith("*") and prefix and not any(ch in prefix for ch in "*?[]"):
                terms.append(f"(raw_code >= '{prefix}' AND raw_code < '{prefix[:-1]}{chr(ord(prefix[-1]) + 1)}')")
            elif not any(ch in p for ch in "*?[]"):
                terms.append(f"raw_code = '{p}'")
            else:
                terms.append(f"raw_code GLOB '{p}'")
        return "(" + " OR ".join(terms or ["0"]) + ")"

    def locality_sql(self) -> str:
        return f"({self._glob(self.locality_codes)} OR status IN ({_sql_list(self.locality_statuses)}))"

    def country_side_sql(self) -> str:
        """Scans after export that are not destination-office scans (those carry their country already)."""
        return self._glob(self.country_side_codes)

    def is_locality(self, raw_code: str | None, status: str | None) -> bool:
        return status in self.locality_statuses or _matches(raw_code, self.locality_codes)

    def is_country_side(self, raw_code: str | None, status: str | None) -> bool:
        return self.is_locality(raw_code, status) or _matches(raw_code, self.country_side_codes)


@lru_cache(maxsize=8192)
def _matches(raw_code: str | None, patterns: tuple[str, ...]) -> bool:
    # a store holds a few dozen raw codes: each (code, patterns) pair is matched once per process
    return isinstance(raw_code, str) and any(fnmatch.fnmatchcase(raw_code, p) for p in patterns)


def tracking_aggregates_sql(kinds: ScanKinds, where: str = "") -> str:
    """One row per tracking number: counts, first/last times and the destination-side places, packed.

    Places of destination-office scans come as the smallest and largest 'CC|City|Postcode' text: when both
    agree with the order, every scan in between almost surely does (the rule re-checks every scan of a
    candidate). Countries of the other scans after export (import customs, last-mile acceptance) likewise.
    first_event_jd is the earliest event of any kind (rules re-check the details of the few they flag).
    """
    locality = kinds.locality_sql()
    country_side = kinds.country_side_sql()
    place = "coalesce(country, '') || '|' || coalesce(city, '') || '|' || coalesce(postcode, '')"
    return f"""
        SELECT tracking_number,
          count(*) AS n_events,
          sum(status NOT IN ({_sql_list(NON_PHYSICAL)})) AS n_scans,
          sum(status IN ({_sql_list(kinds.transit_statuses)})) AS n_transit,
          sum({kinds._glob(kinds.export_codes)} OR (raw_code IS NULL AND description LIKE '%export%')) AS n_export,
          sum({kinds._glob(kinds.import_codes)} OR (raw_code IS NULL AND description LIKE '%import%')) AS n_import,
          julianday(min(occurred_at)) AS first_event_jd,
          julianday(min(CASE WHEN status NOT IN ({_sql_list(NON_PHYSICAL)}) THEN occurred_at END)) AS first_scan_jd,
          julianday(max(CASE WHEN status NOT IN ({_sql_list(NON_PHYSICAL)}) THEN occurred_at END)) AS last_scan_jd,
          julianday(min(CASE WHEN status = 'delivered' THEN occurred_at END)) AS delivered_jd,
          max(id) AS max_event_id,
          min(CASE WHEN {locality} THEN {place} END) AS locality_min,
          max(CASE WHEN {locality} THEN {place} END) AS locality_max,
          min(CASE WHEN {country_side} THEN country END) AS country_side_min,
          max(CASE WHEN {country_side} THEN country END) AS country_side_max
        FROM tracking_events {where}
        GROUP BY tracking_number
    """


ORDER_COLUMNS = (
    "order_id",
    "buyer_id",
    "seller_id",
    "dest_country",
    "dest_city",
    "dest_postcode",
    "tracking_number",
    "carrier",
    "promised_days",
    "buyer_received",
)
AGGREGATE_COLUMNS = (
    "n_events",
    "n_scans",
    "n_transit",
    "n_export",
    "n_import",
    "first_event_jd",
    "first_scan_jd",
    "last_scan_jd",
    "delivered_jd",
    "max_event_id",
    "locality_min",
    "locality_max",
    "country_side_min",
    "country_side_max",
)


def load_order_frame(conn: sqlite3.Connection, order_ids: Iterable[str] | None = None,
                     kinds: ScanKinds | None = None) -> pd.DataFrame:
    """One row per order with the aggregated facts of its tracking number: the shared input of rules and features.

    `order_ids=None` reads the current scope (see `set_scope`) or, without one, every order. Columns:

    - from `orders`: order_id, buyer_id, seller_id, dest_country, dest_city, dest_postcode, tracking_number,
      carrier, promised_days, buyer_received, and times as Julian days: ordered_jd, shipped_jd, confirmed_jd;
    - from the tracking events of the order's number (0 / NaN / None when it has none): n_events,
      n_scans (physical scans), n_transit (in-transit, out-for-delivery and pickup scans), n_export /
      n_import (export / import customs scans), first_event_jd (earliest event of any kind),
      first_scan_jd / last_scan_jd (earliest / latest physical scan), delivered_jd (first
      delivered scan), max_event_id, locality_min / locality_max (destination-office scans' places packed
      as 'CC|CITY|POSTCODE'), country_side_min / country_side_max (countries of scans after export);
    - from `shipments`: shipment_state, not_found_count;
    - n_orders_on_number: how many orders (in the whole store) carry the same number.

    Rows come in no particular order. A whole-store read of a big store is columnar, in two child processes
    (`detectors.columnar`); a scoped read stays on `conn`. Also used by `RuleContext.orders`, which then
    applies numbers corrected in the chat (`detectors.corrections`).
    """
    if order_ids is not None:
        set_scope(conn, order_ids)
    scoped = has_scope(conn)
    kinds = kinds or ScanKinds()
    if scoped:
        where = f"o.order_id IN (SELECT order_id FROM {SCOPE_ORDERS})"
        frame = pd.concat([
            _frame(conn, order_frame_sql(kinds, where, f"tracking_number IN (SELECT tracking_number FROM {SCOPE_NUMBERS})")),
            _frame(conn, orders_without_events_sql(kinds, where)),
        ], ignore_index=True)
    else:
        frame = _whole_store(conn, kinds)
    numbers = frame["tracking_number"].where(frame["tracking_number"].fillna("") != "", None)
    if scoped:  # the scope may hold only part of a number's orders: count them all
        frame["n_orders_on_number"] = _count_orders(conn, numbers)
    else:
        # integer codes and a bincount: a groupby over a million text keys costs several times more
        codes, _ = pd.factorize(numbers.to_numpy(dtype=object), use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=1) if len(codes) else np.zeros(1, dtype=np.int64)
        frame["n_orders_on_number"] = np.where(codes >= 0, counts[np.maximum(codes, 0)], 0)
    for col in ("n_events", "n_scans", "n_transit", "n_export", "n_import", "max_event_id",
                "n_orders_on_number", "not_found_count"):
        frame[col] = frame[col].fillna(0).astype(np.int64)
    # a number of days, or NaN (the column's INTEGER affinity keeps text it cannot convert)
    frame["promised_days"] = pd.to_numeric(frame["promised_days"], errors="coerce").astype(float)
    for col in ("ordered_jd", "shipped_jd", "confirmed_jd", "first_event_jd", "first_scan_jd", "last_scan_jd",
                "delivered_jd"):
        frame[col] = frame[col].astype(float)
    return frame


def _count_orders(conn: sqlite3.Connection, numbers: pd.Series) -> pd.Series:
    distinct = [n for n in dict.fromkeys(numbers.dropna())]
    counts: dict[str, int] = {}
    for start in range(0, len(distinct), 500):
        chunk = distinct[start:start + 500]
        counts.update(conn.execute(
            f"SELECT tracking_number, count(*) FROM orders WHERE tracking_number IN ({', '.join('?' for _ in chunk)}) "
            "GROUP BY tracking_number", chunk).fetchall())
    return numbers.map(counts)


def _order_columns_sql() -> str:
    return f"""{", ".join("o." + c for c in ORDER_COLUMNS)},
              julianday(o.ordered_at) AS ordered_jd, julianday(o.shipped_at) AS shipped_jd,
              julianday(o.buyer_confirmed_at) AS confirmed_jd,
              s.state AS shipment_state, coalesce(s.not_found_count, 0) AS not_found_count"""


def order_frame_sql(kinds: ScanKinds, order_where: str, event_where: str) -> str:
    """Orders whose number has events, with shipments and the per-number aggregates, joined in SQLite.

    The aggregation drives the loop (a co-routine in tracking-number order) and each number's orders are
    looked up by index: nothing is materialised, no pandas merge.
    """
    return f"""SELECT {_order_columns_sql()}, {", ".join("a." + c for c in AGGREGATE_COLUMNS)}
            FROM ({tracking_aggregates_sql(kinds, "WHERE " + event_where)}) a
            CROSS JOIN orders o ON o.tracking_number = a.tracking_number
            LEFT JOIN shipments s ON s.tracking_number = o.tracking_number
            WHERE {order_where}"""


def orders_without_events_sql(kinds: ScanKinds, order_where: str) -> str:
    """The other orders (no number, or a number with no events yet), with the same columns."""
    return f"""SELECT {_order_columns_sql()}, {", ".join("NULL AS " + c for c in AGGREGATE_COLUMNS)}
            FROM orders o LEFT JOIN shipments s ON s.tracking_number = o.tracking_number
            WHERE ({order_where})
              AND NOT EXISTS (SELECT 1 FROM tracking_events e WHERE e.tracking_number = o.tracking_number)"""


# below this many events the SQL aggregates answer in well under a second: no child processes
COLUMNAR_MIN_EVENTS = 500_000


def _whole_store(conn: sqlite3.Connection, kinds: ScanKinds) -> pd.DataFrame:
    """Every order. A big store is read column-wise on two cores (`detectors.columnar`), with the same
    answer as the SQL aggregates, several times faster; the SQL path answers when that cannot."""
    from detectors import columnar

    path = columnar.file_for_children(conn, "SELECT max(id) FROM tracking_events", COLUMNAR_MIN_EVENTS)
    if path:
        try:
            return columnar.load_whole_store(path, kinds)
        except Exception as exc:  # noqa: BLE001 - any failure of the fast path leaves the answer to SQL
            logging.getLogger(__name__).warning("columnar read unavailable (%s); using SQL aggregates", exc)
    return pd.concat([_frame(conn, order_frame_sql(kinds, "1", "1")),
                      _frame(conn, orders_without_events_sql(kinds, "1"))], ignore_index=True)


def load_tracking_aggregates(conn: sqlite3.Connection, kinds: ScanKinds, where: str = "") -> pd.DataFrame:
    """The per-number aggregates (see `tracking_aggregates_sql`) as a frame."""
    return _frame(conn, tracking_aggregates_sql(kinds, where))


EVENT_DETAIL_COLUMNS = ("id", "tracking_number", "occurred_at", "status", "raw_code", "description", "location",
                        "city", "postcode", "country", "snapshot_sha256")


def load_event_records(conn: sqlite3.Connection, tracking_numbers: Iterable[str]) -> list[dict]:
    """Every event of these numbers (for the few orders a rule flags), ordered by number and time, as plain
    dicts straight from the cursor (a frame's to_dict costs several times more)."""
    numbers = sorted(set(tracking_numbers))
    records: list[dict] = []
    for start in range(0, len(numbers), 500):
        chunk = numbers[start:start + 500]
        cur = conn.execute(
            f"SELECT {', '.join(EVENT_DETAIL_COLUMNS)} FROM tracking_events WHERE tracking_number IN "
            f"({', '.join('?' for _ in chunk)}) ORDER BY tracking_number, occurred_at, id", chunk)
        records.extend(dict(zip(EVENT_DETAIL_COLUMNS, row, strict=True)) for row in cur)
    return records


def load_seller_messages(conn: sqlite3.Connection) -> pd.DataFrame:
    """Seller messages of the scoped orders: id, order_id, sent_jd, text."""
    scope = f"AND order_id IN (SELECT order_id FROM {SCOPE_ORDERS})" if has_scope(conn) else ""
    return _frame(
        conn,
        f"SELECT id, order_id, julianday(sent_at) AS sent_jd, text FROM messages "
        f"WHERE lower(sender) = 'seller' {scope} ORDER BY order_id, sent_at, id",
    )


def load_disputes(conn: sqlite3.Connection) -> pd.DataFrame:
    """When a dispute was opened on the scoped orders (from their cases): order_id, dispute_jd."""
    scope = f"AND order_id IN (SELECT order_id FROM {SCOPE_ORDERS})" if has_scope(conn) else ""
    return _frame(
        conn,
        f"SELECT order_id, julianday(dispute_opened_at) AS dispute_jd FROM cases "
        f"WHERE dispute_opened_at IS NOT NULL {scope}",
    )
