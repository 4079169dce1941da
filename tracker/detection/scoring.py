"""Scores orders with the active classifier and writes `scores` (order_id, score, codes, reasons, model_id).

Incremental by default, and exact: a run rescores only the orders whose score can have changed
(`tracker.detection.rescoring`): those the rules examined (their own inputs changed), the other orders of the
numbers they carried before, the orders whose seller or buyer features crossed one of the model's thresholds as
their sellers' statistics or buyers' history moved (worked out from their stored binned input, reasons included:
`tracker.detection.quick_scores`), and those whose age features time carried across one. Every other order's
model input lies on the same side of every split as when it was scored, so its stored score is what a full
rescore would give, bit for bit. The sellers' statistics and buyers' history come from the books
(`tracker.detection.seller_books`), kept in the same transaction as the scores.

A run scores with the model's lean export (`registry.load_lean_model`: the same scores from numpy arrays, without
importing scikit-learn; a full rescore's rows binned and walked on as many threads as the run may use); a model
without a lean export, with the model itself.

A full rescore happens with `full`, after a new model, when the books do not match the scores (a run killed
between the two writes, or a store scored before the books existed), and when the previous run's scores were
not written.

Reasons: an order scoring at least `reasons_min_score` gets its top reasons (`detectors.reasons.explain`),
stored as JSON `[{"feature", "text", "weight"}]`, weights in log-odds. Which model scored (and how its blend
weighs the shipped model, a local one and the rules prior, with the base log-odds the reasons add to) is kept
in meta `scored_by:<model id>` (`scored_by`), for the case page and `tracker case show`. The features come from the frame `readers.feature_frame`
reads, over the shipment facts this module brings up to date first.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils

from detectors import seller_aggregates
from detectors.features import BUYER_SUMS, FEATURE_GROUPS, FLAG_CODES, MessageScorer, has_text, score_messages
from detectors.reasons import explain
from detectors.view import datetime_to_jd
from tracker import config
from tracker.db import SCORED_BY_META, SCORES_RUN_META, get_meta, set_meta
from tracker.detection import (
    quick_scores,
    readers,
    registry,
    rescoring,
    score_writer,
    seller_books,
    shipment_facts,
    store,
    threads,
)
from tracker.detection.memory import give_back
from tracker.plan import Plan, child_file, plan_for, thresholds
from tracker.sqlite_pragmas import pragmas, sort_cache
from tracker.timeutil import to_db

META_MODEL = "scores_model_id"
META_AS_OF = "scores_as_of"
META_SCORED_BY = SCORED_BY_META
META_RUN = SCORES_RUN_META
TEMP_STORE_MEMORY = 2  # PRAGMA temp_store's value for MEMORY
META_NEXT_DUE = "scores_next_due"  # the earliest Julian day from which time alone may change a score
FLAG_COLUMNS = [f"flag_{code}" for code in FLAG_CODES]
log = logging.getLogger(__name__)


def score_orders(db: sqlite_utils.Database, order_ids: set[str], as_of: datetime, *, full: bool = False,
                 plan: Plan | None = None, run: str | None = None, trusted: bool = True,
                 kept: readers.KeptOrders | None = None, books: seller_books.Books | None = None,
                 ahead: pd.DataFrame | None = None, before_write: Callable[[], None] | None = None) -> set[str]:
    """Rescore what changed among these orders (`order_ids`: the ones the rules examined; every order with
    `full`, after a new model, when the stored scores and books cannot be `trusted` to match, or when the store's
    typical transit moved: `seller_books.typical_moved`); return the order
    ids scored. `run` names this detect run in `meta` with the scores; `kept`: every order as this run's rules
    read them (a rescore of every order builds its frame from them); `books`: the store's seller books, read
    already (`seller_books.Books.load`; else read here), used where this run would read them, and `ahead` the
    frame `read_ahead` read with them. `before_write` is called before this stage writes anything (the rules'
    write of a whole-store run may still be under way: `flagging.RulesResult.written`)."""
    before_write = before_write or (lambda: None)
    # a run scores with the model's lean export (numpy alone: no scikit-learn imported); a model without one, with
    # the model itself
    loaded = registry.load_lean_model(db)
    if loaded is None:
        loaded = registry.load_active_model(db)
    run = run or f"scoring-{time.time_ns()}"
    if loaded is None:
        before_write()
        with db.conn:  # no model, no scores: nothing for a later run to redo
            set_meta(db, META_RUN, run)
            set_meta(db, META_NEXT_DUE, repr(seller_books.NEVER))
        return set()
    previous_as_of = get_meta(db, META_AS_OF)
    read, books = books, None
    if not full and trusted and get_meta(db, META_MODEL) == loaded.model_id and \
            (previous_as_of is None or to_db(as_of) >= previous_as_of):
        books = read if read is not None else seller_books.Books.load(db.conn, get_meta(db, META_RUN))
    if books is None or books is not read:
        ahead = None  # read with other books, or for a run that reads none
    del read
    plan = plan or plan_for(db.conn)

    def every_order(loaded: Any) -> set[str]:
        rescoring.bin_with(loaded.model, threads.openmp_threads())
        shipment_facts.refresh(db, plan)
        # a full run over a large store writes in a child process, started now so it is ready when the ids are
        writer = _child_writer(db, plan)
        try:
            return _score_all(db, plan, loaded, as_of, run, writer, kept, before_write)
        finally:
            if writer is not None:
                writer.close()

    if books is None:
        return every_order(loaded)
    rescoring.bin_with(loaded.model, threads.openmp_threads())
    before_write()
    as_of_jd = datetime_to_jd(as_of)
    if not order_ids and books.next_due() >= as_of_jd:
        with db.conn:  # nothing to rescore: the scores and books stand for this run too
            for key in (META_RUN, seller_books.META_RUN):
                set_meta(db, key, run)
            set_meta(db, META_NEXT_DUE, repr(books.next_due()))
        return set()
    shipment_facts.refresh(db, plan)
    try:
        return _score_some(db, plan, loaded, set(order_ids), as_of, run, books, ahead)
    except _TypicalMoved:
        log.info("scoring: the store's typical transit moved since the scores were made: every order is scored again")
    del books, ahead
    return every_order(loaded)


class _TypicalMoved(Exception):
    """A run that rescores what changed finds that a full run would take another typical transit now."""


def read_ahead(db: sqlite_utils.Database, plan: Plan, order_ids: set[str], as_of: datetime,
               books: seller_books.Books, known: readers.ScopeRows | None = None) -> pd.DataFrame | None:
    """The frame an incremental run's scoring starts from (the orders the rules examined, `order_ids`, and those
    whose time came by these `books`), read before the model is loaded: it needs no scikit-learn, so the run reads
    it while a thread still imports the classifier's libraries (`preload`). None where the run reads none.
    `known`: the examined orders as the rules read them (`flagging.RulesResult.scope_rows`), not read again
    unless the facts moved since."""
    if not order_ids and books.next_due() >= datetime_to_jd(as_of):
        return None
    # as `score_orders` does first (the rules brought the facts up to date: where they were not, the rows the rules
    # read hold facts that moved since)
    if shipment_facts.refresh(db, plan).numbers:
        known = None
    return _first_frame(db.conn, books, set(order_ids), as_of, message_scorer(db, plan), plan, known)


def _first_frame(conn: Any, books: seller_books.Books, examined: set[str], as_of: datetime, scorer: MessageScorer,
                 plan: Plan, known: readers.ScopeRows | None = None) -> pd.DataFrame:
    """The orders whose own inputs may have changed (the examined ones), and those whose time came (`known`:
    rows of some of them read already)."""
    due = books.entries["order"][books.entries["due"] < datetime_to_jd(as_of)]
    return _partial_frame(conn, examined | set(readers.ids_of_rowids(conn, due)), as_of, scorer, plan, known)


def _features(loaded: Any, frame: pd.DataFrame, rows: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The model's features of these rows of the frame (every row when None), as a frame and as the matrix."""
    features = loaded.model.named_steps["features"].transform_frame(frame, rows)
    return features, features.to_numpy(dtype=np.float64)


def _score_all(db: sqlite_utils.Database, plan: Plan, loaded: Any, as_of: datetime, run: str,
               writer: score_writer.ChildWrite | None, kept: readers.KeptOrders | None = None,
               before_write: Callable[[], None] = lambda: None) -> set[str]:
    """Every order, and every seller's book anew (`before_write`: see `score_orders`)."""
    settings = config.load("model").get("scoring", {})
    frame = readers.feature_frame(db.conn, None, as_of, message_scorer(db, plan), plan=plan, kept=kept)
    del kept
    give_back("the classifier's frame")
    log.debug("scoring: %d orders read (%s)", len(frame), frame.attrs.get("read_by"))
    if frame.empty:
        _record(db, loaded.model_id, as_of, pd.DataFrame(), True, extra=_marks(run, seller_books.Books(
            [], np.zeros(0, seller_books.ENTRY), np.zeros(0, np.int64), np.zeros((0, seller_aggregates.SPANS)), None), True))
        return set()
    # a full run's frame holds the whole store: its typical transit serves the incremental runs after it
    typical = json.dumps(frame.attrs["typical_transit"], sort_keys=True) if "typical_transit" in frame.attrs else None
    tracked = has_text(frame["tracking_number"])
    untracked = set(frame.loc[~tracked & frame["target"].to_numpy(), "order_id"])  # lost their number: lose their score
    before_write()  # the rules' transaction is in before the scores' begins
    if writer is not None:  # it sorts the ids and takes the write lock while this process works out the scores
        if db.conn.in_transaction:
            # there was none when the run began: one the reading left open ends here, so this connection holds
            # no snapshot older than the child's write
            db.conn.commit()
        writer.begin(frame["order_id"].to_numpy(dtype=object)[tracked], untracked)
    # features of the scored rows only (each row's own), and of the frame only the few columns still needed:
    # cheaper than a copy of the whole wide frame
    every = bool(tracked.all())
    rows = np.flatnonzero(tracked)
    features, matrix = _features(loaded, frame, None if every else rows)
    give_back("the features")
    binned = _binned(loaded, matrix)
    give_back("the binning")
    # each order's book entry is read from the whole frame here; the books are made of them by a thread while this
    # one scores the rows, works out their reasons and waits for the writing child (both mostly numpy's work,
    # done without the GIL): they are wanted only once the scores are in (`_predict_and_write`)
    seller_ids, entries, timed = _book_entries(loaded, frame, rows, features, as_of)
    frame = frame[["order_id", "codes", "target", "order_rowid"]]
    if not every:
        frame = frame[tracked]
    give_back("the scoring frame")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="books") as pool:
        booking = pool.submit(_books_of, seller_ids, entries, _bins_of(binned, rows, len(entries)))
        del seller_ids, entries
        return _predict_and_write(db, loaded, settings, frame, features, matrix, as_of, True, untracked, writer,
                                  run, lambda: (booking.result(), timed), typical=typical, binned=binned)


def _book_entries(loaded: Any, frame: pd.DataFrame, rows: np.ndarray, features: pd.DataFrame,
                  as_of: datetime) -> tuple[pd.Series, np.ndarray, set[str]]:
    """Each order's seller and book entry, from the whole frame: its signals, transit, number and buyer, and for
    each scored one (`rows`, whose features are `features`) when time may next change its score; and the features
    time moves."""
    bits, transit = seller_aggregates.order_signals(frame, FLAG_COLUMNS)
    due = np.full(len(frame), seller_books.NEVER)
    edges = rescoring.decision_edges(loaded.model, list(features.columns))
    due[rows], timed = rescoring.due_times(loaded.model.named_steps["features"], frame, rows, features,
                                           datetime_to_jd(as_of), edges)
    give_back("the due times")
    scored = np.zeros(len(frame), dtype=np.uint8)
    scored[rows] = 1
    entries = seller_books.entries(frame["order_rowid"].to_numpy(dtype=np.int64), bits, transit,
                                   seller_books.hashes(frame["tracking_number"]), seller_books.hashes(frame["buyer_id"]),
                                   due, scored, _any_flag(frame), seller_books.flag_mask(frame, FLAG_COLUMNS),
                                   seller_books.codes_mask(frame["codes"], FLAG_CODES),
                                   dests=seller_books.destinations(frame))
    give_back("the book entries")
    # a copy: a view of the frame's column would keep the frame's whole block of text columns alive
    return pd.Series(np.array(frame["seller_id"].to_numpy(dtype=object), dtype=object, copy=True)), entries, timed


def _books_of(seller_ids: pd.Series, entries: np.ndarray, bins: np.ndarray | None) -> seller_books.Books:
    """Every seller's book of these entries (each order's seller, entry and binned input)."""
    books = seller_books.Books.of(seller_ids, entries, bins)
    give_back("the books")
    return books


def _binned(loaded: Any, matrix: np.ndarray) -> tuple[Any, np.ndarray] | None:
    """The model's binned input of these rows (`rescoring.binning`) and the rows' bytes, or None where the model
    has no binned walk or a value a byte cannot keep. The rows are scored from these bytes: the same scores, bit
    for bit, without binning them twice."""
    walk = rescoring.binning(loaded.model)
    if walk is None:
        return None
    binned = walk.bins(matrix)
    return None if binned is None else (walk, binned)


def _bins_of(binned: tuple[Any, np.ndarray] | None, rows: np.ndarray, n: int) -> np.ndarray | None:
    """The binned input of each frame row (the scored `rows`, whose bytes are `binned`; zeros for the others), or
    None."""
    if binned is None:
        return None
    out = np.zeros((n, binned[1].shape[1]), dtype=np.uint8)
    out[rows] = binned[1]
    return out


def _marks(run: str, books: seller_books.Books, whole: bool) -> Callable[[Any], None]:
    """What goes into the scores' transaction beside them: the run's token, the books (`whole`: all written anew;
    else what changed), and when a score may next change by time alone."""
    def write(conn: Any) -> None:
        books.save(conn, run, whole)
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = excluded.value", [(META_RUN, run), (META_NEXT_DUE, repr(books.next_due()))])
    return write


def _score_some(db: sqlite_utils.Database, plan: Plan, loaded: Any, examined: set[str], as_of: datetime, run: str,
                books: seller_books.Books, frame: pd.DataFrame | None = None) -> set[str]:
    """The orders whose score may have changed (see the module docstring), and their sellers' books (`frame`: the
    first frame, read ahead already)."""
    conn = db.conn
    settings = config.load("model").get("scoring", {})
    as_of_jd = datetime_to_jd(as_of)
    scorer = message_scorer(db, plan)
    started = time.perf_counter()
    if frame is None:
        frame = _first_frame(conn, books, examined, as_of, scorer, plan)
    if frame.empty:  # nothing left to read (the orders went): the scores and books stand for this run
        with db.conn:
            _marks(run, books, False)(db.conn)
        return set()
    fresh, found = _entries(frame, books)
    # and the orders a changed one left behind on its former number or with its former buyer (their number's
    # context moved: read whole); the other orders of buyers whose history changed are the buyer statistics' to
    # tell about, like a seller's (below)
    stored = books.entries[found[found >= 0]]
    moved_on = (stored["number"] != fresh["number"][found >= 0]) | (stored["buyer"] != fresh["buyer"][found >= 0])
    left = seller_books.among(books.entries["number"], stored["number"][moved_on]) | \
        seller_books.among(books.entries["buyer"], stored["buyer"][moved_on])
    partners = np.setdiff1d(books.entries["order"][left], fresh["order"])
    more = _partial_frame(conn, set(readers.ids_of_rowids(conn, partners)), as_of, scorer, plan)
    if len(more):
        frame = pd.concat([frame, more], ignore_index=True)
        fresh, found = _entries(frame, books)
    changed_buyers = seller_books.buyers_changed(books, found, fresh)
    rowids = fresh["order"]
    width = None if books.bins is None else books.bins.shape[1]
    updated, old_code = books.replaced(frame["seller_id"].to_numpy(dtype=object), fresh,
                                       None if width is None else np.zeros((len(frame), width), dtype=np.uint8))
    # the sellers whose statistics may have moved: those of the orders read, now and before
    former = {books.sellers[c] for c in books.seller[found[found >= 0]].tolist()}
    touched = np.union1d(updated.seller[updated.locate(rowids)],
                         [c for c, name in enumerate(updated.sellers) if name in former]).astype(np.int64)
    in_touched = updated.of_sellers(touched)
    # a median moves only where a seller gained, lost or changed a known transit: worked out for those alone
    moved = _median_moved(books, updated, frame["seller_id"].to_numpy(dtype=object), fresh, found)
    in_moved = updated.of_sellers(moved)
    updated.median[moved] = seller_aggregates.medians(updated.seller[in_moved], len(updated.sellers),
                                                      updated.entries["transit"][in_moved])[moved]
    # (books whose transits and destinations stand keep the typical transit they settled on last time)
    if _transits_moved(books, fresh, found) and seller_books.typical_moved(updated, readers.kept_typical_transit(conn)):
        raise _TypicalMoved  # every order's times relative to it moved (nothing is written yet)
    before, after = books.stats(), updated.stats()
    # every other order of a touched seller or of a buyer whose history changed: did one of its seller or buyer
    # features cross one of the model's thresholds, or move while its stored reasons quote it?
    names = list(loaded.model.named_steps["features"].get_feature_names_out())
    edges = rescoring.decision_edges(loaded.model, names)
    of_buyer = updated.of_buyers(changed_buyers)
    others = np.flatnonzero((in_touched | of_buyer) & ~updated.of_orders(rowids))
    others = others[updated.entries["scored"][others] > 0]  # an order without a number has no score
    buyers_then, buyers_now = seller_books.BuyerStats.of(books, changed_buyers), \
        seller_books.BuyerStats.of(updated, changed_buyers)
    mine = others[of_buyer[others]]
    crossed, quoting = _moved(before, after, old_code[updated.seller[others]], updated.seller[others],
                              updated.entries["bits"][others], updated.entries["shown"][others], edges, names)
    buyer_crossed, buyer_quoting = _buyer_moved(buyers_then, buyers_now, updated.entries[mine], edges, names)
    crossed[of_buyer[others]] |= buyer_crossed
    quoting[of_buyer[others]] |= buyer_quoting
    candidates = others[crossed | quoting]
    # worked out again from their stored binned input; the few that cannot be are read whole
    walk = rescoring.binning(loaded.model) if updated.bins is not None else None
    quick = None
    if walk is not None and len(candidates):
        buyers = seller_books.BuyerStats.of(updated, updated.entries["buyer"][candidates])
        with threads.limit():  # the trees' walk: one core on a busy machine (spinning threads slow it tenfold)
            quick = quick_scores.rescore(conn, walk, loaded.model.named_steps["classifier"], names, updated,
                                         candidates, after, buyers, settings)
    whole = candidates if quick is None else quick.whole
    log.debug("rescoring: %d orders read, %d sellers touched, %d buyers' history changed, %d other orders crossed "
              "a threshold or quote a value that moved (%d worked out from their bins, %d of them written), %d read "
              "whole, in %.2f s", len(frame), len(touched), len(changed_buyers), len(candidates),
              0 if quick is None else quick.worked_out, 0 if quick is None else len(quick.written), len(whole),
              time.perf_counter() - started)
    more = _partial_frame(conn, set(readers.ids_of_rowids(conn, updated.entries["order"][whole])), as_of, scorer,
                          plan)
    if len(more):
        frame = pd.concat([frame, more], ignore_index=True)
    at = updated.locate(frame["order_rowid"].to_numpy(dtype=np.int64))
    own, _ = seller_aggregates.order_signals(frame, FLAG_COLUMNS)
    for name, values in after.features(updated.seller[at], own).items():
        frame[name] = values
    _add_buyer_history(frame, updated)
    tracked = has_text(frame["tracking_number"])
    untracked = set(frame.loc[~tracked, "order_id"])
    rows = np.flatnonzero(tracked)
    features, matrix = _features(loaded, frame, rows)
    due = np.full(len(frame), seller_books.NEVER)
    due[rows], timed = rescoring.due_times(loaded.model.named_steps["features"], frame, rows, features, as_of_jd,
                                           edges)
    updated.entries["due"][at] = due
    updated.entries["scored"][at] = tracked
    updated.entries["score"][at] = np.nan
    binned = _binned(loaded, matrix)
    if updated.bins is not None:
        fresh = _bins_of(binned, rows, len(frame))
        if fresh is not None and fresh.shape[1] == updated.bins.shape[1]:
            updated.bins[at] = fresh
        else:
            updated.bins = None
    frame = frame.loc[tracked, ["order_id", "codes", "order_rowid"]].assign(target=True)
    return _predict_and_write(db, loaded, settings, frame, features, matrix, as_of, False, untracked, None, run,
                              lambda: (updated, timed), None if quick is None else quick.written, binned=binned)


def _transits_moved(books: seller_books.Books, fresh: np.ndarray, found: np.ndarray) -> bool:
    """Whether these entries (`fresh`, at `found` in `books`, -1 for new ones) change what the store's typical
    transit is of: a transit known now or before that differs, or whose destination does."""
    transit = fresh["transit"][:, 0]
    was = found >= 0
    if (~was & ~np.isnan(transit)).any():
        return True
    stored = books.entries[found[was]]
    before, now = stored["transit"][:, 0], transit[was]
    same = (np.isnan(before) & np.isnan(now)) | ((before == now) & (stored["dest"] == fresh["dest"][was]))
    return not bool(same.all())


def _median_moved(books: seller_books.Books, updated: seller_books.Books, seller_ids: np.ndarray, fresh: np.ndarray,
                  found: np.ndarray) -> np.ndarray:
    """The sellers (codes in `updated`) whose known transits differ once these orders' entries (`fresh`, of sellers
    `seller_ids`; `found`: their positions in `books`, -1 for new ones) replace the stored ones: a median is of a
    seller's known transits alone, so every other seller's stored median stands."""
    width = max(int(np.prod(fresh.dtype["transit"].shape)), 1)  # spans per entry (not -1: none may be there)
    transit = fresh["transit"].reshape(len(fresh), width)
    known_now = ~np.isnan(transit).all(axis=1)
    was = found >= 0
    before = books.entries["transit"][found[was]].reshape(int(was.sum()), width)
    known_then = np.zeros(len(fresh), dtype=bool)
    known_then[was] = ~np.isnan(before).all(axis=1)
    seller_then = np.full(len(fresh), None, dtype=object)
    seller_then[was] = np.asarray(books.sellers, dtype=object)[books.seller[found[was]]]
    same = np.zeros(len(fresh), dtype=bool)
    same[was] = ((transit[was] == before) | (np.isnan(transit[was]) & np.isnan(before))).all(axis=1) & \
        (seller_then[was] == seller_ids[was])
    names = set(seller_ids[known_now & ~same].tolist()) | set(seller_then[known_then & ~same].tolist())
    code_of = {name: c for c, name in enumerate(updated.sellers) if name in names}
    return np.array(sorted(code_of.values()), dtype=np.int64)


def _add_buyer_history(frame: pd.DataFrame, books: seller_books.Books) -> None:
    """Each order's buyer history over the whole store (`detectors.features.BUYER_SUMS`), from the books (which
    hold the frame's orders as they are now), in place."""
    buyer = seller_books.hashes(frame["buyer_id"])
    stats = seller_books.BuyerStats.of(books, buyer)
    at = np.searchsorted(stats.buyers, buyer)
    for name, values in zip(BUYER_SUMS, (stats.orders, stats.not_received, stats.flagged), strict=True):
        frame[name] = values[at].astype(float)


def _moved(before: seller_aggregates.SellerStats, after: seller_aggregates.SellerStats, was: np.ndarray,
           now: np.ndarray, bits: np.ndarray, shown: np.ndarray, edges: rescoring.Edges, names: list[str]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per order (its seller's code before and now, its signals and the features its stored reasons show): whether
    a seller feature crossed one of the model's thresholds, and whether one whose value its stored reasons quote
    moved. Its seller features follow from its seller and its own signals alone: worked out once per distinct
    (seller before, seller now, signals), a few thousand where there are a million orders."""
    key = ((was.astype(np.int64) + 1) << 40) | (now.astype(np.int64) << 16) | bits.astype(np.int64)
    if len(key) and (was.min() < -1 or max(int(was.max()) + 1, int(now.max())) >= 1 << 23):
        groups, inverse = np.arange(len(key)), np.arange(len(key))  # codes too large to pack: each order alone
    else:
        _, groups, inverse = np.unique(key, return_index=True, return_inverse=True)
    g_was, g_now, g_bits = was[groups], now[groups], bits[groups]
    crossed, moved = _crossed(before.features(g_was, g_bits), after.features(g_now, g_bits), edges,
                              np.ones(len(groups), dtype=bool), names)
    quoting = (shown & np.uint64(rescoring.feature_bits(names, set(seller_aggregates.FEATURES)))) != 0
    inverse = inverse.reshape(-1)
    return crossed[inverse], quoting & moved[inverse]


def _buyer_moved(before: seller_books.BuyerStats, after: seller_books.BuyerStats, entries: np.ndarray,
                 edges: rescoring.Edges, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The same for the buyer features of orders whose buyer's history changed."""
    quoting = (entries["shown"] & np.uint64(rescoring.feature_bits(names, set(quick_scores.BUYER_FEATURES)))) != 0
    return _crossed(before.features(entries), after.features(entries), edges, quoting, names)


def _crossed(old: dict[str, np.ndarray], new: dict[str, np.ndarray], edges: rescoring.Edges,
             quoting: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per order (its features before and after; `names`: the model's features): whether one crossed a threshold
    of the model, and, where `quoting` (its stored reasons quote them), whether the phrase its reasons would quote
    them in changed (`detectors.reasons.describe_many`: a rate moving from 31.2% to 31.4% is quoted as 31% both
    times)."""
    crossed = np.zeros(len(quoting), dtype=bool)
    for name, values in new.items():
        if name in edges:
            crossed |= rescoring.moved(old[name], values, edges[name])
    return crossed, quoting & rescoring.phrase_moved(old, new, names, quoting)


def _entries(frame: pd.DataFrame, books: seller_books.Books) -> tuple[np.ndarray, np.ndarray]:
    """The book entries of the frame's orders as they are now (not yet scored), and where each one is in `books`
    (-1: not there)."""
    bits, transit = seller_aggregates.order_signals(frame, FLAG_COLUMNS)
    rowids = frame["order_rowid"].to_numpy(dtype=np.int64)
    fresh = seller_books.entries(rowids, bits, transit, seller_books.hashes(frame["tracking_number"]),
                                 seller_books.hashes(frame["buyer_id"]), np.full(len(frame), seller_books.NEVER),
                                 np.zeros(len(frame), np.uint8), _any_flag(frame),
                                 seller_books.flag_mask(frame, FLAG_COLUMNS),
                                 seller_books.codes_mask(frame["codes"], FLAG_CODES),
                                 dests=seller_books.destinations(frame))
    return fresh, books.locate(rowids)


def _any_flag(frame: pd.DataFrame) -> np.ndarray:
    """Per order, whether it has any active flag (what a buyer's history counts)."""
    return (frame["codes"].to_numpy(dtype=object) != "").astype(np.uint8)


def _partial_frame(conn: Any, order_ids: set[str], as_of: datetime, scorer: MessageScorer,
                   plan: Plan, known: readers.ScopeRows | None = None) -> pd.DataFrame:
    """The feature frame of these orders, their seller aggregates and buyer history left to the caller (the books
    hold them: `_add_buyer_history`); `known`: rows of some of them read already (`readers.ScopeRows`)."""
    if not order_ids:
        return pd.DataFrame()
    return readers.feature_frame(conn, order_ids, as_of, scorer, plan=plan, sellers=lambda frame: None, buyers=False,
                                 known=known)


def _predict_and_write(db: sqlite_utils.Database, loaded: Any, settings: dict[str, Any], frame: pd.DataFrame,
                       features: pd.DataFrame, matrix: np.ndarray, as_of: datetime, full: bool, untracked: set[str],
                       writer: score_writer.ChildWrite | None, run: str,
                       books_of: Callable[[], tuple[seller_books.Books, set[str]]],
                       scored: pd.DataFrame | None = None, typical: str | None = None,
                       binned: tuple[Any, np.ndarray] | None = None) -> set[str]:
    """Score the frame's rows (order_id, codes, order_rowid; `features` and `matrix` theirs), work out the reasons of
    the high ones, and write them, with the scores worked out already (`scored`: order_id, score, codes, reasons;
    no reasons), the typical transit a full run found (`typical`, JSON), the run's marks and the sellers' books.
    `books_of()` gives the books, which learn which features each order's reasons show, and the features time
    moves (`timed`: those shown make the reasons due at the next later run); it is asked only once the rows are
    scored and their reasons worked out, before anything is committed."""
    classifier = loaded.model.named_steps["classifier"]
    with threads.limit():  # from the rows' bytes when they are binned already (`_binned`): the same scores
        if binned is None:
            score = _probability(loaded, classifier, matrix)
        else:
            score = binned[0].fraud_probability(binned[1])
    frame = frame.assign(score=score)
    min_score = float(settings.get("reasons_min_score", 0.1))
    explained = frame["score"].to_numpy() >= min_score
    rows = np.flatnonzero(explained)
    pending = frame.iloc[rows]

    def explain_pending() -> list[str]:
        with threads.limit(1):  # beside the write: one core each
            return explain(classifier, features.iloc[rows], matrix[rows], pending["score"].to_numpy(),
                           min_score=min_score, max_reasons=int(settings.get("max_reasons", 3)),
                           min_contribution=float(settings.get("min_contribution", 0.1)))

    names = list(features.columns)
    as_of_jd = datetime_to_jd(as_of)

    def marks(conn: Any, reasons: list[str]) -> None:
        books, timed = books_of()
        at = books.locate(frame["order_rowid"].to_numpy(dtype=np.int64))
        shown = books.entries["shown"]
        shown[at] = 0
        books.entries["score"][at] = score
        if scored is not None and len(scored):
            shown[books.locate(scored["order_rowid"].to_numpy(dtype=np.int64))] = rescoring.shown_features(
                scored["reasons"].tolist(), names, FEATURE_GROUPS)
        masks = rescoring.shown_features(reasons, names, FEATURE_GROUPS)
        shown[at[rows]] = masks
        dated = at[rows][(masks & np.uint64(rescoring.feature_bits(names, timed))) != 0]
        books.entries["due"][dated] = np.minimum(books.entries["due"][dated], as_of_jd)  # any later run
        _marks(run, books, full)(conn)

    if writer is not None:
        # only the few orders scoring at least min_score get reasons: the child writes all the others while this
        # process works them out, then writes them, in the same transaction
        scored_at = to_db(as_of)
        codes = frame["codes"].to_numpy(dtype=object)
        writer.rows(score, codes, ~explained, loaded.model_id, scored_at)
        reasons = explain_pending()
        writer.later(pending["order_id"].to_numpy(dtype=object), score[rows], codes[rows], reasons)
        waited = time.perf_counter()
        books_of()  # the books made (or their error raised) before the scores are committed
        log.debug("scoring: waited %.2f s for the books", time.perf_counter() - waited)
        waited = time.perf_counter()
        writer.commit({META_MODEL: loaded.model_id, META_AS_OF: scored_at,
                       META_SCORED_BY + loaded.model_id: _scored_by_text(loaded),
                       **({readers.TYPICAL_TRANSIT_META: typical} if typical else {})})
        log.debug("scoring: waited %.2f s for the writing child's commit", time.perf_counter() - waited)
        # the books after the scores, in a transaction of their own: a run killed between the two leaves books
        # that do not name this run, and the next run rescores everything
        with db.conn:
            marks(db.conn, reasons)
        return set(frame["order_id"])
    # in this process: the reasons in a thread while this one writes the others
    now = frame[~explained].assign(reasons="[]")
    if scored is not None and len(scored):
        now = pd.concat([now[["order_id", "score", "codes", "reasons"]], scored[["order_id", "score", "codes",
                                                                                   "reasons"]]], ignore_index=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(explain_pending)
        _record(db, loaded.model_id, as_of, now, full, untracked,
                later=lambda: pending.assign(reasons=future.result()), extra=lambda conn: marks(conn, future.result()),
                scored_by=_scored_by_text(loaded), typical=typical)
    return set(frame["order_id"]) | (set() if scored is None else set(scored["order_id"]))


def _probability(loaded: Any, classifier: Any, matrix: np.ndarray) -> np.ndarray:
    """The classifier's fraud probability of these rows (the lean export's without importing scikit-learn)."""
    if loaded.lean:
        return classifier.predict_proba(np.asfortranarray(matrix))[:, 1]
    from detectors.classifier import fraud_probability

    return fraud_probability(classifier, matrix)


def _child_writer(db: sqlite_utils.Database, plan: Plan) -> score_writer.ChildWrite | None:
    """A child process for a full run's write, or None where it does not pay or apply: a small store, a database
    without a file, or a write this connection already holds (the child would wait for it)."""
    path = child_file(db.conn, plan) if plan.score_write_by_child else None
    if not path:
        return None
    try:
        return score_writer.ChildWrite(path)
    except Exception:  # noqa: BLE001 - no child process here (e.g. a main module without a __main__ guard)
        return None


def message_scorer(db: sqlite_utils.Database, plan: Plan | None = None) -> MessageScorer:
    """Scores seller messages through the `message_pressure` cache: each message once per message model."""
    model_key = registry.message_model_key()
    whole_cache_from = (plan.limits if plan else thresholds()).whole_pressure_cache_from

    def score(messages: pd.DataFrame) -> np.ndarray:
        conn = db.conn
        ids = messages["id"].to_numpy(dtype=np.int64)
        if len(ids) >= whole_cache_from:  # read the model's whole cache once, match by sorted search
            rows = conn.execute("SELECT message_id, probability FROM message_pressure WHERE model = ? "
                                "ORDER BY message_id", [model_key]).fetchall()
        else:  # a few messages: look each up
            rows = conn.execute(
                "SELECT p.message_id, p.probability FROM message_pressure p WHERE p.model = ? AND p.message_id IN "
                "(SELECT value FROM json_each(?)) ORDER BY p.message_id",
                [model_key, store.as_json(ids.tolist())]).fetchall()
        known_ids = np.array([r[0] for r in rows], dtype=np.int64)
        known_p = np.array([r[1] for r in rows], dtype=float)
        at = np.minimum(np.searchsorted(known_ids, ids), max(len(known_ids) - 1, 0))
        hit = known_ids[at] == ids if len(known_ids) else np.zeros(len(ids), dtype=bool)
        probability = pd.Series(np.where(hit, known_p[at] if len(known_ids) else np.nan, np.nan),
                                index=messages.index)
        missing = probability.isna().to_numpy()
        if missing.any():
            fresh = score_messages(messages[missing], registry.message_pressure)
            probability[missing] = fresh
            with conn:
                conn.executemany("INSERT OR REPLACE INTO message_pressure(message_id, model, probability) VALUES (?,?,?)",
                                 zip(messages.loc[missing, "id"].astype(int).tolist(), [model_key] * int(missing.sum()),
                                     fresh.tolist(), strict=True))
        return probability.to_numpy(dtype=float)

    return score


def _scored_by_text(loaded: Any) -> str:
    return json.dumps(loaded.scored_by(), sort_keys=True)


def _record(db: sqlite_utils.Database, model_id: str, as_of: datetime, frame: pd.DataFrame, full: bool,
            untracked: Iterable[str] = (), later: Callable[[], pd.DataFrame] | None = None,
            extra: Callable[[Any], None] | None = None, scored_by: str | None = None,
            typical: str | None = None) -> None:
    """Write the scores of `frame` (order_id, score, codes, reasons) and then those `later` gives (called once
    `frame`'s rows are in), and what `extra` writes, in one transaction, in this process (see
    `tracker.score_writer`)."""
    scored_at = to_db(as_of)
    rows = None if frame.empty else _rows_in_key_order(frame)  # before the write lock is taken
    conn = db.conn
    tuning = {"cache_size": -score_writer.WRITE_CACHE_KIB}
    # an incremental write's statement journals in memory: each INSERT OR REPLACE of a hundred rows at random
    # places journals its pages, and on disk that was a temporary file written page by page (half a GB at a 1%
    # change of a million orders). A full run keeps them on disk: its index sort may not grow in memory. SQLite
    # changes it only outside a transaction (and drops temporary tables then: the run's are made anew each use)
    if not full and not conn.in_transaction:
        tuning["temp_store"] = TEMP_STORE_MEMORY
    with pragmas(conn, **tuning), conn:
        if not conn.in_transaction:
            conn.execute("BEGIN")  # one transaction, whatever the connection's isolation level
        indexes: list[str] = []
        if full:
            # a full run is the whole truth: orders that lost their tracking number lose their score
            conn.execute("DELETE FROM scores")
            # the score index is built once from the finished table (one sort) instead of being updated at a
            # million random places; dropped inside this transaction, so a failed or killed run keeps it
            indexes = score_writer.drop_indexes(conn, "scores")
        conn.executemany("DELETE FROM scores WHERE order_id = ?", ((o,) for o in untracked))
        if rows is not None:
            score_writer.insert_scores(conn, rows, model_id, scored_at)
        if indexes:  # before `later`'s few rows: while the thread working them out still runs
            with sort_cache(conn):  # (a smaller cache writes out what no longer fits: only for a sort)
                for sql in indexes:
                    conn.execute(sql)
        rest = later() if later is not None else None
        if rest is not None and not rest.empty:
            score_writer.insert_scores(conn, _rows_in_key_order(rest), model_id, scored_at)
        if full or get_meta(db, META_MODEL) is None:
            set_meta(db, META_MODEL, model_id)
        set_meta(db, META_AS_OF, scored_at)
        if scored_by is not None:
            set_meta(db, META_SCORED_BY + model_id, scored_by)
        if typical is not None:
            set_meta(db, readers.TYPICAL_TRANSIT_META, typical)
        if extra is not None:
            extra(conn)


def _rows_in_key_order(frame: pd.DataFrame) -> score_writer.ScoreColumns:
    """The frame's rows (order_id, score, codes, reasons) as columns in order-id order (see
    `score_writer.KeyOrder`)."""
    return score_writer.rows_in_key_order(frame["order_id"].to_numpy(dtype=object), frame["score"].to_numpy(),
                                          frame["codes"].to_numpy(dtype=object),
                                          frame["reasons"].to_numpy(dtype=object))


