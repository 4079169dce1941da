"""Keeping the full-text indexes current: fold the rows the triggers queued into the FTS5 tables.

Migrations 003 and 015 give each searchable table a `<table>_fts` index (external content: it reads the table's
rows) and a `<table>_fts_pending` queue that triggers fill with changed rowids, and with the values a row was
indexed with when it changes. Folding is two INSERT…SELECT per table (the changed rows' old values out, the
rows as they are now in), so a million imported orders cost a bulk index build, not a million trigger-time FTS
writes.

Who folds (never a page view: a search only reads, so it neither writes on a GET nor waits for an import's
lock): the writers of cases at the end of their own transaction (`tracker detect`, `tracker case update`),
`tracker serve` when it starts, and the dashboard's indexer thread between requests (`SearchIndexer`). A
`tracker detect` after a big import folds the import's rows earlier, in its writing child while the rules
run (`fold_file`; `tracker.detection.flagging`), so its cases stage only folds the cases.
Imports leave their rows queued: folding 100k orders costs about a fifth of the import's time.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from tracker.migrations import SEARCH_INDEXES


class BulkQueue:
    """For a bulk insert into a searchable table: the per-row insert trigger dropped (one trigger program a row
    costs more than the insert of the row into the queue), and the new rows queued a range at a time with
    `queue_after` instead, the same rowids in the queue; `restore` makes the trigger again. Inside the caller's
    transaction, so a rollback brings the trigger back too. Nothing to do on a store without the trigger."""

    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        self.conn, self.table = conn, table
        self.name = f"{table}_fts_queue_insert"
        found = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'trigger' AND name = ?",
                             [self.name]).fetchone()
        self.trigger: str | None = found[0] if found else None
        if self.trigger is not None:
            conn.execute(f'DROP TRIGGER main."{self.name}"')
        # what the trigger does for each new row, for every row after a rowid
        self.sql = (f"INSERT OR IGNORE INTO main.{table}_fts_pending(id) SELECT rowid FROM main.{table} WHERE rowid > ?"
                    if self.trigger is not None else None)

    def queue_after(self, rowid: int) -> tuple[str, list[int]] | None:
        """The statement (sql, parameters) that queues the rows inserted after `rowid`, or None without a queue."""
        return None if self.sql is None else (self.sql, [rowid])

    def restore(self) -> None:
        if self.trigger is not None:
            self.conn.execute(self.trigger)
            self.trigger = None


def pending_rows(conn: sqlite3.Connection) -> int:
    """How many changed rows wait to be indexed (0 when the store predates the search migration)."""
    total = 0
    for table in SEARCH_INDEXES:
        try:
            total += conn.execute(f"SELECT count(*) FROM {table}_fts_pending").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
    return total


def fold_pending(conn: sqlite3.Connection) -> int:
    """Index every queued row inside the caller's transaction (deleted rows leave the index); return how many.

    An index forgets a row by the values it was indexed with (`<table>_fts` reads its table, which holds the new
    ones): those the queue kept from the row's first change since it was indexed."""
    folded = 0
    for table, columns in SEARCH_INDEXES.items():
        queue = f"{table}_fts_pending"
        try:
            waiting = conn.execute(f"SELECT count(*) FROM {queue}").fetchone()[0]
        except sqlite3.OperationalError:
            return folded  # the search migration has not run on this store
        if not waiting:
            continue
        cols = ", ".join(columns)
        source_cols = ", ".join(f"t.{c}" for c in columns)
        conn.execute(f"INSERT INTO {table}_fts({table}_fts, rowid, {cols}) "
                     f"SELECT 'delete', id, {cols} FROM {queue} WHERE indexed ORDER BY id")
        # the queue drives (CROSS JOIN): a few queued rows cost a few lookups, not a scan of the table; in rowid order
        conn.execute(
            f"INSERT INTO {table}_fts(rowid, {cols}) SELECT t.rowid, {source_cols} "
            f"FROM {queue} q CROSS JOIN {table} t ON t.rowid = q.id ORDER BY q.id"
        )
        conn.execute(f"DELETE FROM {queue}")
        folded += waiting
    return folded


def refresh_search_index(conn: sqlite3.Connection) -> int:
    """Fold every queued row in a transaction of its own; return how many were folded in."""
    if not pending_rows(conn):
        return 0
    with conn:
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        return fold_pending(conn)


def fold_file(path: str, busy_seconds: float = 300.0) -> int:
    """In a child process: fold the store's queue on a connection of its own, waiting up to `busy_seconds` for
    the write lock; return how many rows were folded in."""
    conn = sqlite3.connect(path, timeout=busy_seconds)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_seconds * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return refresh_search_index(conn)
    finally:
        conn.close()


class SearchIndexer(threading.Thread):
    """Folds the queue every `interval` seconds from its own connection, while the dashboard serves.

    A fold waits at most `busy_seconds` for the write lock; when an import holds it, the round is skipped
    and the next one tries again. Pages never wait for it: they read what is indexed.
    """

    def __init__(self, db_path: str | Path, interval: float = 5.0, busy_seconds: float = 2.0) -> None:
        super().__init__(name="tracker-search-indexer", daemon=True)
        self.db_path = str(db_path)
        self.interval = interval
        self.busy_seconds = busy_seconds
        self.stopped = threading.Event()
        self.folded = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.fold_once()

    def fold_once(self) -> int:
        """One round; errors (a lock held too long, a vanished file) wait for the next round."""
        try:
            conn = sqlite3.connect(self.db_path, timeout=self.busy_seconds)
        except sqlite3.Error:
            return 0
        try:
            folded = refresh_search_index(conn)
        except sqlite3.Error:
            return 0
        finally:
            conn.close()
        self.folded += folded
        return folded

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=self.busy_seconds + 1)
