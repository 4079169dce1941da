"""Connection PRAGMAs set for one block of SQLite work and put back after it: the page cache a whole-table sort
is fastest with, and the store read memory-mapped (standard library only: the writing child process imports it)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from tracker.plan import cores  # standard library only, as this module

# KiB of page cache while SQLite sorts a whole table (an index built anew, an INSERT … SELECT … ORDER BY): its
# sorter sizes its in-memory runs from the page cache, and one run of a million keys sorts slower than many small
# runs merged from a temporary file (the orders' indexes and the scores' build in about half the time with 2 MB as
# with the hundreds of MB an import or a score write keeps). SQLite only writes such runs where temporary files are
# allowed: with temp_store = MEMORY it sorts everything in one run, whatever the cache.
SORT_CACHE_KIB = 2048


def sort_threads() -> int:
    """Helper threads SQLite's sorter may use (`PRAGMA threads`): one per core this process may run on. Each sorts
    and merges runs while the statement's own thread reads the next rows; measured on the 1M orders' tail (three
    indexes built anew, the shipments made in number order, 2 cores), 4.2 s with none and 3.4 s with two."""
    return min(cores(), 8)  # SQLite's own ceiling is 8 (SQLITE_MAX_WORKER_THREADS)


@contextmanager
def pragmas(conn: sqlite3.Connection, **values: int) -> Iterator[None]:
    """Run the block with these PRAGMAs (name = integer value) set on the connection; the values it had come back
    after it, failing or not. A PRAGMA that answers nothing on this database (`mmap_size` in memory) is left alone."""
    saved: dict[str, int] = {}
    try:
        for name, value in values.items():
            now = conn.execute(f"PRAGMA {name}").fetchone()
            if now is None:  # a setting this database has not (`mmap_size` of one in memory): nothing to set
                continue
            saved[name] = now[0]
            conn.execute(f"PRAGMA {name} = {int(value)}")
        yield
    finally:
        for name, value in saved.items():
            conn.execute(f"PRAGMA {name} = {int(value)}")


def sort_cache(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    """The block run with the small page cache a whole-table sort is fastest with (`SORT_CACHE_KIB`), and the
    sorter's helper threads (`sort_threads`). Pages the transaction changed stay changed: SQLite writes out what no
    longer fits (to the write-ahead log), as the commit would have."""
    return pragmas(conn, cache_size=-SORT_CACHE_KIB, threads=sort_threads())


# bytes of the store file read through memory mapping (`mapped`): SQLite caps it at its own compile-time ceiling
# (2 GB, less one 64 KiB, in the builds Python ships), so a larger store is mapped from its start up to that
MAP_BYTES = 1 << 40


def mapped(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    """The block run with the store file memory-mapped for reading (`PRAGMA mmap_size`): a page SQLite looks up is
    read from the mapping instead of copied by a system call into its own cache. For work that reads scattered pages
    of a large store a few at a time (an incremental detect: a few thousand orders' rows, their numbers' facts and
    events, their scores, through the indexes; at a 1% change of a million orders, 482k such calls, counted by
    strace). The mapped pages are the system's file cache, shared, and count in the process's resident size while
    it touches them. Writes still go through the write-ahead log as before."""
    return pragmas(conn, mmap_size=MAP_BYTES)
