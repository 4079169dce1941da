"""`tracker export-parquet DEST`: the store's orders, events, messages, shipments and shipment facts as Parquet,
only what changed since the last export.

What changed is read from the store's own change marks, kept in the manifest after each export:
- orders with `seq` above the last export's (an import or a poll that moved their shipment stamps a new one);
  an order whose tracking number now hashes to another bucket leaves a tombstone in its old one;
- events and messages with an id above the last one (they are only ever added);
- shipments of the numbers polled (`poll_log`), given new events or new orders since;
- shipment facts computed since (their newest event is newer than the last export's), all of them when their
  definition changed. The facts are brought up to date first, as `tracker detect` does.

Every read happens in one read transaction of the store, so the marks and the rows agree. Files go through
pyarrow's dataset writer, hive-partitioned by bucket; the manifest, written last, is what makes them part of
the mirror. A bucket holding more than `COMPACT_FROM` files of a table is rewritten as one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlite_utils

from tracker.db import get_meta, set_meta
from tracker.errors import BadInput
from tracker.mirror import layout
from tracker.mirror.layout import BUCKET, DELETED, EXPORT, TABLES, Destination, Manifest, Table
from tracker.timeutil import now, to_db

log = logging.getLogger(__name__)

META_STORE_ID = "mirror.store_id"
META_LAST = "mirror.last_export"
SLICE_ROWS = 200_000  # rows read from the store and handed to the writer at a time
COMPACT_FROM = 12  # files of one table in one bucket; then the bucket is rewritten as one file


@dataclass
class ExportSummary:
    destination: str
    export: int
    buckets: int
    full: bool
    rows: dict[str, int] = field(default_factory=dict)
    moved: int = 0  # orders whose number moved them to another bucket (a tombstone each)
    compacted: int = 0  # (table, bucket) pairs rewritten as one file
    seconds: float = 0.0

    def line(self) -> str:
        counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in self.rows.items())
        how = "full" if self.full else "incremental"
        extra = (f", {self.moved} moved" if self.moved else "") + \
            (f", {self.compacted} buckets compacted" if self.compacted else "")
        return (f"exported to {self.destination} ({how}, export {self.export}, {self.buckets} buckets): "
                f"{counts}{extra} in {self.seconds:.1f} s")


def store_id(db: sqlite_utils.Database) -> str:
    """The store's own id (made on first use): a mirror belongs to one store."""
    found = get_meta(db, META_STORE_ID)
    if found:
        return found
    made = uuid.uuid4().hex
    with db.conn:
        set_meta(db, META_STORE_ID, made)
    return made


def export(db: sqlite_utils.Database, dest: str, *, full: bool = False, buckets: int | None = None) -> ExportSummary:
    """Bring the mirror at `dest` up to date with the store (everything anew with `full`); `buckets` for a new
    mirror (default: from the store's size). Returns what was written."""
    from tracker.detection import shipment_facts

    started = time.perf_counter()
    if buckets is not None and not 1 <= buckets <= 65_536:
        raise BadInput(f"--buckets {buckets}: must be between 1 and 65536")
    destination = Destination(dest)
    mine = store_id(db)
    try:
        previous = destination.read_manifest()
    except OSError as exc:
        raise BadInput(f"{dest}: cannot read the mirror ({exc})") from None
    if previous is not None and previous.store_id != mine and not full:
        raise BadInput(f"{dest}: holds the mirror of another store; give another destination or --full to "
                       "replace it")
    if previous is not None and buckets is not None and buckets != previous.buckets and not full:
        raise BadInput(f"{dest}: the mirror has {previous.buckets} buckets; --buckets changes only with --full")
    full = full or previous is None or previous.store_id != mine
    shipment_facts.refresh(db)  # the facts mirrored are those of every event mirrored
    conn = db.conn
    conn.execute("BEGIN")  # one read transaction: the marks and the rows read agree
    try:
        marks = _marks(conn)
        if full:  # the previous mirror's files are retired: deleted by the next export
            n = buckets or layout.default_buckets(marks["orders_rowid"])
            manifest = Manifest(store_id=mine, buckets=n, export=previous.export if previous else 0,
                                garbage=_live_files(previous) if previous else [])
            last: dict[str, Any] = {}
        else:
            manifest = Manifest(**{**previous.__dict__, "garbage": [],
                                   "files": {t: {b: list(p) for b, p in by.items()} for t, by in previous.files.items()}})
            last = previous.marks
        manifest.export += 1
        summary = ExportSummary(dest, manifest.export, manifest.buckets, full)
        if previous is not None:  # what the previous export retired: no manifest names it any more
            destination.delete(previous.garbage)
        facts_anew = full or last.get("facts_definition") != marks["facts_definition"]
        if facts_anew and not full:
            manifest.garbage += [p for by in manifest.files.pop("shipment_facts", {}).values() for p in by]
        for name, batches in _changes(conn, destination, manifest, last, marks, full, facts_anew, summary):
            _write(destination, manifest, TABLES[name], batches)
    finally:
        conn.rollback()
    summary.compacted = _compact(destination, manifest)
    manifest.marks = marks
    manifest.exported_at = to_db(now())
    destination.write_manifest(manifest)
    summary.seconds = time.perf_counter() - started
    with db.conn:
        set_meta(db, META_LAST, json.dumps({"destination": dest, "export": manifest.export,
                                                   "exported_at": manifest.exported_at, "marks": marks}))
    log.info(summary.line())
    return summary


def _live_files(manifest: Manifest) -> list[str]:
    return sorted(p for by in manifest.files.values() for paths in by.values() for p in paths)


def _marks(conn: Any) -> dict[str, Any]:
    from tracker.detection import shipment_facts

    def one(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0] or 0)

    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)",
                             [shipment_facts.META_EVENT_ID, shipment_facts.META_DEFINITION]).fetchall())
    return {
        "orders_seq": one("SELECT max(seq) FROM orders"),
        "orders_rowid": one("SELECT max(rowid) FROM orders"),
        "event_id": one("SELECT max(id) FROM tracking_events"),
        "message_id": one("SELECT max(id) FROM messages"),
        "poll_id": one("SELECT max(id) FROM poll_log"),
        "facts_event_id": int(meta.get(shipment_facts.META_EVENT_ID) or 0),
        "facts_definition": meta.get(shipment_facts.META_DEFINITION) or "",
    }


def _changes(conn: Any, destination: Destination, manifest: Manifest, last: dict[str, Any], marks: dict[str, Any],
             full: bool, facts_anew: bool, summary: ExportSummary) -> Iterator[tuple[str, Iterator[Any]]]:
    """Per table, the batches of rows to write (each with its bucket)."""
    mark = {k: -1 if full else int(last.get(k, -1)) for k in ("orders_seq", "event_id", "message_id", "poll_id",
                                                                "facts_event_id")}

    def counted(name: str, batches: Iterator[Any]) -> Iterator[Any]:
        summary.rows.setdefault(name, 0)
        for batch in batches:
            summary.rows[name] += int(np.count_nonzero(~_deleted(batch)))
            yield batch

    where = ("seq > ? AND seq <= ?", [mark["orders_seq"], marks["orders_seq"]])
    yield "orders", counted("orders", _orders(conn, destination, manifest, where, full, summary))
    yield "events", counted("events", _slices(conn, manifest, TABLES["events"], "id > ? AND id <= ?",
                                              [mark["event_id"], marks["event_id"]]))
    yield "messages", counted("messages", _slices(conn, manifest, TABLES["messages"], "id > ? AND id <= ?",
                                                  [mark["message_id"], marks["message_id"]]))
    shipments = TABLES["shipments"]
    if full:
        yield "shipments", counted("shipments", _slices(conn, manifest, shipments, "1", []))
    else:
        touched = """tracking_number IN (
            SELECT tracking_number FROM poll_log WHERE id > ? AND id <= ?
            UNION SELECT tracking_number FROM orders WHERE seq > ? AND seq <= ?
            UNION SELECT tracking_number FROM tracking_events WHERE id > ? AND id <= ?)"""
        yield "shipments", counted("shipments", _slices(conn, manifest, shipments, touched, [
            mark["poll_id"], marks["poll_id"], mark["orders_seq"], marks["orders_seq"], mark["event_id"],
            marks["event_id"]]))
    facts_where = ("1", []) if facts_anew else ("max_event_id > ?", [mark["facts_event_id"]])
    yield "shipment_facts", counted("shipment_facts", _slices(conn, manifest, TABLES["shipment_facts"], *facts_where))


def _deleted(batch: Any) -> np.ndarray:
    if DELETED not in batch.schema.names:
        return np.zeros(batch.num_rows, dtype=bool)
    return batch.column(DELETED).to_numpy(zero_copy_only=False).astype(bool)


def _select(table: Table) -> str:
    """The SELECT list of a table's columns as stored (numbers as numbers detection reads)."""
    return ", ".join(f'"{name}"' for name in table.names)


def _slices(conn: Any, manifest: Manifest, table: Table, where: str, params: list[Any]) -> Iterator[Any]:
    """The rows of `table` matching `where`, in rowid order, as record batches of at most SLICE_ROWS rows."""
    cursor = conn.execute(f"SELECT {_select(table)} FROM {table.source} WHERE {where} ORDER BY rowid", params)
    while rows := cursor.fetchmany(SLICE_ROWS):
        yield _batch(table, manifest, list(zip(*rows, strict=True)))
        del rows


def _batch(table: Table, manifest: Manifest, columns: list[tuple[Any, ...]], deleted: np.ndarray | None = None,
           bucket: np.ndarray | None = None) -> Any:
    """Columns of Python values as one record batch of the table's schema, with `_export`, `_deleted` and the
    bucket."""
    import pyarrow as pa

    schema = table.schema(bucket=True)
    n = len(columns[0]) if columns else 0
    arrays = [_array(values, schema.field(name).type) for name, values in zip(table.names, columns, strict=True)]
    arrays.append(pa.array(np.full(n, manifest.export, dtype=np.int64)))
    if table.versioned:
        arrays.append(pa.array(np.zeros(n, dtype=bool) if deleted is None else deleted))
    if bucket is None:
        bucket = layout.buckets_of(columns[table.names.index(table.bucket_by)], manifest.buckets)
    arrays.append(pa.array(bucket, pa.int32()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _array(values: tuple[Any, ...], kind: Any) -> Any:
    """A column of SQLite values as Arrow: text as text (a number a TEXT column kept, as its text), numbers as
    numbers (a text that is none: null, as detection reads it)."""
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_string(kind):
        try:
            return pa.array(values, pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())
    try:
        return pa.array(values, kind)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        if pa.types.is_integer(kind):
            whole = numbers.where(numbers.notna() & (numbers == numbers.round()))
            return pa.array(whole.astype("Int64"), kind)
        return pa.array(numbers.astype(float), kind)


def _orders(conn: Any, destination: Destination, manifest: Manifest, where: tuple[str, list[Any]], full: bool,
            summary: ExportSummary) -> Iterator[Any]:
    """The changed orders, and a tombstone in the old bucket of each whose number now hashes elsewhere."""
    table = TABLES["orders"]
    for batch in _slices(conn, manifest, table, *where):
        yield batch
        if full:
            continue
        ids = batch.column(table.key)
        moved = _moved(destination, manifest, ids, batch.column(BUCKET))
        if moved:
            summary.moved += len(moved)
            columns = [tuple(moved) if name == table.key else (None,) * len(moved) for name in table.names]
            yield _batch(table, manifest, columns, deleted=np.ones(len(moved), dtype=bool),
                         bucket=np.fromiter(moved.values(), dtype=np.int32, count=len(moved)))


def _moved(destination: Destination, manifest: Manifest, ids: Any, buckets: Any) -> dict[str, int]:
    """Of these orders (ids, their bucket now), those whose mirrored row lives in another bucket: id -> that
    bucket. One scan of the mirror's order ids (one column), filtered to these."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    paths = [destination.path(p) for by in manifest.files.get("orders", {}).values() for p in by]
    if not paths:
        return {}
    mirrored = ds.dataset(paths, filesystem=destination.fs, format="parquet",
                          schema=TABLES["orders"].schema(bucket=True), partition_base_dir=destination.path("orders"),
                          partitioning=ds.partitioning(pa.schema([(BUCKET, pa.int32())]), flavor="hive"))
    found = mirrored.to_table(columns=["order_id", EXPORT, DELETED, BUCKET],
                              filter=ds.field("order_id").isin(ids) & ~ds.field(DELETED)).to_pandas()
    if found.empty:
        return {}
    latest = found.sort_values(EXPORT, kind="stable").drop_duplicates("order_id", keep="last").set_index("order_id")
    now_in = pd.Series(buckets.to_numpy(zero_copy_only=False), index=ids.to_pandas())
    old = latest[BUCKET].astype(np.int64)
    moved = old[old.to_numpy() != now_in.reindex(old.index).to_numpy()]
    return {str(k): int(v) for k, v in moved.items()}


def _write(destination: Destination, manifest: Manifest, table: Table, batches: Iterator[Any]) -> None:
    """The batches into the table's folder, one file per bucket (pyarrow's dataset writer), named by the export;
    the files written join the manifest."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    written: list[str] = []
    schema = table.schema(bucket=True)
    ds.write_dataset(
        batches, destination.path(table.name), schema=schema, format="parquet", filesystem=destination.fs,
        partitioning=ds.partitioning(pa.schema([schema.field(BUCKET)]), flavor="hive"),
        basename_template=f"part-{manifest.export:06d}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore", max_partitions=manifest.buckets + 1,
        max_open_files=manifest.buckets + 8, file_visitor=lambda f: written.append(f.path),
    )
    by_bucket = manifest.files.setdefault(table.name, {})
    for path in written:
        relative = destination.relative(path)
        bucket = relative.split("/")[1].partition("=")[2]
        files = by_bucket.setdefault(bucket, [])
        if relative not in files:
            files.append(relative)


def _compact(destination: Destination, manifest: Manifest) -> int:
    """Rewrite as one file each (table, bucket) holding more than COMPACT_FROM files: its newest rows, tombstones
    spent. The old files become garbage."""
    import pyarrow.parquet as pq

    done = 0
    for name, by_bucket in manifest.files.items():
        table = TABLES[name]
        for bucket, paths in list(by_bucket.items()):
            if len(paths) <= COMPACT_FROM:
                continue
            found = pq.read_table([destination.path(p) for p in paths], filesystem=destination.fs,
                                  partitioning=None, schema=table.schema())
            if table.versioned:
                found = layout.newest(found, table.key)
            relative = f"{name}/{BUCKET}={bucket}/compact-{manifest.export:06d}.parquet"
            pq.write_table(found, destination.path(relative), filesystem=destination.fs)
            manifest.garbage += paths
            by_bucket[bucket] = [relative]
            done += 1
    return done


def default_destination(db: sqlite_utils.Database) -> str:
    """The mirror beside the store: data/tracker.db -> data/tracker.parquet."""
    from tracker.plan import store_file

    path = store_file(db.conn)
    if not path:
        raise BadInput("a store in memory has no folder beside it for the Parquet mirror; give --parquet DEST")
    return str(path.rsplit(".", 1)[0] if path.endswith(".db") else path) + ".parquet"


__all__ = ["ExportSummary", "default_destination", "export", "store_id", "EXPORT"]
