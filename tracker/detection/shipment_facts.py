"""`shipment_facts`: the store's one table of each tracking number's facts, kept up to date incrementally.

The facts are defined once, in `detectors.facts`; rules and the classifier both read them from this table.
`refresh` re-computes only the numbers with events newer than the last refresh (events are only ever added),
or every number when the definition or the [scans] settings changed since. A refresh of many events
(`Plan.facts_by_children`) is computed by the child readers, a slice of events each (`arrow.facts_of_slice`),
with the same functions; anything else, or any trouble there, reads the events through this connection.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from typing import Any, NamedTuple

import numpy as np
import sqlite_utils

from detectors import facts
from tracker import config
from tracker.db import get_meta, set_meta
from tracker.detection import store
from tracker.plan import Plan, child_file, plan_for

log = logging.getLogger(__name__)

# bump when detectors.facts changes what a fact means: every stored row is then made anew
DEFINITION_VERSION = "2"
META_EVENT_ID = "shipment_facts_event_id"
META_DEFINITION = "shipment_facts_definition"
_INSERT = (f"INSERT OR REPLACE INTO shipment_facts (tracking_number, {', '.join(facts.FACT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * (len(facts.FACT_COLUMNS) + 1))})")


class Refreshed(NamedTuple):
    numbers: int  # how many numbers' facts were (re)computed
    by: str  # who computed them: 'child readers', 'sql', or '' when nothing was to do


def scan_kinds() -> facts.ScanKinds:
    return facts.ScanKinds.from_settings(config.load("rules"))


def definition(kinds: facts.ScanKinds) -> str:
    """What the stored facts were made by: the definition's version and the kinds of scans."""
    return DEFINITION_VERSION + ":" + hashlib.sha256(kinds.fingerprint().encode()).hexdigest()[:16]


def refresh(db: sqlite_utils.Database, plan: Plan | None = None, kinds: facts.ScanKinds | None = None) -> Refreshed:
    """Bring `shipment_facts` up to date with the events; say how many numbers were (re)computed, and by whom."""
    conn = db.conn
    kinds = kinds or scan_kinds()
    made_by = definition(kinds)
    done = int(get_meta(db, META_EVENT_ID, "0") or 0)
    if get_meta(db, META_DEFINITION) != made_by:
        done = 0
    latest = int(conn.execute("SELECT max(id) FROM tracking_events").fetchone()[0] or 0)
    if latest <= done and (done or get_meta(db, META_DEFINITION) == made_by):
        return Refreshed(0, "")
    if done == 0:
        plan = plan or plan_for(conn)
        computed, by = _whole(conn, plan, kinds, latest)
    else:
        changed = [r[0] for r in conn.execute(
            "SELECT DISTINCT tracking_number FROM tracking_events WHERE id > ?", [done])]
        computed, by = facts.shipment_facts(store.event_columns(conn, changed), kinds), "sql"
    with conn:
        if done == 0:
            conn.execute("DELETE FROM shipment_facts")
        write(conn, computed)
        set_meta(db, META_EVENT_ID, str(latest))
        set_meta(db, META_DEFINITION, made_by)
    return Refreshed(len(computed["tracking_number"]), by)


def _whole(conn: sqlite3.Connection, plan: Plan, kinds: facts.ScanKinds, latest: int) -> tuple[dict[str, Any], str]:
    """The facts of every number with an event id up to `latest`: by the child readers when that pays, else
    here, a slice of events at a time (a million orders' events never sit in memory at once)."""
    low = int(conn.execute("SELECT coalesce(min(id), 0) FROM tracking_events").fetchone()[0])
    step = max(int(plan.limits.events_per_slice), 1)
    slices = [(a, min(a + step, latest + 1)) for a in range(low, latest + 1, step)]
    path = child_file(conn, plan) if plan.facts_by_children(latest - low + 1) else None
    if path:
        try:
            return facts.finish(facts.combine(_by_children(path, plan, kinds, slices))), "child readers"
        except Exception as exc:  # noqa: BLE001 - any failure of the fast path leaves the answer to SQL
            log.warning("child readers unavailable (%s); computing shipment facts here", exc)
    return facts.finish(facts.combine(
        facts.partial(store.event_columns(conn, ids=ids), kinds) for ids in slices)), "sql"


def _by_children(path: str, plan: Plan, kinds: facts.ScanKinds, slices: list[tuple[int, int]]) -> list[Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tracker.detection import arrow

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(plan.limits.readers, 1), mp_context=context) as pool:
        futures = [pool.submit(arrow.facts_of_slice, path, kinds, low, high) for low, high in slices]
        return [p for p in (f.result() for f in futures) if p is not None]


def write(conn: sqlite3.Connection, computed: dict[str, np.ndarray]) -> None:
    """INSERT OR REPLACE the facts' rows, in number order (each row lands at the end of the key's B-tree).
    The caller owns the transaction."""
    numbers = computed["tracking_number"]
    if not len(numbers):
        return
    order = np.argsort(numbers.astype("U"), kind="stable")
    columns = []
    for name in ("tracking_number", *facts.FACT_COLUMNS):
        values = computed[name][order]
        if values.dtype.kind == "f":
            values = np.where(np.isnan(values), None, values.astype(object))
        columns.append(values.tolist())
    conn.executemany(_INSERT, zip(*columns, strict=True))
