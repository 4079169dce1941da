"""The search queue of a big import folded by the run's writing child while the rules run.

`tracker import` leaves its rows queued for the full-text indexes (`tracker.search_index`), and `tracker detect`
folds the queue at the end of its cases stage. After a million-order import that fold is a bulk index build of
several seconds on one core, while the rules stage leaves the other core idle once the scans are read. So a run
whose queue holds at least `search_fold_child_min_rows` rows hands the fold to its writing child, queued after
the shipment facts' write (the two never wait for each other's lock), and waits for it before writing the
flags. A fold that fails or is refused leaves the queue as it was: the cases stage folds it then, as before.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import Future

from tracker import search_index
from tracker.detection.children import Children
from tracker.plan import Plan, child_file

log = logging.getLogger(__name__)


class Folding:
    """A fold handed to a child, if one was: `wait` returns how many rows it folded (0 when none was started or
    it failed)."""

    def __init__(self, future: Future | None = None):
        self.future = future

    def wait(self) -> int:
        if self.future is None:
            return 0
        future, self.future = self.future, None
        started = time.perf_counter()
        try:
            folded = int(future.result())
        except Exception as exc:  # noqa: BLE001 - the cases stage folds what is left, as it always has
            log.debug("search fold: the writing child did not fold the queue (%s)", exc)
            return 0
        log.debug("search fold: %d queued rows folded by the writing child; waited %.2f s for it", folded,
                  time.perf_counter() - started)
        return folded


def start(conn: sqlite3.Connection, plan: Plan, writer: Children) -> Folding:
    """Queue the fold on `writer` when it pays: child processes may write the store and at least
    `search_fold_child_min_rows` rows wait to be indexed."""
    path = child_file(conn, plan)
    if path is None:
        return Folding()
    pending = search_index.pending_rows(conn)
    if pending < plan.limits.search_fold_child_min_rows:
        return Folding()
    try:
        return Folding(writer.submit(search_index.fold_file, path))
    except Exception as exc:  # noqa: BLE001 - no child process here: the cases stage folds the queue
        log.debug("search fold: no child process (%s)", exc)
        return Folding()
