"""The write-ahead log copied back into the store by a thread of its own while a command works (`behind`).

SQLite appends every commit to the store's write-ahead log, and by default the connection that commits copies the
log back into the store file once it holds 1,000 pages (`wal_autocheckpoint`): in the middle of the commit, with
a flush of the log and one of the store to the disk. An incremental `tracker detect` at a million orders commits
some 250 MB of pages in four transactions (the facts, the flags, the scores, the cases), and each copy-back ran
in its commit, on the run's one busy core. Within `behind`, this connection copies nothing back; a thread on a
connection of its own does (`PRAGMA wal_checkpoint(PASSIVE)`: it never waits for a lock nor blocks a reader or the
writer, and copies what no reader may still need): every `POLL_S` in which the log was written, while this process
goes on with its next stage, and once more at the end of the block, so the store file then holds every commit of
the block. A command killed meanwhile leaves a longer log: SQLite copies it back the next time it is opened, as
always.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from tracker.sqlite_pragmas import pragmas

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often the thread looks whether the log was written since it last copied it back


class _Behind:
    def __init__(self, path: str):
        self.path, self.wal = path, path + "-wal"
        self.stop = threading.Event()
        self.copied = 0  # checkpoints run
        self.seconds = 0.0  # spent in them
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self.thread.start()

    def _written(self) -> tuple[int, int]:
        """The log's size and the time of its last write (its header changes when SQLite starts it again from the
        top, after a checkpoint that copied every frame back: the size alone would not tell)."""
        try:
            stat = os.stat(self.wal)
        except OSError:
            return 0, 0
        return stat.st_size, stat.st_mtime_ns

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            self.error = exc
            return
        try:
            last = self._written()
            while not self.stop.wait(POLL_S):
                now = self._written()
                if now != last:  # written since the last look: copy back what was committed
                    self._checkpoint(conn)
                    last = self._written()
            self._checkpoint(conn)  # what the block's last commits appended
        except BaseException as exc:  # noqa: BLE001 - handed to the block's end, which says so
            self.error = exc
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        started = time.perf_counter()
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.seconds += time.perf_counter() - started
        self.copied += 1


@contextlib.contextmanager
def behind(conn: sqlite3.Connection, path: str) -> Iterator[None]:
    """Run the block with the store's write-ahead log copied back by a thread (see the module docstring) instead of
    by this connection's commits. `path`: the store's file ('' for one in memory, which has no log: the block runs
    as it is)."""
    if not path or str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        yield
        return
    with pragmas(conn, wal_autocheckpoint=0):
        helper = _Behind(path)
        try:
            yield
        finally:
            helper.stop.set()
            started = time.perf_counter()
            helper.thread.join()
            waited = time.perf_counter() - started
            if helper.error is not None:  # the next commit or close of a connection copies it back instead
                log.debug("checkpoints: the thread stopped (%s)", helper.error)
            log.debug("checkpoints: %d run by the thread in %.2f s; waited %.2f s for the last", helper.copied,
                      helper.seconds, waited)
