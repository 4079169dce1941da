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
from typing import Any, NamedTuple

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
    rows = conn.execute(sql).fetchall()
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


# Per tracking number, what the classifier needs from its events. Kept in the store's `shipment_facts`
# table, which tracker.scoring refreshes for the numbers whose events changed: re-aggregating millions of
# events on every run would cost more than all the rest of scoring together.
FACT_COLUMNS = ("n_events", "n_scans", "n_transit", "n_export", "n_import", "first_event_jd", "first_scan_jd",
                "last_scan_jd", "delivered_jd", "delivered_country", "delivered_city", "delivered_postcode")


def shipment_facts_sql(kinds: view.ScanKinds, where: str = "") -> tuple[str, str]:
    """(aggregate SELECT, delivered-place SELECT) over the events, optionally limited by `where`.

    Over every event the aggregate reads the table in order and sorts it, instead of following the number
    index, which visits the rows in number order, one random read each: for 8.5 million events, 26 s instead
    of 44 s when the store is not in the system's file cache (as after a restart), the same when it is. A
    `where` picks few numbers, and there the index is what finds their events."""
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
        FROM tracking_events {"" if where else "NOT INDEXED"} {where} GROUP BY tracking_number"""
    # the bare columns come from the row holding min(occurred_at): the first delivered scan (SQLite rule)
    place = f"""
        SELECT tracking_number, min(occurred_at), country, city, postcode FROM tracking_events
        WHERE status = 'delivered' {where.replace('WHERE', 'AND', 1)} GROUP BY tracking_number"""
    return aggregate, place


MessageScorer = Callable[[pd.DataFrame], np.ndarray]
# the whole-store readers' normalised place columns: name -> (texts, each row's index into them)
Normalised = dict[str, tuple[list[str], np.ndarray]]


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


class _Side(NamedTuple):
    """Active flags (order_id, code) and seller messages (id, order_id, text) of the frame's orders, and when a
    whole-store reader found them, each one's frame row (-1: an order outside the frame)."""

    flags: pd.DataFrame
    messages: pd.DataFrame
    flag_row: np.ndarray | None = None
    message_row: np.ndarray | None = None


class _OrderRead:
    """The orders joined to their shipment facts, read as the frame's columns. The whole store is read by two
    child processes through the ADBC SQLite driver (see `_ArrowRead`), the orders' one also reading the active
    flags and seller messages and finding their orders' rows; anything else, or any trouble there, reads through
    this connection."""

    def __init__(self, conn: sqlite3.Connection, where: str, scoped: str):
        self.conn, self.scoped = conn, scoped
        self.sql = _ORDER_SQL.format(facts=", ".join(f"f.{c}" for c in FACT_COLUMNS), where=where)
        self.pending = None if where else _start_arrow_read(conn)
        self.side_from_readers = False

    def side(self) -> _Side:
        """The flags and messages: the orders reader's (this process idles meanwhile, leaving both cores to the
        readers), else read through this connection."""
        if self.pending is not None:
            try:
                flags, messages = self.pending.side()
                self.side_from_readers = True
                return _side_of_tables(flags, messages)
            except Exception:  # noqa: BLE001 - any driver trouble: the sqlite3 path gives the same frame
                self.close()
        return self.side_through_sql()

    def side_through_sql(self) -> _Side:
        flags = _query(self.conn, f"{_FLAGS_SQL} {self.scoped}", ["order_id", "code"])
        messages = _query(self.conn, f"SELECT id, order_id, text FROM messages WHERE lower(sender) = 'seller' "
                                     f"{self.scoped}", ["id", "order_id", "text"])
        return _Side(flags, messages)

    def finish(self) -> tuple[pd.DataFrame, Normalised, bool]:
        """The frame (typed numeric columns, text columns as objects or categoricals), the places the readers
        normalised (if they did), and whether the readers read it (so the rows of their flags and messages
        are its rows)."""
        columns, normalised = None, {}
        if self.pending is not None:
            try:
                columns, normalised = _arrow_columns(*self.pending.result())
            except Exception:  # noqa: BLE001 - any driver trouble: the sqlite3 path gives the same frame
                columns, normalised = None, {}
            finally:
                self.close()
        through_readers = columns is not None
        if columns is None:
            rows = self.conn.execute(self.sql).fetchall()
            columns = [np.array(values, dtype=object) for values in zip(*rows, strict=True)] if rows else \
                [np.zeros(0, dtype=object)] * len(_ORDER_COLUMNS)
            del rows
        # every array here is this frame's own (no view of a mapped file): no copy needed
        series = {name: pd.Series(values, dtype=values.dtype if values.dtype != object else object, copy=False)
                  for name, values in zip(_ORDER_COLUMNS, columns, strict=True)}
        # (a whole-store read gives its repeated text columns as categoricals: see _arrow_columns)
        for name in _COUNT_COLUMNS:
            series[name] = pd.to_numeric(series[name]).fillna(0).astype(np.int64)
        for name in _FLOAT_COLUMNS:
            series[name] = pd.to_numeric(series[name], errors="coerce").astype(float)
        # copy=False: the columns stay their own blocks, where pandas would copy them into one block per dtype
        return pd.DataFrame(series, copy=False), normalised, through_readers

    def close(self) -> None:
        if self.pending is not None:
            self.pending.close()
            self.pending = None


def _side_of_tables(flags: Any, messages: Any) -> _Side:
    """The readers' flags (row, code) and messages (row, id, order_id, text) tables as a `_Side`."""
    def objects(column: Any) -> np.ndarray:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)

    def rows(table: Any) -> np.ndarray:
        return table.column(0).to_numpy().astype(np.int64)

    flag_frame = pd.DataFrame({"code": pd.Series(objects(flags.column(1)), dtype=object)})
    message_frame = pd.DataFrame({"id": messages.column(1).to_numpy().astype(np.int64),
                                  "order_id": pd.Series(objects(messages.column(2)), dtype=object),
                                  "text": pd.Series(objects(messages.column(3)), dtype=object)})
    return _Side(flag_frame, message_frame, rows(flags), rows(messages))


class _ArrowRead:
    """Two spawned child processes reading the whole store into Arrow IPC files in a private temporary folder:
    one the orders (`columnar.read_to_file`) and, in the same transaction, the active flags and seller messages
    with their orders' rows; one each order's shipment facts (`columnar.read_aligned_to_file`). Two, so both
    cores read; files, so this process maps the columns instead of unpickling a copy. This process converts
    each reader's table as soon as it is done, while the other still reads."""

    def __init__(self, path: str):
        import multiprocessing
        import tempfile
        from concurrent.futures import ProcessPoolExecutor

        self.folder = tempfile.mkdtemp(prefix="tracker-frame-")
        self.pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
        self.files = tuple(f"{self.folder}/{name}.arrow" for name in ("orders", "facts", "flags", "messages"))
        self.parts: dict[int, _Part] = {}  # reader -> its table converted (see _arrow_columns)
        try:
            # the children import only Arrow and the driver (detectors.columnar), not this module's scikit-learn
            self.futures = (
                self.pool.submit(columnar.read_to_file, path, _ORDERS_ONLY_SQL, self.files[0], _ENCODED_ORDER_COLUMNS,
                                 _DEST_PLACE, ((_FLAGS_SQL, self.files[2]),
                                               (_MESSAGES_BY_ROW_SQL, self.files[3]))),
                self.pool.submit(columnar.read_aligned_to_file, path, _ORDER_KEYS_SQL, _FACTS_SQL, self.files[1],
                                 _DELIVERED_PLACE))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _table(name: str) -> Any:
        import pyarrow as pa

        return pa.ipc.open_file(pa.memory_map(name)).read_all()

    def _wait_for(self, reader: int) -> None:
        """Wait until `reader` is done, converting each reader's table as soon as it is (this process has a core
        to itself while the other reader works); a reader's error is raised."""
        from concurrent.futures import FIRST_COMPLETED, wait

        while True:
            for i, future in enumerate(self.futures):
                if future.done() and i not in self.parts:
                    future.result()
                    self.parts[i] = _PART_OF_READER[i](self._table(self.files[i]))
            if self.futures[reader].done():
                return
            wait([f for f in self.futures if not f.done()], return_when=FIRST_COMPLETED)

    def side(self) -> tuple[Any, Any]:
        """The flags and messages tables (see `_side_of_tables`), once the orders reader is done."""
        self._wait_for(0)
        return self._table(self.files[2]), self._table(self.files[3])

    def result(self) -> tuple[Any, Any, dict[int, _Part]]:
        """The two readers' tables, checked to hold the same orders, and their conversions (see
        `_arrow_columns`)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        for reader in range(len(self.futures)):
            self._wait_for(reader)
        orders, facts = (self._table(name) for name in self.files[:2])
        # the two read the orders in two transactions: the same rows with the same numbers, or read through SQL
        rowids = orders.column(_N_ORDER_COLUMNS).to_numpy()
        numbers = orders.column(_ORDER_COLUMNS.index("tracking_number")).combine_chunks()
        if pa.types.is_dictionary(numbers.type):
            numbers = pc.take(numbers.dictionary, numbers.indices)
        if not (np.array_equal(rowids, facts.column(0).to_numpy())
                and numbers.equals(facts.column(1).combine_chunks())):
            raise RuntimeError("orders changed between the two reads")
        return orders, facts, self.parts

    def close(self) -> None:
        import shutil

        # the workers free their memory after this process has moved on; mapped files outlive their names
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _start_arrow_read(conn: sqlite3.Connection) -> _ArrowRead | None:
    """The two child readers of the whole store, or None when that path does not apply (no driver, a database
    without a file, uncommitted writes the other processes would not see, a store smaller than the start-up
    costs)."""
    import importlib.util

    if importlib.util.find_spec("adbc_driver_sqlite") is None:
        return None
    path = columnar.file_for_children(conn, "SELECT max(rowid) FROM orders", ARROW_MIN_ORDERS)
    if not path:
        return None
    try:
        return _ArrowRead(path)
    except Exception:  # noqa: BLE001 - no child process here (e.g. a main module without a __main__ guard)
        return None


# the whole-store read takes orders and facts apart, in two sequential scans, and joins them in Arrow: the
# SQL join looks each order's number up in shipment_facts, a million random B-tree searches (~6 s)
_ORDERS_ONLY_SQL = (_ORDER_SQL.split("{facts}")[0].rstrip().rstrip(",")
                    + ", o.rowid\n    FROM orders o ORDER BY o.rowid")
# the orders reader's columns: the frame's order columns, the rowid, then its normalised places
_N_ORDER_COLUMNS = len(_ORDER_COLUMNS) - len(FACT_COLUMNS)
# the facts reader's keys: the rowid and number checked against the orders reader's (they lead the facts file)
_ORDER_KEYS_SQL = "SELECT rowid, tracking_number FROM orders ORDER BY rowid"
_N_KEY_COLUMNS = 2
# (order id, ...): read by the orders reader, each gets its order's frame row in place of the id
_FLAGS_SQL = "SELECT order_id, code FROM flags WHERE resolved_at IS NULL"
_MESSAGES_BY_ROW_SQL = "SELECT order_id, id, order_id AS order_ref, text FROM messages WHERE lower(sender) = 'seller'"
_FACTS_SQL = f"SELECT tracking_number, {', '.join(FACT_COLUMNS)} FROM shipment_facts"
_TEXT_COLUMNS = frozenset(("order_id", "buyer_id", "seller_id", "dest_country", "dest_city", "dest_postcode",
                           "tracking_number", "carrier", "buyer_received", "delivered_country", "delivered_city",
                           "delivered_postcode"))
# text columns whose distinct values the reader numbers (the groups and places the frame's context is built on)
_ENCODED_ORDER_COLUMNS = tuple(_ORDER_COLUMNS.index(c) for c in (
    "buyer_id", "seller_id", "dest_country", "dest_city", "dest_postcode", "tracking_number", "carrier",
    "buyer_received"))
# (country, city, postcode) of the order's destination in the orders query, and of the delivered scan in the
# facts query: the readers normalise them (see destination_match_level)
_DEST_PLACE = tuple(_ORDER_COLUMNS.index(c) for c in ("dest_country", "dest_city", "dest_postcode"))
_DELIVERED_PLACE = tuple(FACT_COLUMNS.index(c) + 1 for c in ("delivered_country", "delivered_city",
                                                              "delivered_postcode"))
_PLACE_NAMES = (("dest_country", "dest_city", "dest_postcode"),
                ("delivered_country", "delivered_city", "delivered_postcode"))


def _arrow_columns(orders: Any, facts: Any, parts: dict[int, _Part] | None = None) -> tuple[list[Any], Normalised]:
    """The frame's columns (numpy arrays; categoricals for the dictionary-encoded text) from the two readers'
    tables (the orders' rowid and the facts' leading keys left out), and the places they normalised.
    `parts`: `_orders_part(orders)` (key 0) and `_facts_part(facts)` (key 1) when worked out already."""
    parts = parts or {}
    order_columns, order_places = parts[0] if 0 in parts else _orders_part(orders)
    fact_columns, fact_places = parts[1] if 1 in parts else _facts_part(facts)
    return order_columns + fact_columns, {**order_places, **fact_places}


_Part = tuple[list[Any], Normalised]


def _orders_part(orders: Any) -> _Part:
    """The order columns and destination places of `_arrow_columns`, from the orders reader's table alone."""
    return _table_part(orders, _ORDER_COLUMNS[:_N_ORDER_COLUMNS], 0, _PLACE_NAMES[0], _N_ORDER_COLUMNS + 1)


def _facts_part(facts: Any) -> _Part:
    """The fact columns and delivered places of `_arrow_columns`, from the facts reader's table alone."""
    return _table_part(facts, FACT_COLUMNS, _N_KEY_COLUMNS, _PLACE_NAMES[1], _N_KEY_COLUMNS + len(FACT_COLUMNS))


_PART_OF_READER = {0: _orders_part, 1: _facts_part}


def _table_part(table: Any, names: Iterable[str], first: int, place_names: tuple[str, ...],
                places_at: int) -> _Part:
    """One reader's table as frame columns: the columns `names` from position `first`, and the normalised places
    `place_names` from position `places_at` (none when the reader left them to this process)."""
    import pyarrow as pa

    normalised: Normalised = {}
    out = []
    if table.num_columns == places_at + len(place_names):
        for name, i in zip(place_names, range(places_at, table.num_columns), strict=True):
            column = table.column(i).combine_chunks()
            normalised[name] = (column.dictionary.to_pylist(), column.indices.to_numpy().astype(np.int64))
    for i, name in enumerate(names, start=first):
        column = table.column(i).combine_chunks()
        kind = column.type
        if pa.types.is_dictionary(kind):
            codes = column.indices.fill_null(-1).to_numpy().astype(np.int64)
            uniques = np.asarray(column.dictionary.to_numpy(zero_copy_only=False), dtype=object)
            # categorical: codes and each distinct value once, where object text would be a million references
            # to scattered strings (the slowest part of building the frame)
            out.append(_categorical(codes, uniques))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            out.append(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object))
        elif name in _TEXT_COLUMNS and column.null_count == len(column):
            out.append(np.full(len(column), None, dtype=object))  # text, all missing: the driver guessed a number
        elif pa.types.is_int64(kind) or pa.types.is_float64(kind):
            out.append(column.to_numpy(zero_copy_only=False).astype(float))  # a copy: the file's pages are read-only
        else:  # a mixed column (text among numbers): Python values, typed by the caller as on the other path
            out.append(np.array(column.to_pylist(), dtype=object))
    return out, normalised


def _categorical(codes: np.ndarray, uniques: np.ndarray) -> pd.Categorical:
    """A categorical from a reader's dictionary: its values are distinct and the codes in range by construction,
    so pandas' checks (hashing every distinct value again) are skipped where this pandas allows it."""
    categories = pd.Index(uniques, dtype=object)
    try:
        dtype = pd.CategoricalDtype._from_fastpath(categories, ordered=False)
    except (AttributeError, TypeError):  # another pandas: the public, checking way
        dtype = pd.CategoricalDtype(categories)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


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
        scoped = "AND order_id IN (SELECT order_id FROM temp.feature_context)"
        read = _OrderRead(conn, "WHERE o.order_id IN (SELECT order_id FROM temp.feature_context)", scoped)
    else:
        scoped = ""
        read = _OrderRead(conn, "", scoped)
    try:
        side = read.side()
        pressure = _pressure(side.messages, message_scores)
        frame, normalised, through_readers = read.finish()
    finally:
        read.close()
    if read.side_from_readers and not through_readers:
        # the readers' flags and messages came with their rows in a frame that is not this one
        side = read.side_through_sql()
        pressure = _pressure(side.messages, message_scores)
    if scoped:
        targets = {row[0] for row in conn.execute("SELECT order_id FROM temp.feature_targets")}
        frame["target"] = frame["order_id"].isin(targets)
    else:
        frame["target"] = True
    if frame.empty:
        return frame
    flag_row, message_row = side.flag_row, side.message_row
    if flag_row is None or message_row is None:
        # order id -> row, hashed once (object dtype: pandas would first copy the ids into its string dtype)
        position = pd.Index(frame["order_id"].to_numpy(dtype=object), dtype=object)
        flag_row = position.get_indexer(side.flags["order_id"].to_numpy(dtype=object))
        message_row = position.get_indexer(side.messages["order_id"].to_numpy(dtype=object))

    flag_code = side.flags["code"].to_numpy(dtype=object)
    for code in FLAG_CODES:
        column = np.zeros(len(frame), dtype=np.int8)
        column[flag_row[(flag_code == code) & (flag_row >= 0)]] = 1
        frame[f"flag_{code}"] = column
    # object text, as it is read: pandas would copy it into its string dtype, and the scorer copy it back
    frame["codes"] = pd.Series(_joined_codes(flag_row, flag_code, len(frame)), index=frame.index, dtype=object,
                               copy=False)

    known = message_row >= 0
    frame["n_seller_messages"] = np.bincount(message_row[known], minlength=len(frame)).astype(float)
    pressure_max = np.zeros(len(frame))
    if pressure is not None:
        np.fmax.at(pressure_max, message_row[known], pressure[known])
    frame["msg_pressure_max"] = pressure_max

    _add_number_and_buyer_context(conn, frame, scoped=bool(scoped))
    frame["as_of_jd"] = view.datetime_to_jd(as_of)
    frame["dest_match_level"] = destination_match_level(frame, normalised)
    _add_seller_aggregates(frame)
    return frame


def _pressure(messages: pd.DataFrame, message_scores: MessageScorer | None) -> np.ndarray | None:
    """Each message's pressure probability (None when there is no message)."""
    return np.asarray((message_scores or score_messages)(messages), dtype=float) if len(messages) else None


def _joined_codes(rows: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Per row of the frame, its flags' codes sorted and joined with commas ('' for none), from the flags'
    rows (-1: an order outside the frame) and codes. Each distinct set of codes is joined once."""
    out = np.full(n, "", dtype=object)
    inside = rows >= 0
    rows, codes = rows[inside], codes[inside]
    if not len(rows):
        return out
    code_ids, names = pd.factorize(codes)
    texts = [str(c) for c in names]
    order = np.argsort(np.asarray(texts, dtype=object), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    # rows by (row, code in sorted order): each row's codes become one run of the sorted list
    sort = np.lexsort((rank[code_ids], rows))
    rows, code_ids = rows[sort], code_ids[sort]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    ranks = rank[code_ids]
    if len(names) < 63 and not ((rows[1:] == rows[:-1]) & (ranks[1:] == ranks[:-1])).any():
        # each row's set of codes as one integer (a bit per code, by rank): the few distinct sets joined once
        sets, which = np.unique(np.add.reduceat(np.left_shift(np.int64(1), ranks), starts), return_inverse=True)
        by_rank = [texts[i] for i in order]
        joined = [",".join(by_rank[r] for r in range(len(by_rank)) if bits >> r & 1) for bits in sets.tolist()]
        out[rows[starts]] = np.array(joined, dtype=object)[which]
        return out
    texts_of: dict[tuple[int, ...], str] = {}  # a code repeated on one row (the store's flags cannot be)
    for start, end, row in zip(starts.tolist(), np.r_[starts[1:], len(rows)].tolist(), rows[starts].tolist(),
                               strict=True):
        key = tuple(code_ids[start:end].tolist())
        text = texts_of.get(key)
        if text is None:
            text = texts_of[key] = ",".join(texts[c] for c in key)
        out[row] = text
    return out


def _codes_of(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, -1 for missing; distinct values) of a text column: a categorical column's own (the whole-store
    read's; its categories may hold values no row uses), else `pandas.factorize`'s."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), values.cat.categories.to_numpy(dtype=object)
    return pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)


def has_text(values: pd.Series) -> np.ndarray:
    """Per row, whether a text column holds non-empty text (object or categorical)."""
    codes, uniques = _codes_of(values)
    return np.r_[np.asarray(uniques, dtype=object) != "", False].astype(bool)[codes]  # code -1 (missing): last


def _group_codes(factorized: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, int, np.ndarray]:
    """Integer group keys 0..n-1 (a missing value is key 0, a group of its own as pandas counts a -1 code), the
    number of keys, and per key whether its value is non-empty text."""
    codes, uniques = factorized
    # uniques hold no missing value, and str(u) is empty only for u == ''
    filled = np.r_[False, np.asarray(uniques, dtype=object) != ""].astype(bool)
    return codes.astype(np.int64) + 1, len(uniques) + 1, filled


def _group_sum(keys: np.ndarray, n_keys: int, values: np.ndarray) -> np.ndarray:
    """Per row, the sum of `values` over the row's group (exact here: the values are whole numbers)."""
    return np.bincount(keys, weights=values, minlength=n_keys)[keys]


def _add_number_and_buyer_context(conn: sqlite3.Connection, frame: pd.DataFrame, *, scoped: bool) -> None:
    """How many orders and buyers share the number; the buyer's other orders. Over the whole store."""
    any_flag = (frame["codes"].to_numpy(dtype=object) != "").astype(float)
    not_received = (_per_value(frame["buyer_received"], _answer, object) == "no").astype(float)
    if not scoped:  # the frame holds every order: count with integer group codes
        number, n_numbers, filled = _group_codes(_codes_of(frame["tracking_number"]))
        numbered = filled[number]
        buyer, n_buyers, _ = _group_codes(_codes_of(frame["buyer_id"]))
        on_number = np.bincount(number[numbered], minlength=n_numbers)
        frame["n_orders_on_number"] = np.where(numbered, on_number[number], 0).astype(float)
        pairs = np.sort(number[numbered] * n_buyers + buyer[numbered])
        # distinct (number, buyer) pairs by sorting: numpy 2's hashing np.unique is ~50x slower on a million ints
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
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


def _per_value(values: pd.Series, fn: Callable[[str], Any], dtype: Any = np.float64) -> np.ndarray:
    """`fn(str(value))` per row ('' for a missing value), computed once per distinct value: the same result as
    `values.fillna('').astype(str)` then string methods, without pandas 3's slow string arrays."""
    codes, uniques = _codes_of(values)
    mapped = np.array([fn(str(u)) for u in uniques] + [fn("")], dtype=dtype)  # code -1 (missing): fn('')
    return mapped[codes]


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """NaN as 0 (pandas' fillna(0): infinities stay what they are)."""
    return np.where(np.isnan(values), 0.0, values)


def _answer(text: str) -> str:
    return text.strip().lower()


def _shared_codes(*columns: tuple[list[str], np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Per row of each (texts, index) column, one integer per distinct text over all the columns, so columns
    compare as integers; and the integer of '' (-1 when no column has it)."""
    texts = np.array([t for column_texts, _ in columns for t in column_texts], dtype=object)
    codes, uniques = pd.factorize(texts)
    out, start = [], 0
    for column_texts, index in columns:
        out.append(codes[start:start + len(column_texts)][index])
        start += len(column_texts)
    empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "")
    return out, int(empty[0]) if len(empty) else -1


def destination_match_level(frame: pd.DataFrame, normalised: Normalised | None = None) -> pd.Series:
    """Where the delivered scan agrees with the order: 3 postcode, 2 city, 1 country only, 0.5 another city or
    postcode in the right country, 0 another country. NaN when there is no delivered scan naming a place.
    `normalised`: place columns the whole-store readers normalised already.
    """
    level = np.full(len(frame), np.nan)
    factorized = {c: _codes_of(frame[c]) for c in (
        "delivered_country", "delivered_city", "delivered_postcode", "dest_country", "dest_city", "dest_postcode")}
    has_place = np.zeros(len(frame), dtype=bool)
    for name in ("delivered_country", "delivered_city", "delivered_postcode"):
        codes, uniques = factorized[name]
        filled = np.r_[np.asarray(uniques, dtype=object) != "", False].astype(bool)  # code -1 (missing): last
        has_place |= filled[codes]
    if not has_place.any():
        return pd.Series(level, index=frame.index)
    rows = np.flatnonzero(has_place)

    def side(name: str, normalise) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
        """The chosen rows' normalised texts of a place column, as (texts, each row's index into them)."""
        known = (normalised or {}).get(name)
        if known is not None:
            return known[0], known[1][rows]
        codes, uniques = factorized[name]
        if name.endswith("postcode"):
            country_codes, countries = factorized[name.replace("postcode", "country")]
            return places.normalised_postcodes((codes[rows], uniques), (country_codes[rows], countries))
        return places.normalised_per_value(codes[rows], uniques, normalise)

    (dest_country, got_country), no_country = _shared_codes(
        side("dest_country", places.normalize_country), side("delivered_country", places.normalize_country))
    (dest_city, got_city), no_city = _shared_codes(
        side("dest_city", places.normalize_city), side("delivered_city", places.normalize_city))
    (dest_post, got_post), no_post = _shared_codes(side("dest_postcode", None), side("delivered_postcode", None))
    sub = np.ones(len(rows))
    city_ok = (dest_city != no_city) & (dest_city == got_city)
    post_ok = (dest_post != no_post) & (dest_post == got_post)
    sub[city_ok] = 2.0
    sub[post_ok] = 3.0
    wrong_local = ((got_post != no_post) & (dest_post != no_post) & ~post_ok) | \
        ((got_post == no_post) & (got_city != no_city) & (dest_city != no_city) & ~city_ok)
    sub[wrong_local] = 0.5
    sub[(got_country != no_country) & (dest_country != no_country) & (got_country != dest_country)] = 0.0
    level[rows] = sub
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
    seller, n_sellers, _ = _group_codes(_codes_of(frame["seller_id"]))
    transit = (frame["delivered_jd"] - frame["first_event_jd"]).to_numpy()
    delivered = frame["delivered_jd"].notna().to_numpy()
    any_flag = frame[[f"flag_{c}" for c in FLAG_CODES]].to_numpy().sum(axis=1) > 0
    no_customs = ((frame["n_export"] + frame["n_import"]) == 0).to_numpy()
    not_received = _per_value(frame["buyer_received"], _answer, object) == "no"
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
        country = pd.Series(_per_value(frame["dest_country"], places.normalize_country, object), index=frame.index)
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

    def transform_frame(self, X: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:  # noqa: N803
        """The features as a named DataFrame (for reasons and inspection); of the frame's rows at the positions
        `rows` only, when given (each row's features are its own: the scorer leaves out orders without a number
        this way, instead of copying them out of the whole block)."""
        check_is_fitted(self, "route_median_transit_")
        f = self._check_frame(X)

        def column(name: str) -> np.ndarray:
            return f[name].to_numpy(dtype=np.float64)

        # numpy columns, then one column-major float block: the frame returned is a view of it, and the
        # classifier reads it as it is (a pandas frame built column by column costs more than the arithmetic)
        out: dict[str, np.ndarray] = {}
        for code in FLAG_CODES:
            out[f"flag_{code}"] = column(f"flag_{code}")
        out["n_flags"] = np.sum([out[f"flag_{c}"] for c in FLAG_CODES], axis=0)  # whole numbers: exact in any order
        delivered, first_event, ordered = column("delivered_jd"), column("first_event_jd"), column("ordered_jd")
        first_scan, shipped, confirmed = column("first_scan_jd"), column("shipped_jd"), column("confirmed_jd")
        out["accept_to_delivered_days"] = delivered - first_event
        out["physical_to_delivered_days"] = delivered - first_scan
        out["order_to_delivered_days"] = delivered - ordered
        route = _per_value(f["dest_country"], lambda text: self.route_median_transit_.get(
            places.normalize_country(text), np.nan))
        route = np.maximum(np.where(np.isnan(route), self.global_median_transit_, route), 0.5)
        out["transit_vs_route_median"] = out["accept_to_delivered_days"] / route
        out["order_to_first_scan_days"] = first_event - ordered
        out["shipped_to_first_physical_days"] = first_scan - shipped
        out["ship_delay_days"] = shipped - ordered
        for name in ("n_events", "n_scans", "n_transit", "n_export", "n_import"):
            out[name] = _zero_nan(column(name))
        out["delivered"] = (~np.isnan(delivered)).astype(float)
        last_scan = column("last_scan_jd")
        age = column("as_of_jd") - np.where(np.isnan(last_scan), first_event, last_scan)
        # staleness matters for parcels still on their way; a delivered parcel is done, not stale
        out["days_since_last_event"] = np.minimum(np.where(np.isnan(delivered), age, np.nan), self.max_age_days)
        out["order_age_days"] = np.minimum(column("as_of_jd") - ordered, self.max_age_days)
        out["dest_match_level"] = column("dest_match_level")
        out["confirm_minus_delivered_days"] = confirmed - delivered
        out["confirmed_before_delivery"] = (~np.isnan(confirmed) & (np.isnan(delivered) | (confirmed < delivered))
                                            ).astype(float)
        said_no = _per_value(f["buyer_received"], lambda text: float(_answer(text) == "no"))
        out["buyer_received"] = _per_value(f["buyer_received"], lambda text: {"yes": 1.0, "no": 0.0}.get(
            _answer(text), np.nan))
        out["orders_on_number"] = _zero_nan(column("n_orders_on_number"))
        out["buyers_on_number"] = _zero_nan(column("buyers_on_number"))
        codes = {c: float(i) for i, c in enumerate(CARRIERS)}
        out["carrier_code"] = _per_value(f["carrier"], lambda text: codes.get(text.lower(), float(len(CARRIERS))))
        out["promised_days"] = pd.to_numeric(f["promised_days"], errors="coerce").to_numpy(dtype=np.float64)
        out["amount"] = pd.to_numeric(f["amount"], errors="coerce").to_numpy(dtype=np.float64)
        out["msg_pressure_max"] = column("msg_pressure_max")
        out["n_seller_messages"] = column("n_seller_messages")
        for name in ("seller_n_orders", "seller_flag_rate", "seller_median_transit", "seller_fast_share",
                     "seller_reuse_share", "seller_no_customs_share", "seller_not_received_share",
                     "seller_pressure_share", "buyer_n_orders"):
            out[name] = column(name)
        out["buyer_not_received_other"] = np.maximum(_zero_nan(column("_buyer_not_received"))
                                                     - said_no, 0.0)
        out["buyer_flagged_other"] = np.maximum(_zero_nan(column("_buyer_flagged"))
                                                - (out["n_flags"] > 0), 0.0)
        matrix = np.empty((len(f) if rows is None else len(rows), len(FEATURES)), dtype=np.float64, order="F")
        for j, name in enumerate(FEATURES):
            matrix[:, j] = out[name] if rows is None else np.broadcast_to(out[name], (len(f),))[rows]
        return pd.DataFrame(matrix, index=f.index if rows is None else f.index[rows], columns=list(FEATURES),
                            copy=False)

    @staticmethod
    def _check_frame(X) -> pd.DataFrame:  # noqa: ANN001, N803
        if not isinstance(X, pd.DataFrame):
            raise TypeError("OrderFeatures expects the order frame from detectors.features.load_order_frame")
        missing = [c for c in ("order_id", "delivered_jd", "first_event_jd", "as_of_jd") if c not in X.columns]
        if missing:
            raise ValueError(f"order frame lacks columns {missing}; build it with load_order_frame")
        return X
