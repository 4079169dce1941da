"""Order features for the classifier: SQL builds an order frame, a transformer turns it into numbers.

Two steps, so training and scoring share every line:

1. `load_order_frame(conn, order_ids, as_of)` reads the store (orders, per-tracking-number event
   aggregates from `shipment_facts`, active flag codes, seller-message pressure, tracking-number reuse,
   buyer history) and adds seller-level aggregates. Seller aggregates need a seller's whole book, so the frame always holds every order of
   each seller involved (`target` marks the orders asked for). No label is read: aggregates cannot leak.
2. `OrderFeatures`, a scikit-learn transformer, derives the numeric features from that frame (durations,
   match levels, flag indicators, ratios to the route medians it learns in `fit`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from detectors import columnar, places, view

# Deliberately its own list, not the rule registry's: a shipped model's feature list must not change when
# a rule is added (a model trained on another feature list is refused).
FLAG_CODES = (
    "invalid_tracking_number",
    "tracking_reused",
    "wrong_destination",
    "accepted_before_order",
    "impossible_transit",
    "delivered_not_received",
    "early_confirmation",
    "seller_pressure",
    "no_tracking_progress",
)
CARRIERS = ("cainiao", "chinapost", "yunexpress")

# feature name -> reason group; a reason names the group whose values pushed the score up
FEATURE_GROUPS: dict[str, str] = {
    **{f"flag_{code}": f"flag:{code}" for code in FLAG_CODES},
    "n_flags": "flag_count",
    "accept_to_delivered_days": "transit",
    "physical_to_delivered_days": "transit",
    "order_to_delivered_days": "transit",
    "transit_vs_route_median": "transit",
    "order_to_first_scan_days": "first_scan",
    "shipped_to_first_physical_days": "first_scan",
    "ship_delay_days": "first_scan",
    "n_events": "scans",
    "n_scans": "scans",
    "n_transit": "scans",
    "n_export": "customs",
    "n_import": "customs",
    "delivered": "delivery",
    "days_since_last_event": "stale",
    "order_age_days": "stale",
    "dest_match_level": "destination",
    "confirm_minus_delivered_days": "confirmation",
    "confirmed_before_delivery": "confirmation",
    "buyer_received": "buyer_says",
    "orders_on_number": "reuse",
    "buyers_on_number": "reuse",
    "carrier_code": "carrier",
    "promised_days": "order",
    "amount": "order",
    "msg_pressure_max": "messages",
    "n_seller_messages": "messages",
    "seller_n_orders": "seller",
    "seller_flag_rate": "seller",
    "seller_median_transit": "seller",
    "seller_fast_share": "seller",
    "seller_reuse_share": "seller",
    "seller_no_customs_share": "seller",
    "seller_not_received_share": "seller",
    "seller_pressure_share": "seller",
    "buyer_n_orders": "buyer",
    "buyer_not_received_other": "buyer",
    "buyer_flagged_other": "buyer",
}
FEATURES: tuple[str, ...] = tuple(FEATURE_GROUPS)



def _fill_temp(conn: sqlite3.Connection, name: str, values: Iterable[str]) -> None:
    conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
    conn.execute(f"CREATE TEMP TABLE {name} (order_id TEXT PRIMARY KEY)")
    conn.executemany(f"INSERT OR IGNORE INTO temp.{name} VALUES (?)", ((v,) for v in values))


def _query(conn: sqlite3.Connection, sql: str, columns: list[str]) -> pd.DataFrame:
    """Rows as a frame with plain object text columns: pandas 3's default string dtype is several times slower
    for the comparisons, maps and factorisations the features make over a million orders."""
    frame = pd.DataFrame.from_records(conn.execute(sql).fetchall(), columns=columns)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


# Per tracking number, what the classifier needs from its events. Kept in the store's `shipment_facts`
# table, which tracker.scoring refreshes for the numbers whose events changed: re-aggregating millions of
# events on every run would cost more than all the rest of scoring together.
FACT_COLUMNS = ("n_events", "n_scans", "n_transit", "n_export", "n_import", "first_event_jd", "first_scan_jd",
                "last_scan_jd", "delivered_jd", "delivered_country", "delivered_city", "delivered_postcode")


def shipment_facts_sql(kinds: view.ScanKinds, where: str = "") -> tuple[str, str]:
    """(aggregate SELECT, delivered-place SELECT) over the events, optionally limited by `where`."""
    def listed(values: Iterable[str]) -> str:
        return ", ".join("'" + v.replace("'", "''") + "'" for v in values)

    physical = listed(view.PHYSICAL_STATUSES)
    transit = listed(kinds.transit_statuses)
    # prefix patterns ('CC_EX*') become range comparisons: the same rows as GLOB, cheaper per event
    export = kinds._glob(kinds.export_codes)
    imported = kinds._glob(kinds.import_codes)
    aggregate = f"""
        SELECT tracking_number, count(*), sum(status IN ({physical})), sum(status IN ({transit})),
               sum({export}), sum({imported}),
               julianday(min(CASE WHEN status NOT IN ('not_found', 'unknown') THEN occurred_at END)),
               julianday(min(CASE WHEN status IN ({physical}) THEN occurred_at END)),
               julianday(max(CASE WHEN status IN ({physical}) THEN occurred_at END)),
               julianday(min(CASE WHEN status = 'delivered' THEN occurred_at END)), max(id)
        FROM tracking_events {where} GROUP BY tracking_number"""
    # the bare columns come from the row holding min(occurred_at): the first delivered scan (SQLite rule)
    place = f"""
        SELECT tracking_number, min(occurred_at), country, city, postcode FROM tracking_events
        WHERE status = 'delivered' {where.replace('WHERE', 'AND', 1)} GROUP BY tracking_number"""
    return aggregate, place


MessageScorer = Callable[[pd.DataFrame], np.ndarray]


def score_messages(messages: pd.DataFrame, pressure: Callable[[list[str]], list[float]] | None = None) -> np.ndarray:
    """Pressure probability of each message (columns id, order_id, text), each distinct text scored once."""
    if pressure is None:
        from detectors.message_model import predict_pressure as pressure
    texts = messages["text"].fillna("").astype(str)
    unique_texts = pd.unique(texts)  # templated chats repeat a lot
    probability = dict(zip(unique_texts, pressure(list(unique_texts)), strict=True))
    return texts.map(probability).to_numpy(dtype=float)


_ORDER_SQL = """
    SELECT o.order_id, o.buyer_id, o.seller_id, o.dest_country, o.dest_city, o.dest_postcode, o.tracking_number,
           o.carrier, o.promised_days, o.buyer_received, o.amount,
           julianday(o.ordered_at), julianday(o.shipped_at), julianday(o.buyer_confirmed_at),
           {facts}
    FROM orders o LEFT JOIN shipment_facts f ON f.tracking_number = o.tracking_number {where}"""
_ORDER_COLUMNS = ["order_id", "buyer_id", "seller_id", "dest_country", "dest_city", "dest_postcode", "tracking_number",
                  "carrier", "promised_days", "buyer_received", "amount", "ordered_jd", "shipped_jd", "confirmed_jd",
                  *FACT_COLUMNS]
_COUNT_COLUMNS = ("n_events", "n_scans", "n_transit", "n_export", "n_import")
_FLOAT_COLUMNS = ("ordered_jd", "shipped_jd", "confirmed_jd", "first_event_jd", "first_scan_jd", "last_scan_jd",
                  "delivered_jd", "promised_days", "amount")
# the whole store is read through Arrow in a child process from this many orders on (see _start_arrow_read)
ARROW_MIN_ORDERS = 100_000
# while the frame is read through this connection: keep the pages the join revisits in memory (256 MiB)
_READ_PRAGMAS = {"cache_size": -262_144}


class _ReadTuning:
    """Connection PRAGMAs for one big read, put back afterwards (the connection is the caller's)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.saved: dict[str, int] = {}

    def __enter__(self) -> None:
        for name, value in _READ_PRAGMAS.items():
            self.saved[name] = self.conn.execute(f"PRAGMA {name}").fetchone()[0]
            self.conn.execute(f"PRAGMA {name} = {int(value)}")

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            self.conn.execute(f"PRAGMA {name} = {int(value)}")


def _start_reading_orders(conn: sqlite3.Connection, where: str) -> Callable[[], pd.DataFrame]:
    """Start reading the orders joined to their shipment facts; the returned call gives the frame (typed numeric
    columns, plain object text columns). The whole store is read by a child process through the ADBC SQLite
    driver (see `columnar.read_left_joined`) while this process reads flags and messages; anything else, or any trouble
    there, reads through this connection."""
    sql = _ORDER_SQL.format(facts=", ".join(f"f.{c}" for c in FACT_COLUMNS), where=where)
    pending = None if where else _start_arrow_read(conn, _ORDERS_ONLY_SQL)

    def finish() -> pd.DataFrame:
        columns = None
        if pending is not None:
            pool, future = pending
            try:
                columns = _arrow_columns(future.result())
            except Exception:  # noqa: BLE001 - any driver trouble: the sqlite3 path gives the same frame
                columns = None
            finally:
                pool.shutdown()
        if columns is None:
            rows = conn.execute(sql).fetchall()
            columns = [np.array(values, dtype=object) for values in zip(*rows, strict=True)] if rows else \
                [np.zeros(0, dtype=object)] * len(_ORDER_COLUMNS)
            del rows
        frame = pd.DataFrame({name: pd.Series(values, dtype=values.dtype if values.dtype != object else object)
                              for name, values in zip(_ORDER_COLUMNS, columns, strict=True)})
        for name in _COUNT_COLUMNS:
            frame[name] = pd.to_numeric(frame[name]).fillna(0).astype(np.int64)
        for name in _FLOAT_COLUMNS:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
        return frame

    return finish


def _start_arrow_read(conn: sqlite3.Connection, sql: str) -> tuple[Any, Any] | None:
    """A one-process pool reading `sql` into Arrow, or None when that path does not apply (no driver, a
    database without a file, uncommitted writes the other process would not see)."""
    import importlib.util

    if importlib.util.find_spec("adbc_driver_sqlite") is None:
        return None
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path or conn.in_transaction:
        return None
    if (conn.execute("SELECT max(rowid) FROM orders").fetchone()[0] or 0) < ARROW_MIN_ORDERS:
        return None  # a small store reads faster than a child process starts
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        # the child imports only Arrow and the driver (detectors.columnar), not this module's scikit-learn
        return pool, pool.submit(columnar.read_left_joined, path, sql, _FACTS_SQL, 6)  # 6: o.tracking_number
    except Exception:  # noqa: BLE001 - no child process here (e.g. a main module without a __main__ guard)
        pool.shutdown()
        return None


# the whole-store read takes orders and facts apart, in two sequential scans, and joins them in Arrow: the
# SQL join looks each order's number up in shipment_facts, a million random B-tree searches (~6 s)
_ORDERS_ONLY_SQL = _ORDER_SQL.split("{facts}")[0].rstrip().rstrip(",") + "\n    FROM orders o"
_FACTS_SQL = f"SELECT tracking_number, {', '.join(FACT_COLUMNS)} FROM shipment_facts"


def _arrow_columns(table: Any) -> list[np.ndarray]:
    out = []
    for i in range(table.num_columns):
        column = table.column(i)
        kind = str(column.type)
        if kind in ("string", "large_string", "null"):
            out.append(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object))
        elif kind in ("int64", "double"):
            out.append(column.to_numpy(zero_copy_only=False).astype(float, copy=False))
        else:  # a mixed column (text among numbers): Python values, typed by the caller as on the other path
            out.append(np.array(column.to_pylist(), dtype=object))
    return out


def load_order_frame(conn: sqlite3.Connection, order_ids: Iterable[str] | None, as_of: datetime,
                     *, message_scores: MessageScorer | None = None) -> pd.DataFrame:
    """One row per order: every order of the sellers of `order_ids` (every order when None).

    Reads orders joined to `shipment_facts` (kept fresh by `tracker.scoring.refresh_shipment_facts`),
    active flags and seller messages; times are Julian days, as in `detectors.view`. `target` is True for
    the orders asked for. `message_scores` turns the seller messages (id, order_id, text) into pressure
    probabilities (default: `score_messages`, the shipped message model; the tracker passes one that
    caches them in the store).
    """
    with _ReadTuning(conn):
        return _load_order_frame(conn, order_ids, as_of, message_scores)


def _load_order_frame(conn: sqlite3.Connection, order_ids: Iterable[str] | None, as_of: datetime,
                      message_scores: MessageScorer | None) -> pd.DataFrame:
    if order_ids is not None:
        _fill_temp(conn, "feature_targets", order_ids)
        conn.execute("DROP TABLE IF EXISTS temp.feature_context")
        conn.execute("""CREATE TEMP TABLE feature_context AS SELECT order_id, buyer_id, tracking_number FROM orders
            WHERE seller_id IN (SELECT o.seller_id FROM orders o JOIN temp.feature_targets t USING (order_id))""")
        conn.execute("CREATE INDEX temp.feature_context_order ON feature_context(order_id)")
        read = _start_reading_orders(conn, "WHERE o.order_id IN (SELECT order_id FROM temp.feature_context)")
        scoped = "AND order_id IN (SELECT order_id FROM temp.feature_context)"
    else:
        read = _start_reading_orders(conn, "")
        scoped = ""
    flags = _query(conn, f"SELECT order_id, code FROM flags WHERE resolved_at IS NULL {scoped}", ["order_id", "code"])
    messages = _query(conn, f"SELECT id, order_id, text FROM messages WHERE lower(sender) = 'seller' {scoped}",
                      ["id", "order_id", "text"])
    pressure = np.asarray((message_scores or score_messages)(messages), dtype=float) if len(messages) else None
    frame = read()
    if scoped:
        targets = {row[0] for row in conn.execute("SELECT order_id FROM temp.feature_targets")}
        frame["target"] = frame["order_id"].isin(targets)
    else:
        frame["target"] = True
    if frame.empty:
        return frame
    position = pd.Index(frame["order_id"].to_numpy(dtype=object))  # order id -> row, hashed once

    flag_row = position.get_indexer(flags["order_id"].to_numpy(dtype=object))
    flag_code = flags["code"].to_numpy(dtype=object)
    for code in FLAG_CODES:
        column = np.zeros(len(frame), dtype=np.int8)
        column[flag_row[(flag_code == code) & (flag_row >= 0)]] = 1
        frame[f"flag_{code}"] = column
    codes = np.full(len(frame), "", dtype=object)
    if len(flags):
        joined = flags.sort_values(["order_id", "code"]).groupby("order_id")["code"].agg(",".join)
        rows = position.get_indexer(joined.index.to_numpy(dtype=object))
        codes[rows[rows >= 0]] = joined.to_numpy(dtype=object)[rows >= 0]
    frame["codes"] = codes

    message_row = position.get_indexer(messages["order_id"].to_numpy(dtype=object))
    known = message_row >= 0
    frame["n_seller_messages"] = np.bincount(message_row[known], minlength=len(frame)).astype(float)
    pressure_max = np.zeros(len(frame))
    if pressure is not None:
        np.fmax.at(pressure_max, message_row[known], pressure[known])
    frame["msg_pressure_max"] = pressure_max

    _add_number_and_buyer_context(conn, frame, scoped=bool(scoped))
    frame["as_of_jd"] = view.datetime_to_jd(as_of)
    frame["dest_match_level"] = destination_match_level(frame)
    _add_seller_aggregates(frame)
    return frame


def _group_codes(values: pd.Series) -> tuple[np.ndarray, int, np.ndarray]:
    """Integer group keys 0..n-1 (a missing value is key 0, a group of its own as pandas counts a -1 code), the
    number of keys, and per key whether its value is non-empty text."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    filled = np.array([False] + [str(u) != "" for u in uniques], dtype=bool)
    return codes.astype(np.int64) + 1, len(uniques) + 1, filled


def _group_sum(keys: np.ndarray, n_keys: int, values: np.ndarray) -> np.ndarray:
    """Per row, the sum of `values` over the row's group (exact here: the values are whole numbers)."""
    return np.bincount(keys, weights=values, minlength=n_keys)[keys]


def _add_number_and_buyer_context(conn: sqlite3.Connection, frame: pd.DataFrame, *, scoped: bool) -> None:
    """How many orders and buyers share the number; the buyer's other orders. Over the whole store."""
    any_flag = (frame["codes"].to_numpy(dtype=object) != "").astype(float)
    not_received = (_text(frame["buyer_received"], _answer) == "no").to_numpy(dtype=float)
    if not scoped:  # the frame holds every order: count with integer group codes
        number, n_numbers, filled = _group_codes(frame["tracking_number"])
        numbered = filled[number]
        buyer, n_buyers, _ = _group_codes(frame["buyer_id"])
        on_number = np.bincount(number[numbered], minlength=n_numbers)
        frame["n_orders_on_number"] = np.where(numbered, on_number[number], 0).astype(float)
        pairs = np.unique(number[numbered] * n_buyers + buyer[numbered])
        buyers_per_number = np.bincount(pairs // n_buyers, minlength=n_numbers)
        frame["buyers_on_number"] = np.where(numbered, buyers_per_number[number], 0).astype(float)
        frame["buyer_n_orders"] = np.bincount(buyer, minlength=n_buyers)[buyer]
        frame["_buyer_not_received"] = _group_sum(buyer, n_buyers, not_received)
        frame["_buyer_flagged"] = _group_sum(buyer, n_buyers, any_flag)
        return
    numbers = _query(conn, """SELECT tracking_number, count(*), count(DISTINCT buyer_id) FROM orders
        WHERE tracking_number IN (SELECT tracking_number FROM temp.feature_context) GROUP BY tracking_number""",
                     ["tracking_number", "n_orders_on_number", "buyers_on_number"]).set_index("tracking_number")
    buyers = _query(conn, """SELECT o.buyer_id, count(*), sum(lower(trim(coalesce(o.buyer_received, ''))) = 'no'),
               sum(o.order_id IN (SELECT order_id FROM flags WHERE resolved_at IS NULL))
        FROM orders o WHERE o.buyer_id IN (SELECT buyer_id FROM temp.feature_context) GROUP BY o.buyer_id""",
                    ["buyer_id", "buyer_n_orders", "_buyer_not_received", "_buyer_flagged"]).set_index("buyer_id")
    for column in ("n_orders_on_number", "buyers_on_number"):
        frame[column] = frame["tracking_number"].map(numbers[column]).fillna(0)
    for column in ("buyer_n_orders", "_buyer_not_received", "_buyer_flagged"):
        frame[column] = frame["buyer_id"].map(buyers[column]).fillna(0)


def _text(values: pd.Series, fn: Callable[[str], str]) -> pd.Series:
    """`fn(str(value))` per row ('' for missing values), computed once per distinct value: the same result
    as `values.fillna('').astype(str)` then string methods, without pandas 3's slow string arrays."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    mapped = np.array([fn(str(u)) for u in uniques] + [fn("")], dtype=object)  # code -1 (missing): fn('')
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def _answer(text: str) -> str:
    return text.strip().lower()


class _Vocabulary:
    """Normalised texts as integer codes, so two columns compare as integers, not strings."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def code(self, text: str) -> int:
        return self.codes.setdefault(text, len(self.codes))

    def empty(self) -> int:
        return self.codes.get("", -1)


def _normalised_codes(values: np.ndarray, normalise, vocabulary: _Vocabulary) -> np.ndarray:  # noqa: ANN001
    """Per row, the vocabulary code of `normalise(str(value))` ('' for a missing value), once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([vocabulary.code(normalise(str(u))) for u in uniques] + [vocabulary.code(normalise(""))])
    return mapped[codes]


def _normalised_postcode_codes(postcodes: np.ndarray, countries: np.ndarray, vocabulary: _Vocabulary) -> np.ndarray:
    """places.normalize_postcode per (postcode, country) pair as vocabulary codes, once per distinct pair."""
    p_codes, p_uniques = pd.factorize(postcodes, use_na_sentinel=True)
    c_codes, c_uniques = pd.factorize(countries, use_na_sentinel=True)
    width = len(c_uniques) + 1
    pair = (p_codes.astype(np.int64) + 1) * width + (c_codes.astype(np.int64) + 1)
    distinct, inverse = np.unique(pair, return_inverse=True)
    p_text = [""] + [str(u) for u in p_uniques]
    c_text = [""] + [str(u) for u in c_uniques]
    mapped = np.array([vocabulary.code(places.normalize_postcode(p_text[p // width], c_text[p % width]))
                       for p in distinct.tolist()], dtype=np.int64)
    return mapped[inverse.reshape(-1)] if len(pair) else np.zeros(0, dtype=np.int64)


def destination_match_level(frame: pd.DataFrame) -> pd.Series:
    """Where the delivered scan agrees with the order: 3 postcode, 2 city, 1 country only, 0.5 another city or
    postcode in the right country, 0 another country. NaN when there is no delivered scan naming a place.
    """
    level = np.full(len(frame), np.nan)
    got = {c: frame[c].to_numpy(dtype=object) for c in ("delivered_country", "delivered_city", "delivered_postcode")}
    has_place = np.zeros(len(frame), dtype=bool)
    for values in got.values():
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        filled = np.array([str(u) != "" for u in uniques] + [False], dtype=bool)  # code -1 (missing): last
        has_place |= filled[codes]
    if not has_place.any():
        return pd.Series(level, index=frame.index)

    def column(name: str) -> np.ndarray:
        return (got[name] if name in got else frame[name].to_numpy(dtype=object))[has_place]

    countries, cities, postcodes = _Vocabulary(), _Vocabulary(), _Vocabulary()
    dest_country = _normalised_codes(column("dest_country"), places.normalize_country, countries)
    got_country = _normalised_codes(column("delivered_country"), places.normalize_country, countries)
    dest_city = _normalised_codes(column("dest_city"), places.normalize_city, cities)
    got_city = _normalised_codes(column("delivered_city"), places.normalize_city, cities)
    dest_post = _normalised_postcode_codes(column("dest_postcode"), column("dest_country"), postcodes)
    got_post = _normalised_postcode_codes(column("delivered_postcode"), column("delivered_country"), postcodes)
    no_country, no_city, no_post = countries.empty(), cities.empty(), postcodes.empty()
    sub = np.ones(int(has_place.sum()))
    city_ok = (dest_city != no_city) & (dest_city == got_city)
    post_ok = (dest_post != no_post) & (dest_post == got_post)
    sub[city_ok] = 2.0
    sub[post_ok] = 3.0
    wrong_local = ((got_post != no_post) & (dest_post != no_post) & ~post_ok) | \
        ((got_post == no_post) & (got_city != no_city) & (dest_city != no_city) & ~city_ok)
    sub[wrong_local] = 0.5
    sub[(got_country != no_country) & (dest_country != no_country) & (got_country != dest_country)] = 0.0
    level[has_place] = sub
    return pd.Series(level, index=frame.index)


def _leave_one_out_rate(seller: np.ndarray, n_sellers: int, values: np.ndarray,
                        counted: np.ndarray | None = None) -> np.ndarray:
    """The seller's rate of `values` over their other (counted) orders; NaN when they have none.

    Sums of whole numbers, so bincount's plain float sums equal pandas' compensated ones exactly.
    """
    counted = np.ones(len(values)) if counted is None else np.asarray(counted, dtype=float)
    values = np.where(counted > 0, np.asarray(values, dtype=float), 0.0)
    total = _group_sum(seller, n_sellers, values) - values
    n = _group_sum(seller, n_sellers, counted) - counted
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _add_seller_aggregates(frame: pd.DataFrame) -> None:
    """Seller-level context over the seller's whole book, leaving the order itself out."""
    seller, n_sellers, _ = _group_codes(frame["seller_id"])
    transit = (frame["delivered_jd"] - frame["first_event_jd"]).to_numpy()
    delivered = frame["delivered_jd"].notna().to_numpy()
    any_flag = frame[[f"flag_{c}" for c in FLAG_CODES]].to_numpy().sum(axis=1) > 0
    no_customs = ((frame["n_export"] + frame["n_import"]) == 0).to_numpy()
    not_received = (_text(frame["buyer_received"], _answer) == "no").to_numpy()
    frame["seller_n_orders"] = np.bincount(seller, minlength=n_sellers)[seller]
    frame["seller_flag_rate"] = _leave_one_out_rate(seller, n_sellers, any_flag)
    frame["seller_median_transit"] = pd.Series(transit).groupby(seller).transform("median").to_numpy()
    frame["seller_fast_share"] = _leave_one_out_rate(seller, n_sellers, transit < 6, delivered)
    frame["seller_reuse_share"] = _leave_one_out_rate(seller, n_sellers, frame["buyers_on_number"].to_numpy() > 1)
    frame["seller_no_customs_share"] = _leave_one_out_rate(seller, n_sellers, no_customs, delivered)
    frame["seller_not_received_share"] = _leave_one_out_rate(seller, n_sellers, not_received)
    frame["seller_pressure_share"] = _leave_one_out_rate(seller, n_sellers, frame["msg_pressure_max"].to_numpy() >= 0.5)


class OrderFeatures(TransformerMixin, BaseEstimator):
    """Order frame (from `load_order_frame`) -> the numeric feature matrix named by `FEATURES`.

    `fit` learns the median acceptance-to-delivery time per destination country, so a transit can be
    judged against its own route; `transform` works row by row from the frame and those medians.

    Parameters
    ----------
    max_age_days : float
        Ages (since the order, since the last scan) are clipped here, so old history looks like old history.
    """

    def __init__(self, max_age_days: float = 120.0):
        self.max_age_days = max_age_days

    def fit(self, X: pd.DataFrame, y=None):  # noqa: ANN001, ANN201, N803 - sklearn's names
        frame = self._check_frame(X)
        transit = frame["delivered_jd"] - frame["first_event_jd"]
        country = _text(frame["dest_country"], places.normalize_country)
        self.route_median_transit_ = transit.groupby(country).median().dropna().to_dict()
        self.global_median_transit_ = float(np.nanmedian(transit)) if transit.notna().any() else 10.0
        self.feature_names_in_ = np.asarray(FEATURES, dtype=object)
        self.n_features_out_ = len(FEATURES)
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:  # noqa: ANN001
        return np.asarray(FEATURES, dtype=object)

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        check_is_fitted(self, "route_median_transit_")
        return self.transform_frame(X).to_numpy(dtype=np.float64)

    def transform_frame(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        """The features as a named DataFrame (for reasons and inspection)."""
        check_is_fitted(self, "route_median_transit_")
        f = self._check_frame(X)
        out = pd.DataFrame(index=f.index)
        for code in FLAG_CODES:
            out[f"flag_{code}"] = f[f"flag_{code}"].astype(float)
        out["n_flags"] = out[[f"flag_{c}" for c in FLAG_CODES]].sum(axis=1)
        out["accept_to_delivered_days"] = f["delivered_jd"] - f["first_event_jd"]
        out["physical_to_delivered_days"] = f["delivered_jd"] - f["first_scan_jd"]
        out["order_to_delivered_days"] = f["delivered_jd"] - f["ordered_jd"]
        route = _text(f["dest_country"], places.normalize_country).map(self.route_median_transit_).astype(float)
        route = route.fillna(self.global_median_transit_).clip(lower=0.5)
        out["transit_vs_route_median"] = out["accept_to_delivered_days"] / route
        out["order_to_first_scan_days"] = f["first_event_jd"] - f["ordered_jd"]
        out["shipped_to_first_physical_days"] = f["first_scan_jd"] - f["shipped_jd"]
        out["ship_delay_days"] = f["shipped_jd"] - f["ordered_jd"]
        for column in ("n_events", "n_scans", "n_transit", "n_export", "n_import"):
            out[column] = f[column].fillna(0).astype(float)
        out["delivered"] = f["delivered_jd"].notna().astype(float)
        age = f["as_of_jd"] - f["last_scan_jd"].fillna(f["first_event_jd"])
        # staleness matters for parcels still on their way; a delivered parcel is done, not stale
        out["days_since_last_event"] = age.where(f["delivered_jd"].isna()).clip(upper=self.max_age_days)
        out["order_age_days"] = (f["as_of_jd"] - f["ordered_jd"]).clip(upper=self.max_age_days)
        out["dest_match_level"] = f["dest_match_level"].astype(float)
        out["confirm_minus_delivered_days"] = f["confirmed_jd"] - f["delivered_jd"]
        out["confirmed_before_delivery"] = (
            f["confirmed_jd"].notna()
            & (f["delivered_jd"].isna() | (f["confirmed_jd"] < f["delivered_jd"]))).astype(float)
        received = _text(f["buyer_received"], _answer)
        out["buyer_received"] = received.map({"yes": 1.0, "no": 0.0})
        out["orders_on_number"] = f["n_orders_on_number"].fillna(0).astype(float)
        out["buyers_on_number"] = f["buyers_on_number"].fillna(0).astype(float)
        carrier = _text(f["carrier"], str.lower)
        out["carrier_code"] = carrier.map({c: float(i) for i, c in enumerate(CARRIERS)}).fillna(float(len(CARRIERS)))
        out["promised_days"] = pd.to_numeric(f["promised_days"], errors="coerce")
        out["amount"] = pd.to_numeric(f["amount"], errors="coerce")
        out["msg_pressure_max"] = f["msg_pressure_max"].astype(float)
        out["n_seller_messages"] = f["n_seller_messages"].astype(float)
        for column in ("seller_n_orders", "seller_flag_rate", "seller_median_transit", "seller_fast_share",
                       "seller_reuse_share", "seller_no_customs_share", "seller_not_received_share",
                       "seller_pressure_share", "buyer_n_orders"):
            out[column] = f[column].astype(float)
        out["buyer_not_received_other"] = (f["_buyer_not_received"].fillna(0)
                                           - (received == "no").astype(float)).clip(lower=0)
        out["buyer_flagged_other"] = (f["_buyer_flagged"].fillna(0) - (out["n_flags"] > 0)).clip(lower=0)
        return out[list(FEATURES)]

    @staticmethod
    def _check_frame(X) -> pd.DataFrame:  # noqa: ANN001, N803
        if not isinstance(X, pd.DataFrame):
            raise TypeError("OrderFeatures expects the order frame from detectors.features.load_order_frame")
        missing = [c for c in ("order_id", "delivered_jd", "first_event_jd", "as_of_jd") if c not in X.columns]
        if missing:
            raise ValueError(f"order frame lacks columns {missing}; build it with load_order_frame")
        return X
