"""Scores orders with the active classifier and writes `scores` (order_id, score, codes, reasons, model_id).

Incremental by default: the orders `detect` examined are rescored, and so are the other orders of their
sellers whose score moved by at least `seller_rescore_delta` (a seller's aggregates, such as their flag
rate, change with every order of theirs, and feed every one of their scores). A model whose id differs
from the one the scores were made with (meta `scores_model_id`) makes the next run rescore every order.

Reasons: an order scoring at least `reasons_min_score` gets its top reasons (`detectors.reasons.explain`),
stored as JSON `[{"feature", "text", "weight"}]`, weights in log-odds. Which model scored (and how its blend
weighs the shipped model, a local one and the rules prior, with the base log-odds the reasons add to) is kept
in meta `scored_by:<model id>` (`scored_by`), for the case page and `tracker case show`. The features come from the frame `readers.feature_frame`
reads, over the shipment facts this module brings up to date first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils

from detectors.classifier import fraud_probability
from detectors.features import MessageScorer, has_text, score_messages
from detectors.reasons import explain
from tracker import config
from tracker.db import SCORED_BY_META, get_meta, set_meta
from tracker.detection import readers, registry, score_writer, shipment_facts, store, threads
from tracker.plan import Plan, child_file, plan_for, thresholds
from tracker.timeutil import to_db

META_MODEL = "scores_model_id"
META_AS_OF = "scores_as_of"
META_SCORED_BY = SCORED_BY_META


def score_orders(db: sqlite_utils.Database, order_ids: set[str], as_of: datetime, *, full: bool = False,
                 plan: Plan | None = None) -> set[str]:
    """Rescore these orders (every order after a new model); return the order ids scored."""
    loaded = registry.load_active_model(db)
    if loaded is None:
        return set()
    full = full or get_meta(db, META_MODEL) != loaded.model_id
    if not full and not order_ids:
        return set()
    plan = plan or plan_for(db.conn)
    shipment_facts.refresh(db, plan)
    # a full run over a large store writes in a child process, started now so it is ready when the ids are
    writer = _child_writer(db, plan) if full else None
    try:
        return _score(db, plan, loaded, order_ids, as_of, full, writer)
    finally:
        if writer is not None:
            writer.close()


def _score(db: sqlite_utils.Database, plan: Plan, loaded: Any, order_ids: set[str], as_of: datetime, full: bool,
           writer: score_writer.ChildWrite | None) -> set[str]:
    settings = config.load("model").get("scoring", {})
    frame = readers.feature_frame(db.conn, None if full else order_ids, as_of, message_scorer(db, plan), plan=plan)
    if frame.empty:
        _record(db, loaded.model_id, as_of, pd.DataFrame(), full)
        return set()
    # a full run's frame holds the whole store: its typical transit serves the incremental runs after it
    typical = json.dumps(frame.attrs["typical_transit"], sort_keys=True) \
        if full and "typical_transit" in frame.attrs else None
    tracked = has_text(frame["tracking_number"])
    untracked = set(frame.loc[~tracked & frame["target"].to_numpy(), "order_id"])  # lost their number: lose their score
    if writer is not None:  # it sorts the ids and takes the write lock while this process works out the scores
        if db.conn.in_transaction:
            # there was none when the run began: one the reading left open ends here, so this connection holds
            # no snapshot older than the child's write
            db.conn.commit()
        writer.begin(frame["order_id"].to_numpy(dtype=object)[tracked], untracked)
    # features of the scored rows only (each row's own), and of the frame only the few columns still needed:
    # cheaper than a copy of the whole wide frame
    every = bool(tracked.all())
    features = loaded.model.named_steps["features"].transform_frame(frame, None if every else np.flatnonzero(tracked))
    frame = frame[["order_id", "codes", "target"]]
    if not every:
        frame = frame[tracked]
    classifier = loaded.model.named_steps["classifier"]
    matrix = features.to_numpy(dtype=np.float64)
    with threads.limit():
        score = fraud_probability(classifier, matrix)
    frame = frame.assign(score=score)

    if not full:
        # the asked-for orders always; their sellers' other orders only when the score moved materially
        previous = _stored_scores(db, frame.loc[~frame["target"], "order_id"])
        moved = (frame["score"] - frame["order_id"].map(previous)).abs()
        keep = frame["target"].to_numpy() | ~(moved < float(settings.get("seller_rescore_delta", 0.01))).to_numpy()
        frame, matrix, features = frame[keep], matrix[keep], features[keep]

    min_score = float(settings.get("reasons_min_score", 0.1))
    explained = frame["score"].to_numpy() >= min_score
    rows = np.flatnonzero(explained)
    pending = frame.iloc[rows]

    def explain_pending() -> list[str]:
        with threads.limit(1):  # beside the write: one core each
            return explain(classifier, features.iloc[rows], matrix[rows], pending["score"].to_numpy(),
                           min_score=min_score, max_reasons=int(settings.get("max_reasons", 3)),
                           min_contribution=float(settings.get("min_contribution", 0.1)))

    if writer is not None:
        # only the few orders scoring at least min_score get reasons: the child writes all the others while this
        # process works them out, then writes them, in the same transaction
        scored_at = to_db(as_of)
        codes = frame["codes"].to_numpy(dtype=object)
        writer.rows(score, codes, ~explained, loaded.model_id, scored_at)
        writer.later(pending["order_id"].to_numpy(dtype=object), score[rows], codes[rows], explain_pending())
        writer.commit({META_MODEL: loaded.model_id, META_AS_OF: scored_at,
                       META_SCORED_BY + loaded.model_id: _scored_by_text(loaded),
                       **({readers.TYPICAL_TRANSIT_META: typical} if typical else {})})
        return set(frame["order_id"])
    # in this process: the reasons in a thread while this one writes the others
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(explain_pending)
        _record(db, loaded.model_id, as_of, frame[~explained].assign(reasons="[]"), full, untracked,
                later=lambda: pending.assign(reasons=future.result()), scored_by=_scored_by_text(loaded),
                typical=typical)
    return set(frame["order_id"])


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


def _stored_scores(db: sqlite_utils.Database, order_ids: pd.Series) -> pd.Series:
    if order_ids.empty:
        return pd.Series(dtype=float)
    rows = db.conn.execute("SELECT s.order_id, s.score FROM json_each(?) j CROSS JOIN scores s ON s.order_id = j.value",
                           [store.as_json(order_ids.tolist())]).fetchall()
    return pd.Series({o: s for o, s in rows}, dtype=float)


def _scored_by_text(loaded: Any) -> str:
    return json.dumps(loaded.scored_by(), sort_keys=True)


def _record(db: sqlite_utils.Database, model_id: str, as_of: datetime, frame: pd.DataFrame, full: bool,
            untracked: Iterable[str] = (), later: Callable[[], pd.DataFrame] | None = None,
            scored_by: str | None = None, typical: str | None = None) -> None:
    """Write the scores of `frame` (order_id, score, codes, reasons) and then those `later` gives (called once
    `frame`'s rows are in), in one transaction, in this process (see `tracker.score_writer`)."""
    scored_at = to_db(as_of)
    rows = None if frame.empty else _rows_in_key_order(frame)  # before the write lock is taken
    conn = db.conn
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{score_writer.WRITE_CACHE_KIB}")
    try:
        with conn:
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
            for sql in indexes:  # before `later`'s few rows: while the thread working them out still runs
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
    finally:
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")


def _rows_in_key_order(frame: pd.DataFrame) -> score_writer.ScoreColumns:
    """The frame's rows (order_id, score, codes, reasons) as columns in order-id order (see
    `score_writer.KeyOrder`)."""
    return score_writer.rows_in_key_order(frame["order_id"].to_numpy(dtype=object), frame["score"].to_numpy(),
                                          frame["codes"].to_numpy(dtype=object),
                                          frame["reasons"].to_numpy(dtype=object))


