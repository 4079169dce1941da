"""The order frame read from the store: one seam (`OrderRead`), behind which SQL or the child readers answer.

An order frame (`detectors.view`) is every asked-for order joined to its shipment and to the facts of its
tracking number (`shipment_facts`). A scope of orders is read through this connection. The whole store of a
big store (`Plan.frame_by_children`) is read by two spawned child processes through the ADBC SQLite driver
(`tracker.detection.arrow`): one reads the orders (and, for the classifier, the active flags and seller
messages, finding their orders' rows), the other each order's facts and shipment, aligned by key; both
write Arrow IPC files this process maps. Any trouble there, and the same frame is read through SQL.

`rule_frame` and `feature_frame` are the two frames detection reads: the rules' (every fact, shipments,
orders per number, numbers corrected in the chat) and the classifier's (`detectors.features.feature_frame`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from detectors import corrections, facts, features, view
from detectors.features import MessageScorer, Normalised, Side
from tracker.detection import store
from tracker.detection.children import Children
from tracker.detection.memory import give_back
from tracker.plan import Plan, child_file, plan_for
from tracker.sqlite_pragmas import pragmas

log = logging.getLogger(__name__)

# (frame column, SQL over `orders o`): the orders' own columns, times as Julian days by SQLite
# (the order's rowid last: the key a store's seller books keep each order under)
_ORDER_SQL = tuple(zip((*view.ORDER_COLUMNS, *view.ORDER_TIMES, "order_rowid"), (
    *(f"o.{c}" for c in view.ORDER_COLUMNS),
    "julianday(o.ordered_at)", "julianday(o.shipped_at)", "julianday(o.buyer_confirmed_at)", "o.rowid"),
    strict=True))
_SHIPMENT_SQL = (("shipment_state", "s.state"), ("not_found_count", "coalesce(s.not_found_count, 0)"))
_COUNTS = (*facts.COUNT_COLUMNS, "max_event_id", "not_found_count", "order_rowid")
_FLOATS = (*view.ORDER_TIMES, *facts.TIME_COLUMNS, "promised_days", "amount")
_TEXT = frozenset((*view.ORDER_COLUMNS, "shipment_state", *facts.TEXT_COLUMNS)) - {"promised_days", "amount"}

# the whole-store readers' queries: the orders in rowid order (the keys the aligned reader checks, and the
# order columns); their flags and seller messages, mapped to rows; the shipments, aligned by number
ORDER_KEYS_SQL = "SELECT rowid, tracking_number FROM orders ORDER BY rowid"
ORDERS_BY_ROWID_SQL = f"SELECT {', '.join(expr for _, expr in _ORDER_SQL)}, o.rowid FROM orders o ORDER BY o.rowid"
FLAGS_SQL = "SELECT order_id, code, severity FROM flags WHERE resolved_at IS NULL"
MESSAGES_BY_ROW_SQL = "SELECT order_id, id, order_id AS order_ref, text FROM messages WHERE lower(sender) = 'seller'"
SHIPMENTS_SQL = "SELECT tracking_number, state, not_found_count FROM shipments"
# the active flags with their order's rowid, for a frame kept from the rules' read (`_KeptRead`)
KEPT_FLAGS_SQL = ("SELECT o.rowid, f.code, f.severity FROM flags f LEFT JOIN orders o ON o.order_id = f.order_id "
                  "WHERE f.resolved_at IS NULL")
# text the orders reader numbers (the groups and places the frame's context is built on)
_ENCODED = ("buyer_id", "seller_id", "dest_country", "dest_city", "dest_postcode", "tracking_number", "carrier",
            "buyer_received")
_DEST_PLACE = ("dest_country", "dest_city", "dest_postcode")
_DELIVERED_PLACE = ("delivered_country", "delivered_city", "delivered_postcode")
# while the frame is read through this connection: keep the pages the join revisits in memory (256 MiB)
_READ_PRAGMAS = {"cache_size": -262_144}


class OrderRead:
    """The asked-for orders (every order when `order_ids` is None) with their shipment (when `shipments`) and the
    facts `fact_columns` of their number; with `side`, also their active flags and seller messages (`Side`);
    with `places`, the child readers also normalise the destination's and the delivered scan's places.

    `side()` answers first (the orders reader is done before the facts reader), so the caller can score the
    messages while the facts are still read; `finish()` gives the frame."""

    def __init__(self, conn: sqlite3.Connection, plan: Plan, order_ids: Iterable[str] | None = None, *,
                 fact_columns: Sequence[str] = facts.FACT_COLUMNS, shipments: bool = True, side: bool = False,
                 places: bool = False, children: Children | None = None, known: ScopeRows | None = None,
                 remember: bool = False):
        self.conn = conn
        self.sorted_ids = None if order_ids is None else sorted(i for i in order_ids if i is not None)
        self.ids = None if self.sorted_ids is None else store.as_json(self.sorted_ids)
        # a scope's rows read already (`ScopeRows`): only the other asked-for orders are read; with `remember`, the
        # rows this read gives are kept as `remembered`
        self.known, self.remember = known, remember
        self.remembered: ScopeRows | None = None
        self.fact_columns, self.shipments, self.with_side = tuple(fact_columns), shipments, side
        self.places = places
        self.columns = [name for name, _ in _ORDER_SQL] + \
            ([name for name, _ in _SHIPMENT_SQL] if shipments else []) + list(self.fact_columns)
        self.pending = _start_children(conn, plan, self, children) if order_ids is None else None
        self.side_from_readers = False
        self.through_readers = False
        # after `finish` through the readers: the orders reader's columns and places, and its messages table
        self.orders_part: tuple[list[Any], Normalised] | None = None
        self.messages_table: Any = None

    def sql(self, ids: str | None = None) -> tuple[str, list[Any]]:
        """The SQL read of the frame: the orders joined to shipments and facts, scoped by a JSON list of ids (the
        read's own, or `ids`)."""
        selected = [f"{expr} AS {name}" for name, expr in _ORDER_SQL]
        joins = ""
        if self.shipments:
            selected += [f"{expr} AS {name}" for name, expr in _SHIPMENT_SQL]
            joins += " LEFT JOIN shipments s ON s.tracking_number = o.tracking_number"
        selected += [f"f.{name}" for name in self.fact_columns]
        joins += " LEFT JOIN shipment_facts f ON f.tracking_number = o.tracking_number"
        if self.ids is None:
            return f"SELECT {', '.join(selected)} FROM orders o{joins}", []
        # the few asked-for orders drive the loop: each looked up by key
        return (f"SELECT {', '.join(selected)} FROM json_each(?) j CROSS JOIN orders o ON o.order_id = j.value"
                f"{joins}", [self.ids if ids is None else ids])

    def side(self) -> Side:
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

    def side_through_sql(self) -> Side:
        scope, params = ("AND order_id IN (SELECT value FROM json_each(?))", [self.ids]) if self.ids is not None \
            else ("", [])
        flags = store.query(self.conn, f"{FLAGS_SQL} {scope}", ["order_id", "code", "severity"], params)
        messages = store.query(self.conn, "SELECT id, order_id, text FROM messages WHERE lower(sender) = 'seller' "
                                          f"{scope}", ["id", "order_id", "text"], params)
        return Side(flags, messages)

    def finish(self) -> tuple[pd.DataFrame, Normalised]:
        """The frame (typed numeric columns, text columns as objects, or as categoricals where the child readers
        read them) and the places the readers normalised (if they did). `through_readers` says whether the
        readers read it (so the rows of their flags and messages are its rows)."""
        columns, normalised = None, {}
        if self.pending is not None:
            try:
                columns, normalised = self.pending.result()
                self.orders_part = self.pending.parts[0]
                if self.with_side:
                    self.messages_table = self.pending.messages()
            except Exception as exc:  # noqa: BLE001 - any driver trouble: the sqlite3 path gives the same frame
                log.warning("child readers unavailable (%s); reading the orders through SQL", exc)
                columns, normalised = None, {}
            finally:
                self.close()
        self.through_readers = columns is not None
        if columns is None:
            columns = self._known_and_read() if self.known is not None else self._read()
            if self.remember and self.sorted_ids is not None:
                # copies: the frame's columns are the arrays read, and what uses the frame may change them
                self.remembered = ScopeRows(list(self.columns), [values.copy() for values in columns])
        return _frame_of(self.columns, columns, "child readers" if self.through_readers else "sql"), normalised

    def close(self) -> None:
        if self.pending is not None:
            self.pending.close()
            self.pending = None

    def _read(self, ids: str | None = None) -> list[np.ndarray]:
        """The asked-for orders' columns (or those of `ids`, a JSON list in key order) read through SQL."""
        sql, params = self.sql(ids)
        rows = self.conn.execute(sql, params).fetchall()
        return [np.array(values, dtype=object) for values in zip(*rows, strict=True)] if rows else \
            [np.zeros(0, dtype=object) for _ in self.columns]

    def _known_and_read(self) -> list[np.ndarray]:
        """The asked-for orders' columns, those the known rows hold taken from them and the others read, in the
        order the SQL read gives (key order: the ids' JSON list is sorted, and the join follows it)."""
        known = self.known
        assert known is not None and self.sorted_ids is not None
        if not set(self.columns) <= set(known.names):
            return self._read()
        known_ids = pd.Index(known.columns[known.names.index("order_id")], dtype=object)
        wanted = pd.Index(np.asarray(self.sorted_ids, dtype=object), dtype=object)
        missing = wanted[~wanted.isin(known_ids)]  # in key order, as `sorted_ids`
        taken = np.flatnonzero(known_ids.isin(wanted))
        read = self._read(store.as_json(missing.tolist())) if len(missing) else \
            [np.zeros(0, dtype=object) for _ in self.columns]
        ids = np.concatenate([known_ids.to_numpy()[taken], read[self.columns.index("order_id")]])
        order = np.argsort(ids, kind="stable")  # text compared as SQLite's BINARY collation does (code points)
        return [np.concatenate([known.columns[known.names.index(name)][taken], read[j]])[order]
                for j, name in enumerate(self.columns)]


@dataclass
class ScopeRows:
    """A scope's orders as an `OrderRead` through SQL gave them (its columns: object arrays, in key order), for
    a later read of the same run that asks for some of the same orders and columns (the scoring's first frame
    holds the orders the rules read): those rows are not read again."""

    names: list[str]
    columns: list[np.ndarray]


def _frame_of(names: Sequence[str], columns: Sequence[Any], read_by: str) -> pd.DataFrame:
    """The frame of these columns (arrays or categoricals), counts typed as whole numbers (0 where missing) and
    times and amounts as floats (NaN where missing)."""
    # every array here is this frame's own (no view of a mapped file): no copy needed
    series = {name: pd.Series(values, dtype=values.dtype if values.dtype != object else object, copy=False)
              for name, values in zip(names, columns, strict=True)}
    for name in _COUNTS:
        if name in series:
            series[name] = pd.to_numeric(series[name]).fillna(0).astype(np.int64)
    for name in _FLOATS:
        if name in series:  # a number of days, or NaN (the INTEGER affinity keeps text it cannot convert)
            series[name] = pd.to_numeric(series[name], errors="coerce").astype(float)
    # copy=False: the columns stay their own blocks, where pandas would copy them into one block per dtype
    frame = pd.DataFrame(series, copy=False)
    frame.attrs["read_by"] = read_by
    return frame


def _side_of_tables(flags: Any, messages: Any) -> Side:
    """The readers' flags (row, code, severity) and messages (row, id, order_id, text) tables as a `Side`."""
    def objects(column: Any) -> np.ndarray:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)

    def rows(table: Any) -> np.ndarray:
        return table.column(0).to_numpy().astype(np.int64)

    flag_frame = pd.DataFrame({"code": pd.Series(objects(flags.column(1)), dtype=object),
                               "severity": pd.Series(objects(flags.column(2)), dtype=object)})
    message_frame = pd.DataFrame({"id": messages.column(1).to_numpy().astype(np.int64),
                                  "order_id": pd.Series(objects(messages.column(2)), dtype=object),
                                  "text": pd.Series(objects(messages.column(3)), dtype=object)})
    return Side(flag_frame, message_frame, rows(flags), rows(messages))


class _ChildRead:
    """Two spawned child processes reading the whole store into Arrow IPC files in a private temporary folder:
    one the orders (`arrow.read_to_file`) and, in the same transaction, the active flags and seller messages with
    their orders' rows; one each order's facts and shipment (`arrow.read_aligned_to_file`). Two, so both cores
    read; files, so this process maps the columns instead of unpickling a copy. This process converts each
    reader's table as soon as it is done, while the other still reads."""

    def __init__(self, path: str, read: OrderRead, children: Children | None):
        from tracker import scratch
        from tracker.detection import arrow

        order_names = [name for name, _ in _ORDER_SQL]
        # the frame's columns after the orders': the shipment's (when asked for), then the facts
        aligned = (["shipment_state", "not_found_count"] if read.shipments else []) + list(read.fact_columns)
        self.order_names, self.aligned, self.with_side = order_names, aligned, read.with_side
        self.folder = scratch.folder("frame")
        # the run's children when it has some (then not ended here), else two of its own
        self.own = children is None
        self.pool = Children(2, lean=True) if children is None else children
        self.files = tuple(f"{self.folder}/{name}.arrow" for name in ("orders", "facts", "flags", "messages"))
        self.parts: dict[int, tuple[list[Any], Normalised]] = {}  # reader -> its table converted
        rights = ((SHIPMENTS_SQL,) if read.shipments else ()) + (
            (f"SELECT tracking_number, {', '.join(read.fact_columns)} FROM shipment_facts",) if read.fact_columns
            else ())
        # the destination's and the delivered scan's places, normalised by the readers (for the features)
        destination = tuple(order_names.index(c) for c in _DEST_PLACE) if read.places else None
        delivered = tuple(aligned.index(c) for c in _DELIVERED_PLACE) \
            if read.places and set(_DELIVERED_PLACE) <= set(aligned) else None
        mapped = ((FLAGS_SQL, self.files[2]), (MESSAGES_BY_ROW_SQL, self.files[3])) if read.with_side else ()
        self.places = (_DEST_PLACE if destination else (), _DELIVERED_PLACE if delivered else ())
        try:
            # the children import only Arrow, the driver and the pure place functions: no pandas, no scikit-learn
            self.futures = (
                self.pool.submit(arrow.read_to_file, path, ORDERS_BY_ROWID_SQL, self.files[0],
                                 tuple(order_names.index(c) for c in _ENCODED), destination, mapped),
                self.pool.submit(arrow.read_aligned_to_file, path, ORDER_KEYS_SQL, rights, self.files[1], delivered))
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _table(name: str) -> Any:
        import pyarrow as pa

        return pa.ipc.open_file(pa.memory_map(name)).read_all()

    def _part(self, reader: int, table: Any) -> tuple[list[Any], Normalised]:
        """One reader's table as frame columns: the orders' (the rowid left out) or the aligned ones (the keys
        left out), and the places it normalised."""
        if reader == 0:
            return _table_part(table, self.order_names, 0, self.places[0], len(self.order_names) + 1)
        return _table_part(table, self.aligned, 2, self.places[1], 2 + len(self.aligned))

    def _wait_for(self, reader: int) -> None:
        """Wait until `reader` is done, converting each reader's table as soon as it is (this process has a core
        to itself while the other reader works); a reader's error is raised."""
        from concurrent.futures import FIRST_COMPLETED, wait

        while True:
            for i, future in enumerate(self.futures):
                if future.done() and i not in self.parts:
                    future.result()
                    self.parts[i] = self._part(i, self._table(self.files[i]))
            if self.futures[reader].done():
                return
            wait([f for f in self.futures if not f.done()], return_when=FIRST_COMPLETED)

    def side(self) -> tuple[Any, Any]:
        """The flags and messages tables (see `_side_of_tables`), once the orders reader is done."""
        self._wait_for(0)
        return self._table(self.files[2]), self._table(self.files[3])

    def messages(self) -> Any:
        """The messages table (see `_side_of_tables`), once the orders reader is done."""
        self._wait_for(0)
        return self._table(self.files[3])

    def result(self) -> tuple[list[Any], Normalised]:
        """The frame's columns from the two readers' tables, checked to hold the same orders, and the places the
        readers normalised."""
        import pyarrow as pa
        import pyarrow.compute as pc

        for reader in range(len(self.futures)):
            self._wait_for(reader)
        orders, aligned = (self._table(name) for name in self.files[:2])
        # the two read the orders in two transactions: the same rows with the same numbers, or read through SQL
        rowids = orders.column(len(self.order_names)).to_numpy()
        numbers = orders.column(self.order_names.index("tracking_number")).combine_chunks()
        if pa.types.is_dictionary(numbers.type):
            numbers = pc.take(numbers.dictionary, numbers.indices)
        if not (np.array_equal(rowids, aligned.column(0).to_numpy())
                and numbers.equals(aligned.column(1).combine_chunks())):
            raise RuntimeError("orders changed between the two reads")
        (order_columns, order_places), (aligned_columns, aligned_places) = self.parts[0], self.parts[1]
        return order_columns + aligned_columns, {**order_places, **aligned_places}

    def close(self) -> None:
        import shutil

        for future in getattr(self, "futures", ()):
            future.cancel()
        if self.own:  # the workers free their memory after this process has moved on
            self.pool.close()
        shutil.rmtree(self.folder, ignore_errors=True)  # mapped files outlive their names


def _start_children(conn: sqlite3.Connection, plan: Plan, read: OrderRead,
                    children: Children | None) -> _ChildRead | None:
    """The two child readers of the whole store, or None when that path does not apply (no driver, a database
    without a file, uncommitted writes the other processes would not see, a store smaller than the start-up
    costs)."""
    import importlib.util

    if not plan.frame_by_children or importlib.util.find_spec("adbc_driver_sqlite") is None:
        return None
    path = child_file(conn, plan)
    if not path:
        return None
    try:
        return _ChildRead(path, read, children)
    except Exception as exc:  # noqa: BLE001 - no child process here (e.g. a main module without a __main__ guard)
        log.warning("child readers unavailable (%s); reading the orders through SQL", exc)
        return None


def _table_part(table: Any, names: Sequence[str], first: int, place_names: tuple[str, ...],
                places_at: int) -> tuple[list[Any], Normalised]:
    """One reader's table as frame columns: the columns `names` from position `first`, and the normalised places
    `place_names` from position `places_at` (none when the reader left them to this process)."""
    import pyarrow as pa

    normalised: Normalised = {}
    out = []
    if place_names and table.num_columns == places_at + len(place_names):
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
        elif name in _TEXT and column.null_count == len(column):
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


def plain_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its categorical text columns as plain object text (None where missing), in place."""
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            values = np.empty(len(column.cat.categories) + 1, dtype=object)
            values[:-1] = column.cat.categories.to_numpy(dtype=object)
            values[-1] = None
            frame[name] = pd.Series(values[column.cat.codes.to_numpy()], index=frame.index, dtype=object)
    return frame


# ------------------------------------------------------------------------------------------------ the frames

@dataclass
class KeptOrders:
    """Every order of the store as the rules' child read gave them, with the classifier's facts of their numbers
    taken from the facts the run computed: the classifier's frame of the same run is built from them
    (`feature_frame(kept=...)`) instead of being read and joined again. Only the flags are read then: the rules
    wrote them in between."""

    names: list[str]  # the classifier's read's columns: the orders', then `features.FEATURE_FACTS`
    columns: list[Any]
    normalised: Normalised  # the destination's places, normalised by the orders reader
    messages: Any  # the orders reader's seller messages table: (row, id, order_id, text)
    # the active flags (order_id, code, severity) when the rules hand them over with their write still under way
    flags: list[tuple[str, str, str]] | None = None


def rule_frame(conn: sqlite3.Connection, order_ids: Iterable[str] | None = None, *, plan: Plan | None = None,
               known_facts: dict[str, np.ndarray] | None = None, read: OrderRead | None = None,
               keep: list[KeptOrders] | None = None, scope_rows: list[ScopeRows] | None = None) -> pd.DataFrame:
    """The rules' order frame (`detectors.view`): these orders (every order when None) with their shipment and
    every fact of their number, how many orders of the store carry that number, and numbers corrected in the
    chat applied (`detectors.corrections`). Text as plain objects. `known_facts`: every number's facts, just
    computed (`shipment_facts.start`), joined here instead of read back from the table; `read`: the read of
    these orders, started earlier (without facts: they are `known_facts`). `keep`: where every order was read
    by the child readers with their messages and places, the `KeptOrders` for the classifier is appended;
    `scope_rows`: where a scope was read through SQL, its rows as read (`ScopeRows`) are appended."""
    if read is None:
        read = OrderRead(conn, plan or plan_for(conn), order_ids,
                         fact_columns=() if known_facts is not None else facts.FACT_COLUMNS,
                         remember=scope_rows is not None)
    try:
        frame, _ = read.finish()
    finally:
        read.close()
    if scope_rows is not None and read.remembered is not None:
        scope_rows.append(read.remembered)
        read.remembered = None
    # the orders with a number first, each part in its order: the rules' context then reads the numbered ones
    # as a view of the frame, not a copy of it (`detectors.rules.RuleContext.tracked`)
    moved = _numbered_first(frame["tracking_number"])
    if moved is not None:
        frame = frame.take(moved).reset_index(drop=True)
    plain_objects(frame)
    give_back("the rules' frame read")
    if not read.fact_columns:
        joined = _joined_facts(frame, known_facts if known_facts is not None else facts.finish(facts.combine([])))
        if keep is not None and order_ids is None and known_facts is not None and read.orders_part is not None \
                and read.messages_table is not None and read.places:
            keep.append(_kept(read, joined, moved))
        read.orders_part = None  # the frame and the kept orders hold what they use of the reader's columns
        for name in list(joined):  # each joined column let go once the frame holds it
            _put(frame, name, joined.pop(name))
        give_back("the rules' facts joined")
    if order_ids is None:  # the frame holds every order
        frame["n_orders_on_number"] = view.orders_on_number(frame["tracking_number"])
    else:  # the scope may hold only part of a number's orders: count them all
        numbers = frame["tracking_number"]
        counts = store.orders_per_number(conn, (n for n in numbers.dropna() if n))
        frame["n_orders_on_number"] = numbers.map(counts).fillna(0).astype(np.int64)
    return corrections.apply_corrections(
        frame, lambda ids: store.latest_seller_messages(conn, ids), lambda numbers: store.has_events(conn, numbers),
        lambda numbers: _facts_with_orders(conn, numbers, known_facts), facts.FACT_COLUMNS)


def _numbered_first(numbers: pd.Series) -> np.ndarray | None:
    """The rows with the orders that carry a tracking number first, then the others (each part in its order);
    None when they already come first."""
    numbered = view.has_number(numbers)
    if numbered[:int(numbered.sum())].all():
        return None
    return np.concatenate([np.flatnonzero(numbered), np.flatnonzero(~numbered)])


def _kept(read: OrderRead, joined: dict[str, np.ndarray], moved: np.ndarray | None) -> KeptOrders:
    """The orders reader's columns as read and the classifier's facts as joined to each order (under its stored
    number: the classifier sees no chat correction), put back in the reader's order where the rules' frame
    `moved` its rows. The arrays the rules' frame may share and change are copied: plain ones, where it did not
    move its rows (its categoricals become new object columns, its numbers are converted copies)."""
    columns, normalised = read.orders_part  # type: ignore[misc]
    # a frame whose rows were moved holds copies of them already: nothing of the reader's is shared then
    own = [values if isinstance(values, pd.Categorical) or moved is not None else values.copy() for values in columns]
    for name in features.FEATURE_FACTS:
        if moved is None:
            own.append(joined[name].copy())
        else:
            back = np.empty_like(joined[name])
            back[moved] = joined[name]
            own.append(back)
    return KeptOrders([name for name, _ in _ORDER_SQL] + list(features.FEATURE_FACTS), own, dict(normalised),
                      read.messages_table)


class _KeptRead:
    """`OrderRead`'s answers from `KeptOrders`: the frame and messages as kept, the active flags read now (or as
    the rules handed them over, their write still under way)."""

    side_from_readers = through_readers = True

    def __init__(self, conn: sqlite3.Connection, kept: KeptOrders):
        self.conn, self.kept = conn, kept

    def side(self) -> Side:
        if self.kept.flags is not None:
            flags, rows = self._handed_flags()
        else:
            flags, rows = self._stored_flags()
        messages = self.kept.messages
        message_frame = pd.DataFrame({
            "id": messages.column(1).to_numpy().astype(np.int64),
            "order_id": pd.Series(np.asarray(messages.column(2).to_numpy(zero_copy_only=False), dtype=object),
                                  dtype=object),
            "text": pd.Series(np.asarray(messages.column(3).to_numpy(zero_copy_only=False), dtype=object),
                              dtype=object)})
        return Side(flags, message_frame, np.asarray(rows, dtype=np.int64),
                    messages.column(0).to_numpy().astype(np.int64))

    def _stored_flags(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The active flags as stored, each with its frame row (-1: an order not in it, or added since the rules
        read the orders), found through the order's rowid."""
        found = self.conn.execute(KEPT_FLAGS_SQL).fetchall()
        rowids = self.kept.columns[self.kept.names.index("order_rowid")]
        rowids = np.asarray(rowids, dtype=np.int64)  # ascending: the orders reader reads in rowid order
        wanted = np.array([-1 if r[0] is None else r[0] for r in found], dtype=np.int64)
        rows = np.full(len(wanted), -1, dtype=np.int64)
        if len(rowids) and len(wanted):
            at = np.minimum(np.searchsorted(rowids, wanted), len(rowids) - 1)
            rows = np.where(rowids[at] == wanted, at, -1)
        return self._flag_frame(found), rows

    def _handed_flags(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The active flags the rules handed over, each with its frame row found through the order id."""
        handed, self.kept.flags = self.kept.flags or [], None
        ids = self.kept.columns[self.kept.names.index("order_id")]
        position = pd.Index(np.asarray(ids, dtype=object), dtype=object)
        rows = position.get_indexer(np.array([f[0] for f in handed], dtype=object))
        return self._flag_frame(handed), np.asarray(rows, dtype=np.int64)

    @staticmethod
    def _flag_frame(found: list[tuple]) -> pd.DataFrame:
        return pd.DataFrame({"code": pd.Series([r[1] for r in found], dtype=object),
                             "severity": pd.Series([r[2] for r in found], dtype=object)})

    def finish(self) -> tuple[pd.DataFrame, Normalised]:
        """The frame (after `side`): the kept columns become its own and the kept orders let go of them, so the
        frame's columns the classifier no longer needs are freed as it drops them."""
        kept = self.kept
        frame = _frame_of(kept.names, kept.columns, "child readers (the rules' read)")
        kept.columns, kept.messages = [], None
        return frame, kept.normalised

    def close(self) -> None:
        pass


def _join_facts(frame: pd.DataFrame, known: dict[str, Any]) -> None:
    """`_joined_facts` put into the frame, in place."""
    for name, column in _joined_facts(frame, known).items():
        _put(frame, name, column)


def _put(frame: pd.DataFrame, name: str, column: np.ndarray) -> None:
    """Put a joined column into the frame as it is: text stays object text, as the SQL read types it (pandas would
    copy every string into an Arrow string array, a second on a million orders, which the rules then turn back)."""
    frame[name] = pd.Series(column, index=frame.index, dtype=object, copy=False) if column.dtype == object else column


def _joined_facts(frame: pd.DataFrame, known: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each order's facts from `known` (tracking_number and the facts, one row per number; text as objects or
    `detectors.facts.Coded`), per fact a column of the frame's rows typed as the SQL join types them: 0, NaN or
    None where the number has no events."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # a hash join in C: the numbers as Arrow text, the orders' looked up among them
    numbers = pa.array(np.asarray(known["tracking_number"], dtype=object), pa.string())
    at = pc.index_in(pa.array(frame["tracking_number"].to_numpy(dtype=object), pa.string()), value_set=numbers)
    at = at.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    found = at >= 0
    out = {}
    for name in facts.FACT_COLUMNS:
        values = known[name]
        if isinstance(values, facts.Coded):  # each order's text taken once from the distinct values
            table = np.empty(len(values.values) + 1, dtype=object)
            table[:-1] = list(values.values)
            table[-1] = None
            codes = np.full(len(frame), -1, dtype=np.int64)
            codes[found] = np.asarray(values.codes)[at[found]]
            column = table[codes]
        elif values.dtype == object:
            column = np.full(len(frame), None, dtype=object)
            column[found] = values[at[found]]
        elif values.dtype.kind == "f":
            column = np.full(len(frame), np.nan)
            column[found] = values[at[found]]
        else:
            column = np.zeros(len(frame), dtype=np.int64)
            column[found] = values[at[found]]
        out[name] = column
    return out


def _facts_with_orders(conn: sqlite3.Connection, numbers: set[str],
                       known: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The facts of these numbers (from `known`, else the table) and how many orders carry each."""
    if known is not None:
        rows = np.flatnonzero(pd.Index(known["tracking_number"], dtype=object).isin(list(numbers)))
        found = pd.DataFrame({name: facts.texts(facts.Coded(np.asarray(v.codes)[rows], v.values))
                              if isinstance(v := known[name], facts.Coded) else v[rows]
                              for name in ("tracking_number", *facts.FACT_COLUMNS)})
    else:
        found = store.read_facts(conn, numbers)
    counts = store.orders_per_number(conn, numbers)
    found["n_orders"] = found["tracking_number"].map(counts).fillna(0).astype(np.int64)
    missing = sorted(set(numbers) - set(found["tracking_number"]))
    if missing:
        found = pd.concat([found, pd.DataFrame({"tracking_number": missing,
                                                "n_orders": [counts.get(n, 0) for n in missing]})],
                          ignore_index=True)
    return found


def seller_closure(conn: sqlite3.Connection, order_ids: Iterable[str]) -> list[str]:
    """Every order of the sellers of these orders (a seller's aggregates need their whole book)."""
    return [r[0] for r in conn.execute(
        "SELECT order_id FROM orders WHERE seller_id IN (SELECT o.seller_id FROM json_each(?) j "
        "CROSS JOIN orders o ON o.order_id = j.value)", [store.as_sorted_json(order_ids)])]


def buyer_closure(conn: sqlite3.Connection, order_ids: Iterable[str]) -> list[str]:
    """Every order of the buyers of these orders (a buyer's history feeds each of their orders' features)."""
    return [r[0] for r in conn.execute(
        "SELECT order_id FROM orders WHERE buyer_id IN (SELECT o.buyer_id FROM json_each(?) j "
        "CROSS JOIN orders o ON o.order_id = j.value)", [store.as_sorted_json(order_ids)])]


def ids_of_rowids(conn: sqlite3.Connection, rowids: Iterable[int]) -> list[str]:
    """The order ids of these order rowids (those still in the store)."""
    return [r[0] for r in conn.execute(
        "SELECT o.order_id FROM json_each(?) j CROSS JOIN orders o ON o.rowid = j.value",
        [store.as_sorted_json(int(r) for r in rowids)])]


def feature_frame(conn: sqlite3.Connection, order_ids: Iterable[str] | None, as_of: datetime,
                  message_scores: MessageScorer, *, plan: Plan | None = None,
                  sellers: Callable[[pd.DataFrame], None] | None = None, buyers: bool = True,
                  kept: KeptOrders | None = None, known: ScopeRows | None = None) -> pd.DataFrame:
    """The classifier's frame (`detectors.features.feature_frame`): every order of the sellers of `order_ids`
    (every order when None), `target` marking the asked-for ones. `message_scores` turns seller messages (id,
    order_id, text) into pressure probabilities (the tracker's caches them in the store). `sellers`: adds the seller
    aggregates (see `detectors.features.feature_frame`); then the frame holds the asked-for orders only. Without
    `buyers`, a scope's buyer history is left to the caller (zeros: the seller books count it). `kept`: every
    order as the rules' read of this run kept them (`rule_frame`), for a frame of every order; `known`: rows of a
    scope this run read already (`ScopeRows`), not read again."""
    with pragmas(conn, **_READ_PRAGMAS):
        targets = None if order_ids is None else set(order_ids)
        scope = None if targets is None else list(targets) if sellers is not None else seller_closure(conn, targets)
        read: OrderRead | _KeptRead
        if kept is not None and scope is None:
            read = _KeptRead(conn, kept)
        else:
            read = OrderRead(conn, plan or plan_for(conn), scope, fact_columns=features.FEATURE_FACTS,
                             shipments=False, side=True, places=True, known=None if scope is None else known)
        try:
            side = read.side()
            pressure = features.message_pressure(side.messages, message_scores)
            frame, normalised = read.finish()
        finally:
            read.close()
        if read.side_from_readers and not read.through_readers:
            # the readers' flags and messages came with their rows in a frame that is not this one
            side = read.side_through_sql()
            pressure = features.message_pressure(side.messages, message_scores)
        frame.attrs["side_by"] = "child readers" if read.side_from_readers and read.through_readers else "sql"
        frame["target"] = True if targets is None else frame["order_id"].isin(targets)
        context = None if scope is None else _number_and_buyer_context(conn, frame, buyers)
        # a scope reads the typical transit the last full run kept; the whole store settles its own against it
        kept = kept_typical_transit(conn)
        typical = None if scope is None else (kept if kept is not None else typical_transit(conn))
        return features.feature_frame(frame, side, pressure, as_of, normalised, context, sellers, typical=typical,
                                      kept_typical=kept)


TYPICAL_TRANSIT_META = "typical_transit"


def kept_typical_transit(conn: sqlite3.Connection) -> dict[str, float] | None:
    """The typical transit per destination the store's scores were made with (meta `typical_transit`, written
    with the scores of a full run: a scope of a million-order store is not worth a scan of every order); None
    when there is none."""
    import json

    row = conn.execute("SELECT value FROM meta WHERE key = ?", [TYPICAL_TRANSIT_META]).fetchone()
    if row and row[0]:
        try:
            return {str(k): float(v) for k, v in json.loads(row[0]).items()}
        except (ValueError, AttributeError):
            pass
    return None


def typical_transit(conn: sqlite3.Connection) -> dict[str, float]:
    """`detectors.features.typical_transit` over every order of the store (what a frame of the whole store
    computes itself), for a frame that holds only some sellers' orders."""
    from detectors import places

    rows = conn.execute(
        "SELECT o.dest_country, f.delivered_jd - f.first_event_jd FROM orders o JOIN shipment_facts f "
        "ON f.tracking_number = o.tracking_number WHERE f.delivered_jd IS NOT NULL AND f.first_event_jd IS NOT NULL"
    ).fetchall()
    countries = pd.Series([r[0] for r in rows], dtype=object)
    codes, uniques = pd.factorize(countries, use_na_sentinel=True)
    names = np.array([places.normalize_country(str(u)) for u in uniques] + [""], dtype=object)
    return features.typical_transit(names[codes], np.array([r[1] for r in rows], dtype=np.float64))


def _number_and_buyer_context(conn: sqlite3.Connection, frame: pd.DataFrame, buyers: bool = True
                              ) -> features.Context:
    """Per number of the frame, the orders and buyers carrying it; per buyer (unless not `buyers`), their orders,
    the ones they said did not arrive and the flagged ones: counted over the whole store."""
    numbers = store.query(conn, """SELECT tracking_number, count(*), count(DISTINCT buyer_id) FROM orders
        WHERE tracking_number IN (SELECT value FROM json_each(?)) GROUP BY tracking_number""",
                          ["tracking_number", "n_orders_on_number", "buyers_on_number"],
                          [store.as_json(set(frame["tracking_number"].dropna()))]).set_index("tracking_number")
    if not buyers:
        return numbers, pd.DataFrame({name: pd.Series(dtype=float) for name in features.BUYER_SUMS},
                                     index=pd.Index([], dtype=object, name="buyer_id"))
    history = store.query(conn, """SELECT o.buyer_id, count(*), sum(lower(trim(coalesce(o.buyer_received, ''))) = 'no'),
               sum(o.order_id IN (SELECT order_id FROM flags WHERE resolved_at IS NULL AND severity != 'low'))
        FROM orders o WHERE o.buyer_id IN (SELECT value FROM json_each(?)) GROUP BY o.buyer_id""",
                         ["buyer_id", "buyer_n_orders", "_buyer_not_received", "_buyer_flagged"],
                         [store.as_json(set(frame["buyer_id"].dropna()))]).set_index("buyer_id")
    return numbers, history
