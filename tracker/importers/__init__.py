"""Importers: orders, tracking events and chat messages from CSV or JSON Lines files into the store.

    from tracker.importers import import_file
    result = import_file(db, "orders", "orders.csv")            # BadInput if any row is bad
    result = import_file(db, "orders", "orders.csv", skip_invalid="rejects.csv")

An import is one transaction, written in batches as the file streams by. The first bad row stops the
writing, but the rest of the file is still checked so the user sees every problem (the first 20) in one
go; then everything is rolled back. With `skip_invalid` the good rows go in and the bad ones go to a file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from tracker.errors import BadInput
from tracker.importers import parts
from tracker.importers.base import Kind
from tracker.importers.events import Events
from tracker.importers.messages import Messages
from tracker.importers.orders import Orders
from tracker.importers.rejects import RejectsFile
from tracker.importers.sources import Problem, Source
from tracker.plan import store_file, thresholds
from tracker.timeutil import now as clock_now
from tracker.timeutil import to_db

__all__ = ["KINDS", "ImportResult", "import_file"]

log = logging.getLogger(__name__)

KINDS: dict[str, type[Kind]] = {"orders": Orders, "events": Events, "messages": Messages}
MAX_SHOWN = 20


def cache_kib(conn: sqlite3.Connection, source: str | Path) -> int:
    """SQLite's page cache for one import (KiB): enough for the pages it will touch again and again, the indexes
    that grow with it (about as many bytes as the file it reads) and half the store's, between 64 MiB and the
    smaller of 1 GiB and a quarter of the machine's memory."""
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    store = conn.execute("PRAGMA page_count").fetchone()[0] * page
    try:
        incoming = 0 if str(source) == "-" else os.path.getsize(source)
    except OSError:
        incoming = 0
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 4 << 30
    return int(max(64 << 20, min(incoming + store // 2, 1 << 30, memory // 4)) // 1024)


@dataclass
class ImportResult:
    kind: str
    source: str
    rows: int = 0  # data rows read (blank lines not counted)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # identical to what was stored (orders) or already stored (events, messages)
    rejected: int = 0
    rejects_path: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        """The one summary line the CLI prints."""
        text = (
            f"{self.source}: {self.kind}: {self.inserted} inserted, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.rejected} rejected"
        )
        if self.rejects_path is not None:
            text += f" (written to {self.rejects_path})"
        return text


def _problem_line(label: str, line: int, column: str | None, reason: str) -> str:
    return f"{label}:{line}: column {column}: {reason}" if column else f"{label}:{line}: {reason}"


class _Transaction:
    """BEGIN IMMEDIATE (the write lock up front), or a savepoint inside a caller's transaction."""

    def __init__(self, db: sqlite_utils.Database, cache: int) -> None:
        self.conn = db.conn
        self.cache_size = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        # For the import only: a bigger page cache (negative = KiB). Temporary storage stays where the connection
        # keeps it (a file unless told otherwise): SQLite holds a statement's journal in memory until it passes
        # 64 KiB anyway, and a whole-table sort (an index built anew) writes its sorted runs to temporary files and
        # merges them, faster than sorting a million keys in one run in memory, which it does when temp_store is
        # MEMORY (`tracker.sqlite_pragmas`).
        self.nested = self.conn.in_transaction
        self.conn.execute(f"PRAGMA cache_size = -{int(cache)}")
        # a store's first import writes its pages once, to the file, under a rollback journal (`_write_once`)
        self.wal_after = not self.nested and _write_once(self.conn)
        self.conn.execute("SAVEPOINT tracker_import" if self.nested else "BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.nested:
            self.conn.execute("RELEASE SAVEPOINT tracker_import")
        else:
            self.conn.commit()
        self._restore()

    def rollback(self) -> None:
        if self.nested:
            self.conn.execute("ROLLBACK TO SAVEPOINT tracker_import")
            self.conn.execute("RELEASE SAVEPOINT tracker_import")
        else:
            self.conn.rollback()
        self._restore()

    def _restore(self) -> None:
        self.conn.execute(f"PRAGMA cache_size = {int(self.cache_size)}")
        if self.wal_after:
            self.wal_after = False
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:  # a reader came meanwhile: the next `open_db` makes it WAL again
                pass


def _write_once(conn: sqlite3.Connection) -> bool:
    """For an import into a store that holds no orders, scans or messages yet, with no other connection open: the
    store leaves write-ahead logging for the import's transaction (True: `_Transaction` brings it back after), so
    each page the import writes reaches the file once, instead of once in the log and again when the log is
    copied into the file at the commit. Nothing is there for a reader to miss; one that comes meanwhile waits (its
    busy timeout) while the import holds the file. A rollback journal keeps the import whole all the same: killed,
    the store comes back as it was on its next opening. Anything else, or a store SQLite cannot switch at once
    (another connection open), keeps its log: False."""
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            return False
        if conn.execute("SELECT EXISTS (SELECT 1 FROM orders) OR EXISTS (SELECT 1 FROM tracking_events) "
                        "OR EXISTS (SELECT 1 FROM messages)").fetchone()[0]:
            return False
    except sqlite3.OperationalError:  # not a store of ours yet: nothing to gain
        return False
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")  # another connection open: refused at once, not after its timeout
    try:
        return conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    except sqlite3.OperationalError:
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _parts_that_pay(db: sqlite_utils.Database, spec: Kind, src: Source) -> list[tuple[int, int]] | None:
    """The file's parts when reading them on two processes pays (`tracker.importers.parts`): a file, not stdin, of
    a kind that can, at least `import_helper_min_bytes` long, child processes allowed and the store a file."""
    if not spec.read_in_parts or src.path is None:
        return None
    limits = thresholds()
    try:
        size = src.path.stat().st_size
    except OSError:
        return None
    if limits.never_children or size < limits.import_helper_min_bytes or not store_file(db.conn):
        return None
    bounds = src.part_bounds(parts.PART_BYTES)
    return bounds if bounds is not None and len(bounds) > 1 else None


def _import_in_parts(
    db: sqlite_utils.Database, spec: Kind, src: Source, stamp: str, now: datetime, bounds: list[tuple[int, int]]
) -> ImportResult | None:
    """A clean file read on two processes, written as the plain import writes it; None (nothing written) when the
    file has a problem, or something the parts cannot vouch for: the caller imports it the plain way."""
    txn = _Transaction(db, cache_kib(db.conn, src.path))
    writer = None
    try:
        writer = spec.writer(db, stamp)
        rows = parts.read_into(writer, spec, src, now, bounds)
        writer.flush()
        writer.close()
    except (parts.Fallback, sqlite3.IntegrityError) as why:  # a problem, or an order id of two parts (`parts`)
        log.debug("import: read the plain way (%s)", why)
        if writer is not None:
            writer.discard()
        txn.rollback()
        return None
    except BaseException:
        if writer is not None:
            writer.wait()  # no statement of the import may run after its rollback
        txn.rollback()
        raise
    txn.commit()
    result = ImportResult(spec.name, src.label, rows=rows)
    result.inserted, result.updated, result.unchanged = writer.inserted, writer.updated, writer.unchanged
    return result


def import_file(
    db: sqlite_utils.Database,
    kind: str,
    source: str | Path,
    *,
    skip_invalid: str | Path | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Import one orders / events / messages file ('-' = CSV on stdin) atomically; see the module doc.

    Raises BadInput (one line per problem, the first 20) when the file cannot be read, lacks required
    columns, or, without `skip_invalid`, has any bad row; nothing is written then.
    """
    if kind not in KINDS:
        raise BadInput(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    started = time.perf_counter()
    spec = KINDS[kind]()
    now = now or clock_now()
    stamp = to_db(now)
    spec.refuse_times_after(now)
    with Source(source) as src:
        src.check_columns(spec.columns, spec.required)
        bounds = _parts_that_pay(db, spec, src) if skip_invalid is None else None
        if bounds is not None:
            done = _import_in_parts(db, spec, src, stamp, now, bounds)
            if done is not None:
                done.seconds = time.perf_counter() - started
                return done
            spec = KINDS[kind]()  # the plain way, from a fresh start: it reports each problem with its line
            spec.refuse_times_after(now)
        result = ImportResult(kind, src.label)
        rejects = RejectsFile(skip_invalid, src, spec.columns) if skip_invalid is not None else None
        if rejects is not None:
            result.rejects_path = str(rejects.path)
        shown: list[str] = []
        total_problems = 0
        writing = True
        txn = _Transaction(db, cache_kib(db.conn, source))
        writer = None
        try:
            writer = spec.writer(db, stamp)
            clean, batch, batch_size = spec.clean, writer.batch, writer.batch_size
            rows = 0
            for line, values, extras, original, row_problems in src.records(spec):
                rows += 1
                problems: list[Problem] = row_problems or []
                record = clean(line, values, extras, problems) if values is not None and not problems else None
                if not problems:
                    if writing:
                        batch.append(record)
                        if len(batch) >= batch_size:
                            writer.flush()
                            batch = writer.batch
                    continue
                result.rejected += 1
                total_problems += len(problems)
                for column, reason in problems:
                    if len(shown) < MAX_SHOWN:
                        shown.append(_problem_line(src.label, line, column, reason))
                if rejects is not None:
                    rejects.write(original, line, "; ".join(f"column {c}: {r}" if c else r for c, r in problems))
                elif writing:
                    # roll back now (freeing the write lock), then keep checking to report every problem
                    writing = False
                    writer.discard()
                    txn.rollback()
            result.rows = rows
            if not writing:
                if total_problems > len(shown):
                    shown.append(f"... and {total_problems - len(shown)} more problems")
                shown.append(
                    f"{src.label}: {result.rejected} of {result.rows} rows rejected, nothing imported "
                    "(fix them, or use --skip-invalid REJECTS_FILE to import the good rows)"
                )
                raise BadInput(shown)
            writer.flush()
            writer.close()
        except BaseException:
            if writing:
                if writer is not None:
                    writer.wait()  # no statement of the import may run after its rollback
                txn.rollback()
            raise
        finally:
            if rejects is not None:
                rejects.close()
        txn.commit()
    result.inserted, result.updated, result.unchanged = writer.inserted, writer.updated, writer.unchanged
    result.seconds = time.perf_counter() - started
    return result
