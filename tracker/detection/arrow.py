"""The child readers' side: a big store read column-wise through the ADBC SQLite driver, in child processes.

Each function here runs in a spawned child (see `tracker.detection.readers` for the parent's side). SQLite
only hands over raw columns, straight into Arrow memory without a Python object per value; text arrives
dictionary-encoded, so each distinct value is handled once. Two children share the work, so both cores
read, and the parent maps the files they write instead of unpickling a copy.

- `event_bounds` and `facts_of_slice`: the shipment facts of a slice of the events, computed by the one
  definition (`detectors.facts.partial`), returned for the parent to combine.
- `read_to_file` and `read_aligned_to_file`: a query's rows (and rows of other tables mapped onto them, or a
  table aligned to them by key) into Arrow IPC files.

A child imports only Arrow, the driver, numpy and the pure `detectors.facts` / `detectors.places`: no pandas
(its processes refuse it: `Children(lean=True)`; pyarrow would import it on its first conversion of a value),
no scikit-learn. The driver brings its own copy of SQLite, and two copies of SQLite in one process break each
other's POSIX file locks when either closes the database file: so it runs in children only.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from detectors import facts

ONE_BATCH = 1 << 30
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CANONICAL_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"


@contextmanager
def _plain_errors() -> Iterator[None]:
    """The driver's errors raised as the sqlite3 module's, their message kept: the driver's own cannot be rebuilt
    from a pickle, so one raised in a child process broke the pool and its message was lost."""
    import adbc_driver_manager

    try:
        yield
    except adbc_driver_manager.Error as exc:
        raise sqlite3.OperationalError(f"{type(exc).__name__}: {exc}") from None


@contextmanager
def write_transaction(path: str) -> Iterator[Connection]:
    """A writable connection (waiting up to 30 s for the write lock, synced as the store's own connections are),
    its transaction committed when the block ends, rolled back when it fails, and closed either way."""
    conn = Connection(path, writable=True, pragmas=("PRAGMA busy_timeout = 30000", "PRAGMA synchronous = NORMAL"))
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


class Connection:
    """A connection of the ADBC SQLite driver, every statement in one transaction (read-only unless `writable`;
    `pragmas` run before it begins). Through the driver manager's own objects, not its DB-API module: that one
    imports pyarrow.dataset, which imports pandas, half a second of each reader's start the readers never use."""

    def __init__(self, path: str, *, writable: bool = False, pragmas: tuple[str, ...] = ()):
        import adbc_driver_manager
        import adbc_driver_sqlite

        # a path may hold '?', '#'
        with _plain_errors():
            self.db = adbc_driver_sqlite.connect(f"file:{urllib.parse.quote(path)}" + ("" if writable else "?mode=ro"))
        try:
            with _plain_errors():
                self.conn = adbc_driver_manager.AdbcConnection(self.db)
            for sql in pragmas:
                self.execute(sql)
            with _plain_errors():
                self.conn.set_autocommit(False)  # one transaction: every query sees the same store
        except BaseException:
            self.db.close()
            raise

    def execute(self, sql: str, rows: Any = None) -> None:
        """A statement, once per row of `rows` (an Arrow record batch) when given."""
        self._update(rows, sql=sql)

    def append(self, table: str, rows: Any) -> None:
        """The rows (an Arrow record batch, its columns named as the table's) appended to `table` (the driver's
        bulk ingest)."""
        self._update(rows, options={"adbc.ingest.target_table": table, "adbc.ingest.mode": "adbc.ingest.mode.append"})

    def _update(self, rows: Any, *, sql: str | None = None, options: dict[str, str] | None = None) -> None:
        import adbc_driver_manager

        if rows is not None and not rows.num_rows:
            return
        statement = adbc_driver_manager.AdbcStatement(self.conn)
        try:
            if options:
                statement.set_options(**options)
            if sql is not None:
                statement.set_sql_query(sql)
            if rows is not None:
                statement.bind(rows)
            with _plain_errors():
                statement.execute_update()
        finally:
            statement.close()

    def commit(self) -> None:
        with _plain_errors():
            self.conn.commit()

    def rollback(self) -> None:
        with _plain_errors():
            self.conn.rollback()

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
            with _plain_errors():
                stream, _ = statement.execute_query()
                return pa.RecordBatchReader._import_from_c(stream.address).read_all()
        finally:
            statement.close()

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.db.close()


def _without_sentinel(table: Any, column: str, mark: int) -> Any:
    """The table without its sentinel row: a zero-copy slice when it came first, as SQLite returns it."""
    import pyarrow.compute as pc

    if table.num_rows and table[column][0].as_py() == mark and pc.sum(pc.equal(table[column], mark)).as_py() == 1:
        return table.slice(1)
    return table.filter(pc.not_equal(table[column], mark))


def _encode(values: Any) -> Any:
    """Dictionary-encode an Arrow array or chunked array into one DictionaryArray."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    return encoded.combine_chunks() if isinstance(encoded, pa.ChunkedArray) else encoded


def _coded(values: Any) -> facts.Coded:
    """An Arrow text column as `facts.Coded`: the dictionary's codes (-1 for null) and its values."""
    encoded = _encode(values)
    return facts.Coded(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
                       encoded.dictionary.to_pylist())


def _epoch_ms(texts: Any) -> np.ndarray:
    """`facts.epoch_ms` of an Arrow text column: the store's canonical times parsed by Arrow, any other text by
    the definition's own reader, one value at a time (there are none in a store this project wrote)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    canonical = pc.fill_null(pc.match_substring_regex(texts, _CANONICAL_TIME), False)
    parsed = pc.cast(pc.strptime(texts, format=_TIME_FORMAT, unit="ms", error_is_null=True), pa.int64())
    ms = pc.fill_null(pc.if_else(canonical, parsed, pa.scalar(None, pa.int64())), facts.NO_TIME)
    out = ms.to_numpy(zero_copy_only=False).astype(np.int64)
    odd = np.flatnonzero(~canonical.to_numpy(zero_copy_only=False))
    if len(odd):
        others = texts.take(pa.array(odd)).to_pylist()
        out[odd] = [facts.time_text_ms(t) for t in others]
    return out


_EVENT_SLICE_SQL = """
    SELECT '' AS tracking_number, '' AS occurred_at, '' AS status, '' AS raw_code, '' AS description,
           '' AS country, '' AS city, '' AS postcode, -1 AS id
    UNION ALL
    SELECT tracking_number, occurred_at, status, raw_code,
           CASE WHEN raw_code IS NULL OR raw_code = '' THEN description END, country, city, postcode, id
    FROM tracking_events WHERE id >= {low} AND id < {high}"""


def event_bounds(path: str) -> tuple[int, int]:
    """In a child: the range of event ids [low, high), how the events are sliced."""
    conn = Connection(path)
    try:
        t = conn.fetch("SELECT coalesce(min(id), 0) AS low, coalesce(max(id), 0) AS high FROM tracking_events")
    finally:
        conn.close()
    return int(t["low"][0].as_py()), int(t["high"][0].as_py()) + 1


def facts_of_slice(path: str, kinds: facts.ScanKinds, low: int, high: int) -> dict[str, Any] | None:
    """In a child: `facts.partial` of the events with low <= id < high (None when there are none). Only the
    descriptions of scans without a raw code are read: the definition looks at no other. The slice comes in one
    batch (columns of one piece: less work for the driver and for Arrow after it)."""
    conn = Connection(path)
    try:
        t = conn.fetch(_EVENT_SLICE_SQL.format(low=int(low), high=int(high)), one_batch=True)
    finally:
        conn.close()
    _check_text(t)
    t = _without_sentinel(t, "id", -1)
    if t.num_rows == 0:
        return None
    events = event_columns(t)
    del t
    try:
        return facts.partial(events, kinds)
    finally:
        _give_back_memory()


def _check_text(table: Any) -> None:
    """Refuse a slice whose text columns did not come as text: a blob in the store makes the driver type its
    column binary (the caller then leaves the facts to SQL)."""
    import pyarrow as pa

    for field in table.schema:
        if field.name != "id" and not pa.types.is_string(field.type):
            raise TypeError(f"tracking_events.{field.name} was read as {field.type}, not text")


def event_columns(table: Any) -> dict[str, Any]:
    """An Arrow table of events (id, tracking_number, occurred_at, status, raw_code, description, country, city,
    postcode) as the columns `detectors.facts` reads: text coded, times as epoch milliseconds. The one way
    every reader of events, child or not, hands them over."""
    events = {"id": table["id"].to_numpy(zero_copy_only=False).astype(np.int64),
              "occurred_ms": _epoch_ms(table["occurred_at"])}
    for name in ("tracking_number", "status", "raw_code", "description", "country", "city", "postcode"):
        events[name] = _coded(table[name])
    return events


def _give_back_memory() -> None:
    """Hand Arrow's freed buffers back to the system: a reader lives on for the run's next task."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


# ------------------------------------------------------------------------------------------ tables to files


def read_tables(path: str, *queries: str) -> list[Any]:
    """In a child: each query's rows as one Arrow table, in one read transaction (the driver does not
    autocommit), each in one batch so the driver infers a column's type from all its rows."""
    conn = Connection(path)
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
    """In a child: `sql`'s rows into the Arrow IPC file `out`, its text columns at the positions `encode`
    dictionary-encoded, followed by the normalised place of the (country, city, postcode) columns at `places`
    (see `normalised_places`); returns the number of rows. A file, not a pickled reply: the parent maps it
    without a copy, and the child's hashing of the text happens while the other reader works.

    `mapped`: (sql, file) pairs read in the same transaction, each query's rows written to its file as the row
    of `sql` whose column `key` (a unique key) equals the query's first column (-1 when none), followed by the
    query's other columns: a LEFT JOIN as one hash lookup, so the caller finds another table's rows in its frame
    without hashing its keys itself."""
    import pyarrow as pa

    table, *others = read_tables(path, sql, *(query for query, _ in mapped))
    if mapped:
        keys = table.column(key)
        lookups = [other.column(0).cast(keys.type) for other in others]
        rows = rows_of(pa.chunked_array([chunk for c in lookups for chunk in c.chunks], keys.type), keys)
        start = 0
        for (_, file), other in zip(mapped, others, strict=True):
            end = start + other.num_rows
            _write_ipc([pa.array(rows[start:end], pa.int64()),
                        *(other.column(i).combine_chunks() for i in range(1, other.num_columns))], file)
            start = end
    columns = [_encoded(table.column(i)) if i in encode else table.column(i) for i in range(table.num_columns)]
    if places is not None:
        columns += normalised_places(*(columns[i] for i in places))
    try:
        return _write_ipc(columns, out)
    finally:
        del table, columns
        _give_back_memory()


def rows_of(values: Any, keys: Any) -> np.ndarray:
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


def read_aligned_to_file(path: str, keys_sql: str, rights: tuple[str, ...], out: str,
                         places: tuple[int, int, int] | None = None) -> int:
    """In a child: for each row (rowid, key) of `keys_sql`, its rowid, its key and then, for each query of
    `rights` in turn, the columns of its row whose first column equals the key (nulls when none), into the Arrow
    IPC file `out`, the right side's text dictionary-encoded: SQL LEFT JOINs on unique keys, as sequential scans
    and hash lookups, all read in one transaction. The rowid and key (as read, not encoded: the caller compares
    them) let the caller check it joined the rows it read itself. Followed, as in `read_to_file`, by the
    normalised place of the aligned columns at `places` (positions among the aligned columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys, *tables = read_tables(path, keys_sql, *rights)
    aligned = []
    for right in tables:
        if right.num_rows == 0:  # nothing to align (the driver types an empty column as it likes): all missing
            aligned += [pa.nulls(keys.num_rows) for _ in range(1, right.num_columns)]
            continue
        at = pc.index_in(keys.column(1), value_set=right.column(0).cast(keys.column(1).type)).combine_chunks()
        aligned += [_encoded(right.column(i), at) for i in range(1, right.num_columns)]
    columns = [keys.column(0).combine_chunks(), keys.column(1).combine_chunks(), *aligned]
    if places is not None:
        columns += normalised_places(*(aligned[i] for i in places))
    try:
        return _write_ipc(columns, out)
    finally:
        del keys, tables, aligned, columns
        _give_back_memory()
