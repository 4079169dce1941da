"""`tracker detect`: shipment facts -> rules -> flags, classifier -> scores, then cases. One pipeline.

- `freshness.nothing_to_do` first: with nothing new since the last run, only the cases' clocks move (no frame or
  model library is even loaded).
- `tracker.plan.plan_for` decides once, from the store's size and the machine, which fast paths the run takes.
- `flagging.run_rules` brings each tracking number's facts up to date (`shipment_facts`: only numbers with
  new events), runs every registered rule over the orders that changed (or all with `full`), writes `flags`
  idempotently and returns the order ids it examined. A whole-store run's flags are committed by its writing
  child while the scoring stage builds its frame (`flag_writes`); the scoring waits for that before it writes.
- `scoring.score_orders` rescores the orders whose score can have changed, exactly (all of them after a new model
  is trained); an incremental run does it with the model's lean export (`registry.load_lean_model`), so it
  imports neither scikit-learn nor SciPy.
- `tracker.cases.sync.sync_cases` opens or updates cases from flags and scores, never overriding a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlite_utils

log = logging.getLogger(__name__)


@dataclass
class DetectSummary:
    examined: int = 0
    flags_raised: int = 0
    flags_resolved: int = 0
    scored: int = 0
    cases_opened: int = 0
    cases_updated: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"examined {self.examined} orders: {self.flags_raised} flags raised, {self.flags_resolved} resolved, "
            f"{self.scored} scored, {self.cases_opened} cases opened, {self.cases_updated} updated"
        )


def detect(db: sqlite_utils.Database, as_of: datetime, *, full: bool = False) -> DetectSummary:
    """One detect run: the rules, the scoring and the cases of what changed since the last run (everything with
    `full`), as of `as_of`."""
    import contextlib

    from tracker import checkpoints
    from tracker.detection import memory
    from tracker.plan import store_file
    from tracker.sqlite_pragmas import mapped

    # an incremental run reads a few thousand orders' scattered pages (`mapped`); a full run reads the whole store
    # through its child readers, and its own resident size would count the mapped pages it scans. An incremental
    # run's commits leave copying the log back to a thread (`checkpoints.behind`); a full run's writing children
    # keep their own way
    with memory.settled(), contextlib.nullcontext() if full else mapped(db.conn), \
            contextlib.nullcontext() if full else checkpoints.behind(db.conn, store_file(db.conn)):
        return _detect(db, as_of, full=full)


def _detect(db: sqlite_utils.Database, as_of: datetime, *, full: bool = False) -> DetectSummary:
    import time

    from tracker.cases import sync
    from tracker.db import SCORES_RUN_META, get_meta, set_meta
    from tracker.detection import freshness

    summary = DetectSummary()
    t0 = time.perf_counter()
    if not full and freshness.nothing_to_do(db.conn, as_of):
        # no frame or model library loaded: only the cases' clocks move
        sync.sync_cases(db, set(), as_of)
        summary.seconds = {"check": time.perf_counter() - t0}
        log.info("detect: nothing new since the last run (%.2f s)", summary.seconds["check"])
        return summary

    # the run's token goes into meta with the rules' marks and with the scores: the next run trusts the stored
    # scores only when the last run's did get written
    run = f"{time.time_ns():x}"
    previous_run = get_meta(db, freshness.META_RUN)
    trusted = previous_run is not None and previous_run == get_meta(db, SCORES_RUN_META)
    books = ahead = None
    reading: Any = None  # the books' `LoadAhead`, while it is this run's
    if not full and trusted:
        # an incremental run's seller books, read by a thread from now on (the rules never write them) while this
        # one imports the detection modules and runs the rules; let go if the run turns out to examine every order
        from tracker.detection.books_ahead import LoadAhead
        from tracker.plan import store_file

        if path := store_file(db.conn):
            reading = LoadAhead(path, SCORES_RUN_META)

    def let_go() -> None:
        nonlocal reading
        if reading is not None:
            reading.drop()
            reading = None

    def read_books_ahead(everything: bool) -> None:
        if everything:  # every order scored anew: no books are read
            let_go()

    from tracker.detection import preload

    try:
        from tracker import scratch
        from tracker.detection import flagging, registry
        from tracker.plan import plan_for

        for left in scratch.sweep():  # the scratch folders of a run killed outright
            log.info("detect: removed %s, left by a run that was killed", left)

        # the classifier's libraries, while the rules work (they need neither), where the run may need them: a model
        # without a lean export to score with (numpy alone), or seller messages new to the pressure cache (any, in a
        # full run) where the message model has none (`registry.lean_message_model`)
        if registry.load_lean_model(db) is None or (
                (full or freshness.new_messages(db.conn)) and registry.lean_message_model() is None):
            preload.start()
        plan = plan_for(db.conn)
        result = flagging.run_rules(db, as_of, full=full, plan=plan, run=run, defer=True, on_scope=read_books_ahead)
        t1 = time.perf_counter()  # what follows is the scoring's (its reading ahead, the wait for its libraries)
        if not (full or result.everything) and trusted:
            # the seller books and the scoring's first frame (numpy, pandas and SQLite: no scikit-learn) read while
            # the thread may still import the classifier's libraries; the scoring stage uses them where its model
            # is the one they were kept for
            from tracker.detection import scoring, seller_books
            from tracker.detection.books_ahead import NOT_READ

            scores_run = get_meta(db, SCORES_RUN_META)
            books = reading.books(scores_run) if reading is not None else NOT_READ
            if books is NOT_READ:
                books = seller_books.Books.load(db.conn, scores_run)
            if books is not None:
                # the scoring writes its entries over a copy of the books (or merges the orders new to them into
                # that memory), made by a thread while this one reads the first frame
                books.copy_ahead_for(db.conn)
                ahead = scoring.read_ahead(db, plan, result.order_ids, as_of, books, result.scope_rows)
    finally:
        let_go()  # also when the rules fail: no thread left reading the store
        preload.wait()  # also when the rules fail: the process does not end in the middle of an import
    summary.examined, summary.flags_raised, summary.flags_resolved = (
        len(result.order_ids), result.raised, result.resolved)
    from tracker.detection import memory, scoring

    result.scope_rows = None  # read ahead, or not to be: the scoring stage reads what it reads itself
    memory.give_back("the rules")  # the rules' frame and events, freed: the scoring stage starts from what is in use

    kept, result.kept = result.kept, None  # the scoring stage's to use and let go
    try:
        # a whole-store run's flags are still being written: the scoring's frame takes them from what the rules
        # kept, and the scoring waits for that write before it writes
        scored = scoring.score_orders(db, result.order_ids, as_of, full=full or result.everything, plan=plan,
                                      run=run, trusted=trusted, kept=kept, books=books, ahead=ahead,
                                      before_write=result.written)
    finally:
        result.written()  # the rules' transaction ends before the run does, whatever the scoring did
    del kept, books, ahead
    summary.scored = len(scored)
    t2 = time.perf_counter()
    opened, updated = sync.sync_cases(db, result.order_ids, as_of, rescored=scored, run=run, previous_run=previous_run)
    summary.cases_opened, summary.cases_updated = opened, updated
    with db.conn:  # a complete run: a later one with nothing new may stop at the check
        set_meta(db, freshness.META_INPUTS, freshness.inputs_signature(db.conn))
    t3 = time.perf_counter()
    summary.seconds = {"rules": t1 - t0, "scoring": t2 - t1, "cases": t3 - t2}
    log.info("detect: %s", ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in summary.seconds.items()))
    return summary
