"""`shipment_facts`: the store's one table of each tracking number's facts, kept up to date incrementally.

The facts are defined once, in `detectors.facts`; rules and the classifier both read them from this table.
`refresh` re-computes only the numbers with events newer than the last refresh (events are only ever added:
their stored facts and their new events make their facts, `detectors.facts.from_finished`), or every number
when the definition or the [scans] settings changed since. A refresh of many events
(`Plan.facts_by_children`) is computed by the child readers, a slice of events each (`arrow.facts_of_slice`),
with the same functions; anything else, or any trouble there, reads the events through this connection.

`start` is the refresh of a run that goes on at once: when it computes every number, it hands their facts
over and a child process writes them (`facts_writer`) while the run reads its orders and runs its rules; the
run waits for the write (`Refresh.wait`) before it writes or reads the table itself.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from contextlib import nullcontext
from typing import Any, NamedTuple

import sqlite_utils

from detectors import facts
from tracker import config
from tracker.db import get_meta
from tracker.detection import arrow, facts_writer, store
from tracker.detection.children import Children
from tracker.plan import Plan, child_file, plan_for

log = logging.getLogger(__name__)

# bump when detectors.facts changes what a fact means: every stored row is then made anew
DEFINITION_VERSION = "2"
META_EVENT_ID = "shipment_facts_event_id"
META_DEFINITION = "shipment_facts_definition"


class Refreshed(NamedTuple):
    numbers: int  # how many numbers' facts were (re)computed
    by: str  # who computed them: 'child readers', 'sql', or '' when nothing was to do


class Refresh:
    """A refresh under way: `facts` holds every number's facts when it computed them all (else None; text as
    `detectors.facts.Coded`), and `wait()` returns once the table holds what it computed (raising the
    write's error, if any)."""

    def __init__(self, done: Refreshed, facts: dict[str, Any] | None = None,
                 writing: facts_writer.Writing | None = None):
        self.done, self.facts, self._writing = done, facts, writing

    def wait(self) -> Refreshed:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()
        return self.done


def scan_kinds() -> facts.ScanKinds:
    return facts.ScanKinds.from_settings(config.load("rules"))


def definition(kinds: facts.ScanKinds) -> str:
    """What the stored facts were made by: the definition's version and the kinds of scans."""
    return DEFINITION_VERSION + ":" + hashlib.sha256(kinds.fingerprint().encode()).hexdigest()[:16]


def current(db: sqlite_utils.Database, kinds: facts.ScanKinds | None = None) -> bool:
    """Whether the table holds every number's facts as the events stand now, by this definition (never for a
    store without events): a reader may take a fact from it instead of working it out from the events again."""
    latest = int(db.conn.execute("SELECT max(id) FROM tracking_events").fetchone()[0] or 0)
    return 0 < latest <= watermark(db, kinds or scan_kinds())


def refresh(db: sqlite_utils.Database, plan: Plan | None = None, kinds: facts.ScanKinds | None = None) -> Refreshed:
    """Bring `shipment_facts` up to date with the events; say how many numbers were (re)computed, and by whom."""
    return start(db, plan, kinds, in_background=False).wait()


def watermark(db: sqlite_utils.Database, kinds: facts.ScanKinds) -> int:
    """The newest event id the stored facts were computed through; 0 when every number must be computed anew
    (none yet, or another definition or other [scans] settings)."""
    if get_meta(db, META_DEFINITION) != definition(kinds):
        return 0
    return int(get_meta(db, META_EVENT_ID, "0") or 0)


def start(db: sqlite_utils.Database, plan: Plan | None = None, kinds: facts.ScanKinds | None = None, *,
          in_background: bool = True, children: Children | None = None, writer: Children | None = None) -> Refresh:
    """Compute what `refresh` computes; when that is every number's facts, hand them over and (with
    `in_background`, a store with a file) have a child process write them while the caller goes on.
    `children`: the run's child readers, when it has some already; `writer`: the run's writing child, when it
    has one (else the write gets a process of its own)."""
    conn = db.conn
    kinds = kinds or scan_kinds()
    made_by = definition(kinds)
    done = watermark(db, kinds)
    latest = int(conn.execute("SELECT max(id) FROM tracking_events").fetchone()[0] or 0)
    if latest <= done and (done or get_meta(db, META_DEFINITION) == made_by):
        return Refresh(Refreshed(0, ""))
    plan = plan or plan_for(conn)
    if done == 0:
        combined, by = _whole(conn, plan, kinds, latest, children)
    else:
        # only the new events are read: with the stored facts of their numbers, they make those numbers' facts
        fresh = facts.partial(store.event_columns(conn, ids=(done + 1, latest + 1)), kinds)
        stored = store.read_facts(conn, fresh["tracking_number"])
        combined = facts.combine([facts.from_finished({c: stored[c].to_numpy() for c in stored.columns}), fresh])
        by = "sql"
    # text stays coded: cheap to send to another process, and each order's text is taken from it once
    started = time.perf_counter()
    coded = facts.finish(combined, decode=False)
    del combined
    meta = {META_EVENT_ID: str(latest), META_DEFINITION: made_by}
    result = Refreshed(len(coded["tracking_number"]), by)
    whole = done == 0
    # a write big enough to be worth a process of its own: the child readers computed the facts
    if whole and in_background and by == "child readers" and plan.file and not conn.in_transaction:
        try:
            # a process of its own: a reader that held a slice of scans would keep that memory while writing
            writing = facts_writer.start(plan.file, coded, meta, children=writer)
            handed = Refresh(result, coded, writing)
            log.debug("shipment facts: finished and handed to the writer in %.2f s", time.perf_counter() - started)
            return handed
        except Exception as exc:  # noqa: BLE001 - no child process here: this process writes
            log.warning("no child process to write the shipment facts (%s); writing them here", exc)
    facts_writer.store(conn, coded, whole, meta)
    return Refresh(result, coded if whole else None)


def _whole(conn: sqlite3.Connection, plan: Plan, kinds: facts.ScanKinds, latest: int,
           children: Children | None) -> tuple[dict[str, Any], str]:
    """The facts (combined, not yet finished) of every number with an event id up to `latest`: by the child
    readers when that pays (the events shared evenly between them, in slices of at most `events_per_slice`),
    else here, a slice of events at a time (a million orders' events never sit in memory at once)."""
    low = int(conn.execute("SELECT coalesce(min(id), 0) FROM tracking_events").fetchone()[0])
    events = latest - low + 1
    path = child_file(conn, plan) if plan.facts_by_children(events) else None
    step = max(int(plan.limits.events_per_slice), 1)
    if path:
        step = min(step, -(-events // max(int(plan.limits.readers), 1)))
    slices = [(a, min(a + step, latest + 1)) for a in range(low, latest + 1, step)]
    if path:
        try:
            started = time.perf_counter()
            with Children.of(plan) if children is None else nullcontext(children) as pool:  # borrowed: not ended here
                futures = [pool.submit(arrow.facts_of_slice, path, kinds, a, b) for a, b in slices]
                parts = [p for p in (f.result() for f in futures) if p is not None]
                # every scan read (the orders' read was queued before): the readers end now, their memory going
                # back before the slices are combined here
                pool.release()
            log.debug("shipment facts: %d slices of scans read in %.2f s", len(slices), time.perf_counter() - started)
            started = time.perf_counter()
            try:
                return facts.combine(parts), "child readers"
            finally:
                log.debug("shipment facts: slices combined in %.2f s", time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - any failure of the fast path leaves the answer to SQL
            log.warning("child readers unavailable (%s); computing shipment facts here", exc)
    return facts.combine(facts.partial(store.event_columns(conn, ids=ids), kinds) for ids in slices), "sql"
