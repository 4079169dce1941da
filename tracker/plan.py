"""How big is big: which fast paths a run takes, decided once per run from the store's size and the machine.

Child processes, Arrow readers and worker pools pay a start-up cost (a spawned Python, its imports) that a
small store never earns back, so every fast path has a size from which it is taken. Those sizes live here,
in `Thresholds`, and nowhere else; `plan_for(conn)` measures the store and the machine once and answers
every "this path or that one?" of the run (`Plan`), and `tracker -v` logs it.

Tests choose a path through one public knob, `override(**thresholds)` (a context manager), e.g.
`with override(arrow_min_orders=0):` to read a tiny store through the child readers, or
`with override(never_children=True):` to keep everything in the process. Across processes (a `tracker`
command run by a test or an operator) the same knob is the environment variable TRACKER_THRESHOLDS, e.g.
`TRACKER_THRESHOLDS="parse_worker_min_pages=1,never_children=true"`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import cache

from tracker.errors import BadInput

log = logging.getLogger("tracker.plan")
ENVIRONMENT = "TRACKER_THRESHOLDS"


@dataclass(frozen=True)
class Thresholds:
    """From which size each fast path pays (measured on a 2-core machine; see docs/performance.md)."""

    # shipment facts of this many events or more are aggregated by the child readers (Arrow), not by SQL
    columnar_min_events: int = 500_000
    # the whole store's order frame is read by two child readers from this many orders on
    arrow_min_orders: int = 100_000
    # a full rescore writes `scores` in a child process from this many orders on
    child_writer_min_orders: int = 100_000
    # from this many messages on, the pressure cache is read whole instead of looked up message by message
    whole_pressure_cache_from: int = 20_000
    # events per slice a child reader aggregates at once (about 150 MB of columns and scratch per reader)
    events_per_slice: int = 500_000
    # how many child readers share the work
    readers: int = 2
    # the Parquet mirror's export reads the store in child processes from this many changed rows on
    mirror_children_min_rows: int = 50_000
    # from this many rows waiting for the search indexes, a detect run's writing child folds them during the rules
    search_fold_child_min_rows: int = 100_000
    # cases: from this many orders on, and half the store, opening cases reads the whole store
    cases_whole_store_min: int = 20_000
    # polling: runs with this many due HTML pages or more parse them in a worker process
    parse_worker_min_pages: int = 200
    # polling: pages parse in the poller until the worker has started (its imports take about a second)
    parse_here_until_ready: bool = True
    # import files of this many bytes or more are read and checked by this process and a helper process
    import_helper_min_bytes: int = 16 << 20
    # no child process at all, whatever the size (for a host where spawning one fails or is forbidden)
    never_children: bool = False


_override: Thresholds | None = None


def thresholds() -> Thresholds:
    """The thresholds in force: the ones `override` set, else those of $TRACKER_THRESHOLDS over the defaults."""
    return _override or from_text(os.environ.get(ENVIRONMENT, ""))


@cache
def from_text(text: str) -> Thresholds:
    """Thresholds written as 'name=value,name=value' over the defaults (the environment's form of the knob)."""
    kinds = {f.name: f.type for f in fields(Thresholds)}
    changes: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if name not in kinds:
            raise BadInput(f"${ENVIRONMENT}: unknown threshold {name!r}; known: {', '.join(sorted(kinds))}")
        try:
            if kinds[name] in ("bool", bool):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                changes[name] = value.lower() in ("1", "true", "yes")
            else:
                changes[name] = int(value)
        except ValueError:
            wanted = "true or false" if kinds[name] in ("bool", bool) else "a whole number"
            raise BadInput(f"${ENVIRONMENT}: {name}={value!r} is not {wanted}") from None
    return replace(Thresholds(), **changes)


@contextmanager
def override(**changes: object) -> Iterator[Thresholds]:
    """Run the block with some thresholds changed (the one knob for tests; unknown names are an error)."""
    global _override
    known = {f.name for f in fields(Thresholds)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    before = _override
    _override = replace(thresholds(), **changes)
    try:
        yield _override
    finally:
        _override = before


@dataclass(frozen=True)
class Plan:
    """The sizes of one store and machine, and from them each fast path's verdict."""

    orders: int
    events: int
    cores: int
    file: str  # the store's file ('' for a store in memory: no other process can read it)
    limits: Thresholds

    @property
    def children(self) -> bool:
        """Whether other processes may work on this store at all."""
        return bool(self.file) and not self.limits.never_children

    def facts_by_children(self, events: int) -> bool:
        """Aggregate the facts of `events` events in child readers (else SQL reads them here)."""
        return self.children and events >= self.limits.columnar_min_events

    @property
    def frame_by_children(self) -> bool:
        """Read the whole store's order frame in child readers."""
        return self.children and self.orders >= self.limits.arrow_min_orders

    @property
    def score_write_by_child(self) -> bool:
        """Write a full rescore in a child process."""
        return self.children and self.orders >= self.limits.child_writer_min_orders

    def summary(self) -> str:
        """One line for `tracker -v`."""
        verdict = {
            "facts of the whole store": "child readers" if self.facts_by_children(self.events) else "SQL",
            "order frame of the whole store": "child readers" if self.frame_by_children else "SQL",
            "full score write": "child process" if self.score_write_by_child else "this process",
        }
        return (f"plan: {self.orders:,} orders, {self.events:,} events, {self.cores} cores; "
                + "; ".join(f"{k}: {v}" for k, v in verdict.items()))


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def store_file(conn: sqlite3.Connection) -> str:
    """The file of the connection's main database ('' when it has none)."""
    return next((file for _, name, file in conn.execute("PRAGMA database_list") if name == "main"), "") or ""


def plan_for(conn: sqlite3.Connection) -> Plan:
    """Measure the store (its largest order rowid and event id: no count of a million rows) and the machine."""
    def largest(sql: str) -> int:
        try:
            return int(conn.execute(sql).fetchone()[0] or 0)
        except sqlite3.OperationalError:  # a store not migrated yet
            return 0

    plan = Plan(orders=largest("SELECT max(rowid) FROM orders"), events=largest("SELECT max(id) FROM tracking_events"),
                cores=cores(), file=store_file(conn), limits=thresholds())
    log.info(plan.summary())
    return plan


def child_file(conn: sqlite3.Connection, plan: Plan) -> str | None:
    """The store's file when child processes may read it now: it has one, children are allowed, and this
    connection holds no uncommitted writes (which they would not see, or would wait for). None otherwise."""
    if not plan.children or conn.in_transaction:
        return None
    return plan.file or None
