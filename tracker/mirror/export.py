"""`tracker export-parquet DEST`: the store's orders, events, messages, shipments and shipment facts as Parquet,
only what changed since the last export.

What changed is read from the store's own change marks, kept in the manifest after each export:
- orders with `seq` above the last export's (an import or a poll that moved their shipment stamps a new one);
  an order whose tracking number now hashes to another bucket leaves a tombstone in its old one;
- events and messages with an id above the last one (they are only ever added);
- shipments of the numbers polled (`poll_log`), given new events or new orders since;
- shipment facts computed since (their newest event is newer than the last export's), all of them when their
  definition changed. The facts are brought up to date first, as `tracker detect` does.

The marks are read in one read transaction, and every slice read is bounded by them (rows written meanwhile wait
for the next export), so two spawned children can read the store at once (`writer`: through the ADBC driver,
as detection's child readers do) while this process waits. Files go through pyarrow's dataset writer,
hive-partitioned by bucket; the manifest, written last, is what makes them part of the mirror. A bucket
holding more than `COMPACT_FROM` files of a table is rewritten as one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from tracker.db import get_meta, set_meta
from tracker.errors import BadInput, RunFailure
from tracker.mirror import layout, writer
from tracker.mirror.layout import Destination, Manifest
from tracker.mirror.writer import TableJob, Written
from tracker.timeutil import now, to_db

log = logging.getLogger(__name__)

META_STORE_ID = "mirror.store_id"
META_LAST = "mirror.last_export"
SLICE_ROWS = 500_000  # rowids read from the store and handed to the writer at a time (~150 MB of events)
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
    by: str = ""  # who read the store and wrote the files: 'child writers' or 'this process'
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
    if destination.protocol == "file" and os.path.exists(destination.root) and not os.path.isdir(destination.root):
        raise BadInput(f"{dest}: exists and is not a folder; give a folder (or a URL) for the mirror")
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
        jobs, rows = _jobs(conn, last, marks, full, facts_anew)
    finally:
        conn.rollback()
    try:
        written, summary.by = _run(db, dest, manifest, jobs, rows)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunFailure(f"{dest}: no space left for the mirror; the previous export stays whole") from None
        raise BadInput(f"{dest}: cannot write the mirror ({exc.strerror or exc})") from None
    for done in written:
        summary.rows[done.table] = summary.rows.get(done.table, 0) + done.rows
        summary.moved += done.moved
        by_bucket = manifest.files.setdefault(done.table, {})
        for relative in done.files:
            files = by_bucket.setdefault(relative.split("/")[1].partition("=")[2], [])
            if relative not in files:
                files.append(relative)
    summary.compacted = writer.compact(destination, manifest, COMPACT_FROM)
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


def _windows(conn: Any, source: str, where: str, low: int | None = None, high: int | None = None) -> tuple[str, ...]:
    """`where` cut into slices of at most SLICE_ROWS rowids (within [low, high] when given: ids already bound)."""
    if low is None or high is None:
        low, high = (int(v or 0) for v in conn.execute(f"SELECT min(rowid) - 1, max(rowid) FROM {source}").fetchone())
    return tuple(f"rowid > {a} AND rowid <= {min(a + SLICE_ROWS, high)} AND ({where})"
                 for a in range(low, high, SLICE_ROWS))


def _jobs(conn: Any, last: dict[str, Any], marks: dict[str, Any], full: bool, facts_anew: bool
          ) -> tuple[list[TableJob], int]:
    """Each table's slices of what changed since `last` (everything when `full`), bounded by `marks` (rows
    written meanwhile wait for the next export), and about how many rows they hold. Only integers are formatted
    into the SQL."""
    mark = {k: -1 if full else int(last.get(k, -1)) for k in ("orders_seq", "event_id", "message_id", "poll_id",
                                                                "facts_event_id")}
    seq = f"seq > {mark['orders_seq']} AND seq <= {int(marks['orders_seq'])}"
    changed = conn.execute(f"SELECT count(*) FROM orders WHERE {seq}").fetchone()[0]
    orders = _windows(conn, "orders", seq) if changed > SLICE_ROWS else (seq,)
    events = _windows(conn, "tracking_events", "1", max(mark["event_id"], 0), int(marks["event_id"]))
    messages = _windows(conn, "messages", "1", max(mark["message_id"], 0), int(marks["message_id"]))
    if full:
        shipments = _windows(conn, "shipments", "1")
    else:
        shipments = (f"""tracking_number IN (
            SELECT tracking_number FROM poll_log WHERE id > {mark['poll_id']} AND id <= {int(marks['poll_id'])}
            UNION SELECT tracking_number FROM orders WHERE {seq}
            UNION SELECT tracking_number FROM tracking_events
                  WHERE id > {mark['event_id']} AND id <= {int(marks['event_id'])})""",)
    facts = _windows(conn, "shipment_facts", "1") if facts_anew else (f"max_event_id > {mark['facts_event_id']}",)
    rows = changed + max(int(marks["event_id"]) - max(mark["event_id"], 0), 0) + \
        max(int(marks["message_id"]) - max(mark["message_id"], 0), 0)
    half = (len(events) + 1) // 2  # the bulk of any export: shared between the two children
    return [TableJob("events", events[:half], part="0"), TableJob("events", events[half:], part="1"),
            TableJob("orders", orders, moves=not full), TableJob("messages", messages),
            TableJob("shipments", shipments), TableJob("shipment_facts", facts)], rows


def _run(db: sqlite_utils.Database, dest: str, manifest: Manifest, jobs: list[TableJob], rows: int
         ) -> tuple[list[Written], str]:
    """The jobs in two spawned children reading the store through the ADBC driver (both cores busy, no Python
    object per value) when `rows` are enough to pay for their start (`tracker.plan`), else, for a store in
    memory, without the driver or with any trouble there, here."""
    import importlib.util

    from tracker.detection.children import Children
    from tracker.plan import child_file, plan_for

    plan = plan_for(db.conn)
    path = child_file(db.conn, plan) if importlib.util.find_spec("adbc_driver_sqlite") else None
    if path and rows >= plan.limits.mirror_children_min_rows:
        try:
            with Children(plan.limits.readers) as children:
                futures = [children.submit(writer.write_table, path, dest, manifest, job) for job in jobs]
                return [f.result() for f in futures], "child writers"
        except Exception as exc:  # noqa: BLE001 - any trouble there: the same files, written here
            log.warning("export: child writers unavailable (%s); writing here", exc)
    return [writer.write_table(db.conn, dest, manifest, job) for job in jobs], "this process"


def default_destination(db: sqlite_utils.Database) -> str:
    """The mirror beside the store: data/tracker.db -> data/tracker.parquet."""
    from tracker.plan import store_file

    path = store_file(db.conn)
    if not path:
        raise BadInput("a store in memory has no folder beside it for the Parquet mirror; give --parquet DEST")
    return str(path.rsplit(".", 1)[0] if path.endswith(".db") else path) + ".parquet"


