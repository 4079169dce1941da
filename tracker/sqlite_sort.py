"""The page cache a whole-table sort inside SQLite is fastest with (standard library only: the writing child
process imports it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

# KiB of page cache while SQLite sorts a whole table (an index built anew, an INSERT … SELECT … ORDER BY): its
# sorter sizes its in-memory runs from the page cache, and one run of a million keys sorts slower than many small
# runs merged from a temporary file (the orders' indexes and the scores' build in about half the time with 2 MB as
# with the hundreds of MB an import or a score write keeps). SQLite only writes such runs where temporary files are
# allowed: with temp_store = MEMORY it sorts everything in one run, whatever the cache.
SORT_CACHE_KIB = 2048


@contextmanager
def sort_cache(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block with the small page cache a whole-table sort is fastest with (`SORT_CACHE_KIB`); the cache the
    connection had comes back after it. Pages the transaction changed stay changed: SQLite writes out what no
    longer fits (to the write-ahead log), as the commit would have."""
    before = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{SORT_CACHE_KIB}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {int(before)}")
