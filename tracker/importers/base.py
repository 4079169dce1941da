"""What every import kind shares: its columns, the per-column checks, and a batching writer."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from tracker.importers.sources import Problem
from tracker.sqlite_pragmas import sort_cache
from tracker.timeutil import DUE_AT_ONCE, to_db

BATCH_SIZE = 100_000  # rows per executemany: big enough to amortise, small enough to keep memory flat (~40 MB)

Converter = Callable[[str], Any] | None


def extra_json(extras: dict[str, Any] | None) -> str | None:
    """Unknown columns, kept as one JSON object (sorted, so the same row always stores the same text)."""
    return json.dumps(extras, ensure_ascii=False, sort_keys=True) if extras else None


class Writer:
    """Collects clean records and writes them a batch at a time; the caller owns the transaction.

    Into an empty table (a store's first import), the table's secondary indexes are dropped first and built
    again from the finished table in `close()`: one sort each, instead of a random update of each for every row.
    Inside the import's transaction, so a failed import leaves them as they were."""

    table = ""
    # indexes whose keys grow with every row written (a sequence number): kept, since each new row is an append
    appended_indexes: tuple[str, ...] = ()

    def __init__(self, db: sqlite_utils.Database, stamp: str) -> None:
        self.db = db
        self.conn = db.conn
        self.rebuild: list[str] = []
        # nothing stored before this import: no record can match a stored one (a file's own repeats are refused)
        self.was_empty = bool(self.table) and self.conn.execute(
            f"SELECT 1 FROM {self.table} LIMIT 1").fetchone() is None
        if self.was_empty:
            self.rebuild = drop_secondary_indexes(self.conn, self.table, self.appended_indexes)
        self.stamp = stamp  # the import's "now", canonical UTC text
        self.batch: list[Any] = []
        self.batch_size = BATCH_SIZE
        self.inserted = 0
        self.updated = 0
        self.unchanged = 0
        self._behind: threading.Thread | None = None  # the statements still running for the last batch
        self._behind_failure: BaseException | None = None
        self.background = _other_threads_may_use(self.conn)

    def add(self, record: Any) -> None:
        """One record (the import's loop appends to `batch` itself and calls `flush` when it is full)."""
        self.batch.append(record)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def in_background(self, *statements: tuple[str, Any]) -> None:
        """Run these statements (sql, parameters) while the import reads and checks the next batch: each is one long step inside
        SQLite, which lets go of the GIL meanwhile, so the two use both cores. The next use of the connection
        waits for them first (`settle`). Run at once where the connection is bound to its thread."""
        self.settle()
        if not self.background:
            for sql, parameters in statements:
                self.conn.execute(sql, parameters)
            return

        def run() -> None:
            try:
                for sql, parameters in statements:
                    self.conn.execute(sql, parameters)
            except BaseException as exc:  # raised in the import's thread by `settle`
                self._behind_failure = exc

        self._behind = threading.Thread(target=run, name="tracker-import-writer", daemon=True)
        self._behind.start()

    def settle(self) -> None:
        """Wait for the statements `in_background` started; raise what they raised."""
        self.wait()
        if self._behind_failure is not None:
            failure, self._behind_failure = self._behind_failure, None
            raise failure

    def idle(self) -> bool:
        """Whether no statement `in_background` started is still running (the connection is free now)."""
        return self._behind is None or not self._behind.is_alive()

    def wait(self) -> None:
        """Wait for the statements `in_background` started (before a rollback: nothing may run after it)."""
        if self._behind is not None:
            self._behind.join()
            self._behind = None

    def close(self) -> None:
        """After the last flush, before the commit: build the indexes dropped for a first import again, and drop
        whatever the writer set up."""
        self.settle()
        if self.rebuild:
            with sort_cache(self.conn):
                for sql in self.rebuild:
                    self.conn.execute(sql)
        self.rebuild = []

    def discard(self) -> None:
        """Before a rollback: nothing more is written (a failure of the last batch's statements goes with it)."""
        self.wait()
        self._behind_failure = None
        self.batch = []

    def flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            self.write(batch)

    def write(self, batch: list[Any]) -> None:  # pragma: no cover - each kind defines it
        raise NotImplementedError


def _other_threads_may_use(conn: sqlite3.Connection) -> bool:
    """Whether the connection may run a statement from another thread (opened with check_same_thread=False, as
    `tracker.db.open_db` opens the store)."""
    allowed: list[bool] = []

    def attempt() -> None:
        try:
            conn.execute("SELECT 1").fetchone()
        except sqlite3.ProgrammingError:
            allowed.append(False)
        else:
            allowed.append(True)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return allowed == [True]


class CarrierGuess:
    """The carrier a number's format means, the configured carrier files' `number_pattern`s included (read
    once per import; a carrier file that cannot be read leaves guessing to the known formats). The answers
    of `detectors.tracking_numbers.guess_carrier`, from a `CarrierGuesser` (only the formats a number can
    have are tried)."""

    def __init__(self) -> None:
        self._guess: Callable[[str], str | None] | None = None

    def __call__(self, number: str) -> str | None:
        if self._guess is None:
            from detectors.tracking_numbers import CarrierGuesser
            from tracker.carriers import number_patterns
            from tracker.errors import BadInput

            try:
                patterns = number_patterns()
            except BadInput:
                patterns = {}
            self._guess = CarrierGuesser(patterns)
        return self._guess(number)


class Kind:
    """One kind of import file. Subclasses name the columns and turn a clean row into a record."""

    name = ""
    columns: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    converters: dict[str, Converter] = {}
    # columns with few distinct values (statuses, countries, carriers): their converter runs once per value
    repeated: tuple[str, ...] = ()
    # the columns where a line break is text (a message, an item title); anywhere else it is a broken file
    free_text: tuple[str, ...] = ()
    writer_class: type[Writer] = Writer
    # a big file of this kind is read and checked on two processes (tracker.importers.parts)
    read_in_parts = False

    def __init__(self) -> None:
        self.refuse_times_after(None)

    def refuse_times_after(self, now: datetime | None) -> None:
        """Refuse times more than a day after `now`, the time of the run (a day covers clocks and zones).

        The row checker is built again with the limit written into it as a constant (the hot path).
        """
        # "~" sorts after every date: no limit
        latest = ("~", "") if now is None else (to_db(now + timedelta(days=1)), to_db(now))
        self.stamp = to_db(now) if now is not None else None  # the import's "now", stored with each row
        self.clean = _compile_cleaner(self.columns, set(self.required), self.converters, self.finish, latest,
                                      self.repeated)

    def looks_like_row(self, values: tuple[str, ...]) -> bool:
        """Whether these cells would make a row of their own: every required column that has a check (a time,
        a country, a sender) holds a value it accepts. A line of free text that passes this, inside another
        field, was a row swallowed by a stray quote (a row with an empty id is still a row)."""
        for column, value in zip(self.columns, values, strict=True):
            convert = self.converters.get(column)
            if convert is None or column not in self.required:
                continue
            try:
                convert(value.strip())
            except ValueError:
                return False
        return True

    def clean(self, line: int, values: tuple[str, ...], extras: dict[str, Any] | None, problems: list[Problem]) -> Any:
        """The row's stored record, or None with `problems` filled (one per bad column).

        Replaced per instance by the unrolled function `_compile_cleaner` builds.
        """
        raise NotImplementedError

    def finish(
        self, line: int, clean: list[Any], values: tuple[str, ...], extras: dict[str, Any] | None, problems: list[Problem]
    ) -> Any:
        """Cross-column checks and the final record; returns None when `problems` is not empty."""
        raise NotImplementedError

    def writer(self, db: sqlite_utils.Database, stamp: str) -> Writer:
        return self.writer_class(db, stamp)


MISSING = "required value is missing"


FUTURE = "{} is in the future (more than a day after this run, {})"


def _compile_cleaner(
    columns: tuple[str, ...],
    required: set[str],
    converters: dict[str, Converter],
    finish: Callable[..., Any],
    latest: tuple[str, str],
    repeated: tuple[str, ...] = (),
) -> Callable[..., Any]:
    """Build the kind's row checker as straight-line code, one block per column.

    This is the import's hot path: unrolled, it runs about twice as fast as a loop over column specs,
    since each block is a few local-variable operations. What each block does, for column i:
    strip the text; empty -> None (a problem if required); else convert (a `repeated` column's values once
    each, remembered), a ValueError being the problem;
    a time after `latest[0]` (the run's now, `latest[1]`, plus a day) is a problem too (canonical times compare
    as text).
    """
    from tracker.importers.fields import time_value

    namespace: dict[str, Any] = {"MISSING": MISSING, "finish": finish, "FUTURE": FUTURE}
    code = ["def clean(line, values, extras, problems):", f"    ({', '.join(f'v{i}' for i in range(len(columns)))},) = values"]
    repeated = set(repeated)
    for i, column in enumerate(columns):
        assert column.isidentifier()  # columns are ours, never the user's header text
        convert = converters.get(column)
        if convert is None and column not in required:  # plain optional text: stripped, '' is unknown
            code.append(f"    c{i} = v{i}.strip() or None")
            continue
        code += [f"    v{i} = v{i}.strip()", f"    if not v{i}:", f"        c{i} = None"]
        if column in required:
            code.append(f"        problems.append(({column!r}, MISSING))")
        if convert is None:
            code += ["    else:", f"        c{i} = v{i}"]
        elif column in repeated:  # few distinct values: each converted once (a bounded cache)
            namespace[f"convert{i}"], namespace[f"seen{i}"] = convert, {}
            code += [
                "    else:",
                f"        c{i} = seen{i}.get(v{i})",
                f"        if c{i} is None:",
                "            try:",
                f"                c{i} = convert{i}(v{i})",
                "            except ValueError as exc:",
                f"                c{i} = None",
                f"                problems.append(({column!r}, str(exc)))",
                "            else:",
                f"                if len(seen{i}) < 4096:",
                f"                    seen{i}[v{i}] = c{i}",
            ]
            assert convert is not time_value  # the future check below reads every value
        else:
            namespace[f"convert{i}"] = convert
            code += [
                "    else:",
                "        try:",
                f"            c{i} = convert{i}(v{i})",
                "        except ValueError as exc:",
                f"            c{i} = None",
                f"            problems.append(({column!r}, str(exc)))",
            ]
            if convert is time_value:
                code += [
                    "        else:",
                    f"            if c{i} > {latest[0]!r}:",
                    f"                problems.append(({column!r}, FUTURE.format(c{i}, {latest[1]!r})))",
                ]
    code.append(f"    return finish(line, [{', '.join(f'c{i}' for i in range(len(columns)))}], values, extras, problems)")
    exec("\n".join(code), namespace)  # noqa: S102 - source built above from our own column names
    return namespace["clean"]


def drop_secondary_indexes(conn: Any, table: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Drop the table's own non-unique indexes (never a key's: inserts rely on those, nor those named in `keep`);
    return the SQL that makes them again."""
    found = [(name, sql) for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [table])
        if not sql.lstrip().upper().startswith("CREATE UNIQUE") and name not in keep]
    for name, _ in found:
        conn.execute('DROP INDEX "{}"'.format(name.replace('"', '""')))
    return [sql for _, sql in found]


def register_shipments_of_events(conn: Any, first_new_id: int, stamp: str, guess: Callable[[str], str | None]) -> None:
    """Make the poller aware of the numbers of the scans stored after `first_new_id`, in one statement: a new
    shipment is due at once (whatever --as-of the next poll runs with), its carrier the one its earliest new scan
    that names one names (else the number's format's, `guess`); an existing one keeps everything but
    `last_event_at`, which only a later scan moves (so a re-import changes nothing)."""
    last_id = conn.execute("SELECT coalesce(max(id), 0) FROM tracking_events").fetchone()[0]
    if last_id <= first_new_id:
        return
    # most of the table new: walk the number index in order (it holds each scan's time and id); a small import:
    # take its rows by id range and group them apart, rather than walk every scan of the store
    fresh = "tracking_events" if (last_id - first_new_id) * 4 >= last_id else \
        "(SELECT tracking_number, occurred_at, id FROM tracking_events WHERE id > :first)"
    conn.create_function("tracker_guess_carrier", 1, guess, deterministic=True)
    conn.execute(
        f"WITH fresh AS {'MATERIALIZED ' + fresh if fresh[0] == '(' else '(SELECT * FROM tracking_events)'}, "
        "numbers AS (SELECT tracking_number, max(occurred_at) AS latest FROM fresh WHERE id > :first"
        " GROUP BY tracking_number) "
        "INSERT INTO shipments (tracking_number, carrier, state, first_seen_at, next_poll_at, last_event_at) "
        "SELECT n.tracking_number, coalesce((SELECT e.carrier FROM tracking_events e WHERE e.tracking_number ="
        " n.tracking_number AND e.id > :first AND e.carrier <> '' ORDER BY e.occurred_at, e.id LIMIT 1),"
        " tracker_guess_carrier(n.tracking_number)), 'pending', :stamp, :due, n.latest FROM numbers n WHERE true "
        "ORDER BY n.tracking_number "
        "ON CONFLICT(tracking_number) DO UPDATE SET last_event_at = excluded.last_event_at "
        "WHERE shipments.last_event_at IS NULL OR shipments.last_event_at < excluded.last_event_at",
        {"first": first_new_id, "stamp": stamp, "due": DUE_AT_ONCE})


def register_shipments_of_orders(conn: Any, numbers: str, stamp: str) -> None:
    """Make the poller aware of the numbers of the orders this import wrote, in one statement: a new shipment is
    due at once, with the carrier of the first such order (lowest seq) carrying the number; existing shipments stay
    untouched. `numbers`: a table of (tracking_number, seq, carrier: '' for none) as the import gathered them, a
    row per order, in no order."""
    # sorted by number then seq, the first row of a number makes its shipment and the others are ignored; the new
    # shipments come in number order, all due at once with one stamp: each of the shipments' indexes (state and
    # due time, carrier, due time and number) takes them as appends, cheaper than building it again
    with sort_cache(conn):
        conn.execute(
            "INSERT OR IGNORE INTO shipments (tracking_number, carrier, state, first_seen_at, next_poll_at) "
            f"SELECT tracking_number, nullif(carrier, ''), 'pending', ?, ? FROM {numbers} ORDER BY tracking_number, seq",
            [stamp, DUE_AT_ONCE])
