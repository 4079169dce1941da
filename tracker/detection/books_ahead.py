"""An incremental run's seller books (`seller_books.Books`), read by a thread of its own from the run's start.

This module imports only the standard library: `tracker.detection.pipeline` starts the thread before it imports
the detection modules (numpy and pandas among them, a third of a second), so the thread reads the books' BLOBs while
the run's own thread imports; the thread imports `seller_books` itself (one import of each module: Python's import
lock makes the later importer wait for it).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

NOT_READ = object()  # `LoadAhead.books`: the books were not read ahead for the scores' run of now


class LoadAhead:
    """The store's books read by a thread of its own, on a connection of its own, while the run starts and its rules
    run: an incremental run's rules never write the books, and reading them (a few hundred MB at a million orders,
    mostly SQLite copying a BLOB's pages with the interpreter's lock released) then costs the run little, where read
    after the rules it is a fifth of a second the run waits for. The thread reads the scores' run token and the
    books of that run in one read transaction; `books` hands them over only while that token is still the scores'
    one (another run may have written since): else `NOT_READ`, and the caller reads them itself."""

    def __init__(self, path: str, run_key: str):
        self._run: str | None = None
        self._books: Any = None
        self._thread = threading.Thread(target=self._read, args=(path, run_key), name="seller-books", daemon=True)
        self._thread.start()

    def _read(self, path: str, run_key: str) -> None:
        try:
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            log.debug("seller books: not read ahead (%s)", exc)
            return
        started = time.perf_counter()
        try:
            from tracker.detection.seller_books import Books
            from tracker.sqlite_pragmas import mapped

            with mapped(conn):
                conn.execute("BEGIN")  # one snapshot: the scores' run token and the books of that run
                row = conn.execute("SELECT value FROM meta WHERE key = ?", [run_key]).fetchone()
                run = None if row is None else row[0]
                self._books = Books.load(conn, run)
                self._run = run
                conn.rollback()
            log.debug("seller books: read ahead in %.2f s", time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - any trouble reading: the caller reads them itself (and meets it)
            self._books = self._run = None
            log.debug("seller books: not read ahead (%s)", exc)
        finally:
            conn.close()

    def books(self, run: str | None) -> Any:
        """The books read ahead (None: the store has none for that run), when `run` (the scores' run token now)
        is the one the thread read them for; else `NOT_READ`."""
        started = time.perf_counter()
        self._thread.join()
        waited = time.perf_counter() - started
        if self._run is None or self._run != run:
            log.debug("seller books: those read ahead are not the scores' run's (waited %.2f s)", waited)
            return NOT_READ
        log.debug("seller books: waited %.2f s for those read ahead", waited)
        return self._books

    def drop(self) -> None:
        """Wait for the thread and let go of what it read (what `books` handed over stays the caller's)."""
        self._thread.join()
        self._books = None
