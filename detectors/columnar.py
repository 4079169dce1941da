"""The whole-store order frame, read column-wise: Arrow instead of SQL aggregates, for a big store.

`detectors.view.tracking_aggregates_sql` asks SQLite for fourteen aggregates per tracking number. Over
eight million events that costs about a minute of SQLite's expression evaluation, most of it spent
re-testing each scan's kind once per aggregate. Here SQLite only hands over the raw columns (through the
ADBC SQLite driver, straight into Arrow memory without a Python object per value), each scan's kind is
decided once per distinct (status, raw_code) pair, and numpy reduces per number: two child processes
share the slices of the events, so both cores work and memory stays bounded.

The answers are the SQL path's, exactly: the kinds of scan are decided by the very SQL expressions of
`ScanKinds` (on a tiny in-memory table of the distinct pairs), text minima and maxima compare bytes as
SQLite's BINARY collation does, and Julian days are computed as SQLite's `julianday` computes them.
`tests/test_columnar.py` holds the two paths to the same frame.

It runs in a child process (`load_whole_store`): the driver brings its own copy of SQLite, and two copies
of SQLite in one process break each other's POSIX file locks when either closes the database file.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any

import numpy as np

EVENTS_PER_SLICE = 500_000  # a slice's columns and their scratch arrays: about 150 MB per reader
WORKERS = 2
# SQLite's julianday(): milliseconds since the Julian epoch, divided as a double
_JD_MS_AT_UNIX_EPOCH = 210_866_760_000_000
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class _Connection:
    """A read-only connection of the ADBC SQLite driver, every query in one read transaction. Through the driver
    manager's own objects, not its DB-API module: that one imports pyarrow.dataset, which imports pandas, half a
    second of each reader's start the readers never use."""

    def __init__(self, path: str):
        import adbc_driver_manager
        import adbc_driver_sqlite

        self.db = adbc_driver_sqlite.connect(f"file:{urllib.parse.quote(path)}?mode=ro")  # a path may hold '?', '#'
        try:
            self.conn = adbc_driver_manager.AdbcConnection(self.db)
            self.conn.set_autocommit(False)  # one transaction: every query sees the same store
        except BaseException:
            self.db.close()
            raise

    def fetch(self, sql: str, *, one_batch: bool = False) -> Any:
        """A query's rows as an Arrow table. The driver infers each column's type from the first batch of rows:
        either the query starts with a typed sentinel row that the caller filters out, or `one_batch` makes the
        first batch all of them."""
        import adbc_driver_manager
        import pyarrow as pa

        statement = adbc_driver_manager.AdbcStatement(self.conn)
        try:
            if one_batch:
                statement.set_options(**{"adbc.sqlite.query.batch_rows": str(ONE_BATCH)})
            statement.set_sql_query(sql)
            stream, _ = statement.execute_query()
            return pa.RecordBatchReader._import_from_c(stream.address).read_all()
        finally:
            statement.close()

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.db.close()


ONE_BATCH = 1 << 30


def file_for_children(conn: sqlite3.Connection, size_sql: str, minimum: int) -> str | None:
    """The store's file, when child processes may work on the whole store instead of this connection: it has
    a file, this connection holds no uncommitted writes (which they would not see, or would wait for), and
    `size_sql` (one number: orders, events) reaches `minimum` (below it a child starts slower than the
    work takes). None otherwise."""
    path = next((file for _, name, file in conn.execute("PRAGMA database_list") if name == "main"), "")
    if not path or conn.in_transaction:
        return None
    return path if (conn.execute(size_sql).fetchone()[0] or 0) >= minimum else None


def _without_sentinel(table: Any, column: str, mark: int) -> Any:
    """The table without its sentinel row: a zero-copy slice when it came first, as SQLite returns it."""
    import pyarrow.compute as pc

    if table.num_rows and table[column][0].as_py() == mark and pc.sum(pc.equal(table[column], mark)).as_py() == 1:
        return table.slice(1)
    return table.filter(pc.not_equal(table[column], mark))


_EVENT_SLICE_SQL = """
    SELECT '' AS tracking_number, '' AS occurred_at, '' AS status, '' AS raw_code, '' AS country, '' AS city,
           '' AS postcode, -1 AS id, 0 AS desc_bits
    UNION ALL
    SELECT tracking_number, occurred_at, status, raw_code, country, city, postcode, id,
           CASE WHEN raw_code IS NULL THEN (description LIKE '%export%') + 2 * (description LIKE '%import%') END
    FROM tracking_events WHERE id >= {low} AND id < {high}"""


def kind_expressions(kinds: Any) -> tuple[str, ...]:
    """The SQL path's own expressions for a scan's kinds (a `view.ScanKinds`), as 0/1 columns: scan, transit,
    export code, import code, locality, country side, delivered. Built in the parent, so that the child
    processes need not import pandas to rebuild them."""
    from detectors import view

    return (
        f"status NOT IN ({view._sql_list(view.NON_PHYSICAL)})",
        f"status IN ({view._sql_list(kinds.transit_statuses)})",
        kinds._glob(kinds.export_codes),
        kinds._glob(kinds.import_codes),
        kinds.locality_sql(),
        kinds.country_side_sql(),
        "status = 'delivered'",
    )


def _kind_table(expressions: tuple[str, ...], pairs: list[tuple[Any, Any]]) -> np.ndarray:
    """For each (status, raw_code) pair, the verdict of each expression as 0/1, decided by SQLite itself."""
    mem = sqlite3.connect(":memory:")
    try:
        mem.execute("CREATE TABLE pairs (n INTEGER PRIMARY KEY, status TEXT, raw_code TEXT)")
        mem.executemany("INSERT INTO pairs VALUES (?, ?, ?)", [(i, s, r) for i, (s, r) in enumerate(pairs)])
        columns = ", ".join(f"coalesce({e}, 0)" for e in expressions)
        rows = mem.execute(f"SELECT {columns} FROM pairs ORDER BY n").fetchall()
    finally:
        mem.close()
    return np.array(rows, dtype=np.int8).reshape(len(pairs), len(expressions))


class Fallback(Exception):
    """The columnar read cannot promise the SQL path's answer here (say, a time not in canonical form)."""


_INT_MAX = np.iinfo(np.int64).max
_INT_MIN = np.iinfo(np.int64).min


def _encode(values: Any) -> Any:
    """Dictionary-encode an Arrow array or chunked array into one DictionaryArray."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    return encoded.combine_chunks() if isinstance(encoded, pa.ChunkedArray) else encoded


def _codes(keys: Any) -> tuple[np.ndarray, Any]:
    """Integer group codes of an Arrow string array (no nulls) and the distinct keys."""
    encoded = _encode(keys)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def _reduce(codes: np.ndarray, n: int, values: np.ndarray, how: str) -> np.ndarray:
    """Per-group min / max of int64 values; groups without a value hold the sentinel."""
    if how == "min":
        out = np.full(n, _INT_MAX, dtype=np.int64)
        np.minimum.at(out, codes, values)
    else:
        out = np.full(n, _INT_MIN, dtype=np.int64)
        np.maximum.at(out, codes, values)
    return out


def _text_extremes(codes: np.ndarray, n: int, texts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-group smallest and largest text (object arrays, None where a group has none), compared as
    SQLite's BINARY collation compares: UTF-8 bytes, which order as code points do, as Python's str."""
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = pc.is_valid(texts).to_numpy(zero_copy_only=False)
    low = np.full(n, None, dtype=object)
    high = np.full(n, None, dtype=object)
    if not valid.any():
        return low, high
    present = texts.filter(pa.array(valid))
    encoded = _encode(present)
    distinct = encoded.dictionary.to_pylist()
    order = sorted(range(len(distinct)), key=distinct.__getitem__)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order] = np.arange(len(distinct))
    by_rank = np.array([distinct[i] for i in order] + [None], dtype=object)
    ranks = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    group = codes[valid]
    smallest = _reduce(group, n, ranks, "min")
    largest = _reduce(group, n, ranks, "max")
    low = by_rank[np.where(smallest == _INT_MAX, len(distinct), smallest)]
    high = by_rank[np.where(largest == _INT_MIN, len(distinct), largest)]
    return low, high


def _slice_aggregates(path: str, kinds: tuple[str, ...], low: int, high: int) -> dict[str, Any] | None:
    """The aggregates of the events with low <= id < high (`kinds`: `kind_expressions`): times as epoch ms."""
    import pyarrow as pa
    import pyarrow.compute as pc

    conn = _Connection(path)
    try:
        t = conn.fetch(_EVENT_SLICE_SQL.format(low=low, high=high))
    finally:
        conn.close()
    t = _without_sentinel(t, "id", -1)
    if t.num_rows == 0:
        return None
    codes, keys = _codes(t["tracking_number"])
    n = len(keys)
    status, raw = _encode(t["status"]), _encode(t["raw_code"])
    s_values, r_values = status.dictionary.to_pylist(), raw.dictionary.to_pylist()
    width = len(r_values) + 1  # index 0: raw_code NULL
    pair = (status.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
            + raw.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1)
    used, inverse = np.unique(pair, return_inverse=True)
    verdicts = _kind_table(kinds, [(s_values[p // width], None if p % width == 0 else r_values[p % width - 1])
                                   for p in used.tolist()])[inverse]
    scan, transit, export, imported, locality, country_side, delivered = (verdicts[:, k].astype(bool)
                                                                          for k in range(7))
    desc = t["desc_bits"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    export |= (desc & 1).astype(bool)
    imported |= (desc & 2).astype(bool)
    ms_array = pc.cast(pc.strptime(t["occurred_at"], format=_TIME_FORMAT, unit="ms", error_is_null=True), pa.int64())
    if ms_array.null_count:
        raise Fallback("a scan time is not in the store's canonical form")
    ms = ms_array.to_numpy(zero_copy_only=False)
    ids = t["id"].to_numpy(zero_copy_only=False).astype(np.int64)
    empty = pa.scalar("", pa.string())
    where = np.flatnonzero(locality)
    places = pc.binary_join_element_wise(*(pc.fill_null(t[c].take(pa.array(where)), empty)
                                           for c in ("country", "city", "postcode")), "|")
    locality_min, locality_max = _text_extremes(codes[where], n, places)
    where = np.flatnonzero(country_side)
    country_min, country_max = _text_extremes(codes[where], n, t["country"].take(pa.array(where)))
    return {
        "tracking_number": keys,
        "n_events": np.bincount(codes, minlength=n),
        "n_scans": np.bincount(codes[scan], minlength=n),
        "n_transit": np.bincount(codes[transit], minlength=n),
        "n_export": np.bincount(codes[export], minlength=n),
        "n_import": np.bincount(codes[imported], minlength=n),
        "first_event": _reduce(codes, n, ms, "min"),
        "first_scan": _reduce(codes[scan], n, ms[scan], "min"),
        "last_scan": _reduce(codes[scan], n, ms[scan], "max"),
        "delivered": _reduce(codes[delivered], n, ms[delivered], "min"),
        "max_event_id": _reduce(codes, n, ids, "max"),
        "locality_min": locality_min, "locality_max": locality_max,
        "country_side_min": country_min, "country_side_max": country_max,
    }


_HOW = {"n_events": "sum", "n_scans": "sum", "n_transit": "sum", "n_export": "sum", "n_import": "sum",
        "first_event": "min", "first_scan": "min", "last_scan": "max", "delivered": "min", "max_event_id": "max",
        "locality_min": "min", "locality_max": "max", "country_side_min": "min", "country_side_max": "max"}
_TIMES = {"first_event": "first_event_jd", "first_scan": "first_scan_jd", "last_scan": "last_scan_jd",
          "delivered": "delivered_jd"}


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per tracking number from the slices' rows (a number's events may straddle two slices)."""
    import pyarrow as pa

    if len(parts) == 1:
        return parts[0]
    codes, keys = _codes(pa.chunked_array([p["tracking_number"] for p in parts]))
    n = len(keys)
    out: dict[str, Any] = {"tracking_number": keys}
    for name, how in _HOW.items():
        values = np.concatenate([p[name] for p in parts])
        if how == "sum":
            out[name] = np.bincount(codes, weights=values, minlength=n).astype(np.int64)
        elif values.dtype == object:
            texts = pa.array(values, type=pa.string())
            low, high = _text_extremes(codes, n, texts)
            out[name] = low if how == "min" else high
        else:  # a slice's "no value" sentinel loses to any real value, and survives when there is none
            out[name] = _reduce(codes, n, values, how)
    return out


_ORDERS_SQL = """
    SELECT '' AS order_id, '' AS buyer_id, '' AS seller_id, '' AS dest_country, '' AS dest_city,
           '' AS dest_postcode, '' AS tracking_number, '' AS carrier, 0.0 AS promised_days, '' AS buyer_received,
           0.0 AS ordered_jd, 0.0 AS shipped_jd, 0.0 AS confirmed_jd, '' AS shipment_state, 0 AS not_found_count,
           1 AS sentinel
    UNION ALL
    SELECT o.order_id, o.buyer_id, o.seller_id, o.dest_country, o.dest_city, o.dest_postcode, o.tracking_number,
           o.carrier, CASE WHEN typeof(o.promised_days) IN ('integer', 'real') THEN o.promised_days + 0.0 END,
           o.buyer_received, julianday(o.ordered_at), julianday(o.shipped_at), julianday(o.buyer_confirmed_at),
           s.state, coalesce(s.not_found_count, 0), 0
    FROM orders o LEFT JOIN shipments s ON s.tracking_number = o.tracking_number"""


def _orders_table(path: str, low: int, high: int) -> Any:
    """The orders with low <= rowid < high and their shipments' state, as an Arrow table (times as Julian
    days, by SQLite)."""
    conn = _Connection(path)
    try:
        t = conn.fetch(_ORDERS_SQL + f" WHERE o.rowid >= {int(low)} AND o.rowid < {int(high)}")
    finally:
        conn.close()
    return _without_sentinel(t, "sentinel", 1).drop_columns(["sentinel"])


def _bounds(path: str) -> tuple[int, int, int, int]:
    """The ranges of event ids and order rowids: how the work is sliced."""
    conn = _Connection(path)
    try:
        t = conn.fetch("SELECT (SELECT coalesce(min(id), 0) FROM tracking_events) AS e_low, "
                         "(SELECT coalesce(max(id), 0) FROM tracking_events) AS e_high, "
                         "(SELECT coalesce(min(rowid), 0) FROM orders) AS o_low, "
                         "(SELECT coalesce(max(rowid), 0) FROM orders) AS o_high")
    finally:
        conn.close()
    row = {name: int(t[name][0].as_py()) for name in t.column_names}
    return row["e_low"], row["e_high"] + 1, row["o_low"], row["o_high"] + 1


# text columns with few distinct values: one Python string per distinct value, shared by every row
_SHARED_TEXT = ("seller_id", "dest_country", "dest_city", "dest_postcode", "carrier", "buyer_received",
                "shipment_state")


def _objects(column: Any, shared: bool) -> np.ndarray:
    """An Arrow text column as an object array (None for null), as the SQL path's frame holds it."""
    if not shared:
        return column.to_numpy(zero_copy_only=False)
    encoded = _encode(column)
    values = np.array(encoded.dictionary.to_pylist() + [None], dtype=object)
    return values[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)]


def _finish(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not parts:
        return None
    out = _combine(parts)
    for name, column in _TIMES.items():
        ms = out.pop(name)
        sentinel = _INT_MAX if _HOW[name] == "min" else _INT_MIN
        jd = (ms.astype(np.float64) + _JD_MS_AT_UNIX_EPOCH) / 86_400_000.0
        out[column] = np.where(ms == sentinel, np.nan, jd)
    return out


def load_whole_store(path: str, kinds: Any, workers: int = WORKERS) -> Any:
    """Every order with its tracking number's aggregates: the frame `view.load_order_frame` builds from SQL,
    before its final touches (n_orders_on_number, dtypes). Reads run in `workers` child processes.

    Raises Fallback (or the driver's error) when the SQL path must answer instead.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from detectors import view

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        low, high, o_low, o_high = pool.submit(_bounds, path).result()
        o_mid = (o_low + o_high) // 2  # orders in two halves: a reader never holds them all
        order_futures = [pool.submit(_orders_table, path, a, b) for a, b in ((o_low, o_mid), (o_mid, o_high))]
        expressions = kind_expressions(kinds)
        futures = [pool.submit(_slice_aggregates, path, expressions, a, min(a + EVENTS_PER_SLICE, high))
                   for a in range(low, high, EVENTS_PER_SLICE)]
        parts = [p for p in (f.result() for f in futures) if p is not None]
        orders = pa.concat_tables([f.result() for f in order_futures])
    aggregates = _finish(parts)
    frame = {name: _objects(orders[name], name in _SHARED_TEXT) if pa.types.is_string(orders.schema.field(name).type)
             else orders[name].to_numpy(zero_copy_only=False) for name in orders.column_names}
    n = orders.num_rows
    if aggregates is None:
        at = np.full(n, -1, dtype=np.int64)
    else:
        at = pc.index_in(orders["tracking_number"], value_set=aggregates.pop("tracking_number"))
        at = at.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    found = at >= 0
    for name in view.AGGREGATE_COLUMNS:
        if aggregates is None:
            values = np.array([], dtype=object if name.startswith(("locality", "country_side")) else np.float64)
        else:
            values = aggregates[name]
        if values.dtype == object:
            column = np.full(n, None, dtype=object)
        elif values.dtype.kind == "f":
            column = np.full(n, np.nan)
        else:
            column = np.zeros(n, dtype=np.int64)
        column[found] = values[at[found]]
        frame[name] = column
    # text stays in plain object columns, as the SQL path gives it (pandas 3 would infer its string dtype)
    return pd.DataFrame({name: pd.Series(values, dtype=object) if values.dtype == object else values
                         for name, values in frame.items()})


def read_tables(path: str, *queries: str) -> list[Any]:
    """In a child process: each query's rows as one Arrow table, in one read transaction (the driver does
    not autocommit), each in one batch so the driver infers a column's type from all its rows."""
    conn = _Connection(path)
    try:
        return [conn.fetch(sql, one_batch=True) for sql in queries]
    finally:
        conn.close()


def _write_ipc(columns: list[Any], out: str) -> int:
    import pyarrow as pa

    table = pa.table(columns, names=[f"c{i}" for i in range(len(columns))])
    with pa.OSFile(out, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return table.num_rows


def _encoded(column: Any, at: Any = None) -> Any:
    """A column as one array, text dictionary-encoded (each distinct value once, rows as indices, numbered in
    order of first appearance as pandas.factorize numbers them), optionally taken at the positions `at`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.dictionary_encode(column)
        if at is not None:
            column = pa.DictionaryArray.from_arrays(column.indices.take(at), column.dictionary)
        return column
    return column if at is None else column.take(at)


def _text_codes(column: Any) -> tuple[np.ndarray, list[Any]] | None:
    """(codes, -1 for missing; distinct values) of an encoded column, or None when it is not text."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.indices.fill_null(-1).to_numpy().astype(np.int64), column.dictionary.to_pylist()
    if column.null_count == len(column):  # no text at all: the driver typed it as it liked
        return np.full(len(column), -1, dtype=np.int64), []
    return None


def _dictionary(normalised: tuple[list[str], np.ndarray]) -> Any:
    """(texts, each row's index into them) as a dictionary array (its dictionary may repeat a text)."""
    import pyarrow as pa

    texts, index = normalised
    return pa.DictionaryArray.from_arrays(pa.array(index, pa.int32()), pa.array(texts, pa.string()))


def normalised_places(country: Any, city: Any, postcode: Any) -> list[Any]:
    """The place normalisation `detectors.features.destination_match_level` makes, done by a reader: per row,
    the normalised country, city and postcode (with its country), as dictionary arrays; [] when a column is
    not text (the caller then normalises itself)."""
    import pyarrow as pa

    from detectors import places

    codes = [_text_codes(column) for column in (country, city)]
    # a dictionary's distinct postcodes stay arrow text: places normalises their bytes, not Python strings
    codes.append((postcode.indices.fill_null(-1).to_numpy(), postcode.dictionary)
                 if pa.types.is_dictionary(postcode.type) else _text_codes(postcode))
    if any(c is None for c in codes):
        return []
    return [_dictionary(places.normalised_per_value(*codes[0], places.normalize_country)),
            _dictionary(places.normalised_per_value(*codes[1], places.normalize_city)),
            _dictionary(places.normalised_postcode_array(codes[2], codes[0]))]


def read_to_file(path: str, sql: str, out: str, encode: tuple[int, ...] = (),
                 places: tuple[int, int, int] | None = None, mapped: tuple[tuple[str, str], ...] = (),
                 key: int = 0) -> int:
    """In a child process: `sql`'s rows into the Arrow IPC file `out`, its text columns at the positions
    `encode` dictionary-encoded, followed by the normalised place of the (country, city, postcode) columns at
    `places` (see `normalised_places`); returns the number of rows. A file, not a pickled reply: the parent
    maps it without a copy, and the child's hashing of the text happens while the other reader works.

    `mapped`: (sql, file) pairs read in the same transaction, each query's rows written to its file as the row
    of `sql` whose column `key` (a unique key) equals the query's first column (-1 when none), followed by the
    query's other columns: a LEFT JOIN as one hash lookup, so the caller finds another table's rows in its frame
    without hashing its keys itself."""
    import pyarrow as pa

    table, *others = read_tables(path, sql, *(query for query, _ in mapped))
    if mapped:
        keys = table.column(key)
        lookups = [other.column(0).cast(keys.type) for other in others]
        rows = _rows_of(pa.chunked_array([chunk for c in lookups for chunk in c.chunks], keys.type), keys)
        start = 0
        for (_, file), other in zip(mapped, others, strict=True):
            end = start + other.num_rows
            _write_ipc([pa.array(rows[start:end], pa.int64()),
                        *(other.column(i).combine_chunks() for i in range(1, other.num_columns))], file)
            start = end
    columns = [_encoded(table.column(i)) if i in encode else table.column(i) for i in range(table.num_columns)]
    if places is not None:
        columns += normalised_places(*(columns[i] for i in places))
    return _write_ipc(columns, out)


def _rows_of(values: Any, keys: Any) -> np.ndarray:
    """Per value, the position of the first equal key (-1 when none; a null finds nothing). The keys are probed
    against the distinct values rather than the values against the keys: a hash table of the few distinct values
    instead of one of a million keys."""
    import pyarrow.compute as pc

    encoded = _encode(values)
    at = pc.index_in(keys, value_set=encoded.dictionary).fill_null(-1).to_numpy().astype(np.int64)
    found = np.flatnonzero(at >= 0)[::-1]  # reversed: where keys repeat, the first one's position is kept
    row_of = np.full(len(encoded.dictionary) + 1, -1, dtype=np.int64)  # + 1: a null value's index (-1)
    row_of[at[found]] = found
    return row_of[encoded.indices.fill_null(-1).to_numpy().astype(np.int64)]


def read_aligned_to_file(path: str, keys_sql: str, right_sql: str, out: str,
                         places: tuple[int, int, int] | None = None) -> int:
    """In a child process: for each row (rowid, key) of `keys_sql`, its rowid, its key and then the columns of
    the row of `right_sql` whose first column equals the key (nulls when none), into the Arrow IPC file `out`,
    the right side's text dictionary-encoded: a SQL LEFT JOIN on a unique key, as two sequential scans and one
    hash lookup, both read in one transaction. The rowid and key (as read, not encoded: the caller compares
    them) let the caller check it joined the rows it read itself. Followed, as in `read_to_file`, by the
    normalised place of `right_sql`'s columns at `places`."""
    import pyarrow.compute as pc

    keys, right = read_tables(path, keys_sql, right_sql)
    at = pc.index_in(keys.column(1), value_set=right.column(0)).combine_chunks()
    aligned = [_encoded(right.column(i), at) for i in range(1, right.num_columns)]
    columns = [keys.column(0).combine_chunks(), keys.column(1).combine_chunks(), *aligned]
    if places is not None:
        columns += normalised_places(*(aligned[i - 1] for i in places))
    return _write_ipc(columns, out)
