"""Keeping the full-text indexes current: fold the rows the triggers queued into the FTS5 tables.

Migration 007 gives each searchable table a `<table>_fts` index and a `<table>_fts_pending` queue that
triggers fill with changed rowids. Folding is one DELETE and one INSERT…SELECT per table, so a million
imported orders cost a bulk index build, not a million trigger-time FTS writes.
"""

from __future__ import annotations

import sqlite3

from tracker.migrations import SEARCH_INDEXES


def pending_rows(conn: sqlite3.Connection) -> int:
    """How many changed rows wait to be indexed (0 when the store predates the search migration)."""
    total = 0
    for table in SEARCH_INDEXES:
        try:
            total += conn.execute(f"SELECT count(*) FROM {table}_fts_pending").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
    return total


def refresh_search_index(conn: sqlite3.Connection) -> int:
    """Index every queued row (deleted rows leave the index); return how many were folded in."""
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
        with conn:
            conn.execute(f"DELETE FROM {table}_fts WHERE rowid IN (SELECT id FROM {queue})")
            conn.execute(
                f"INSERT INTO {table}_fts(rowid, {cols}) SELECT t.rowid, {source_cols} "
                f"FROM {table} t JOIN {queue} q ON q.id = t.rowid"
            )
            conn.execute(f"DELETE FROM {queue}")
        folded += waiting
    return folded
