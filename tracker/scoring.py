"""Scores orders with the active classifier and writes `scores` (order_id, score, codes, reasons, model_id).

Incremental by default: the orders `detect` examined are rescored, and so are the other orders of their
sellers whose score moved by at least `seller_rescore_delta` (a seller's aggregates, such as their flag
rate, change with every order of theirs, and feed every one of their scores). A model whose id differs
from the one the scores were made with (meta `scores_model_id`) makes the next run rescore every order.

Reasons: for an order scoring at least `reasons_min_score`, each feature group (one flag, the transit
times, the seller's aggregates, ...) is set back to the training population's median and the order
rescored; the groups whose reset lowers the score most are its top reasons, stored as JSON
`[{"feature", "text", "weight"}]`. One batched prediction per group: no per-order loop. When no single reset
moves a score (several flags that each suffice), those flags share the drop of resetting them all together.
Phrases are formatted per group over all its orders (`describe_many`).
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

from detectors.features import (
    FEATURE_GROUPS,
    FEATURES,
    MessageScorer,
    has_text,
    load_order_frame,
    score_messages,
)
from tracker import config, score_writer
from tracker.db import get_meta, set_meta
from tracker.timeutil import to_db

META_MODEL = "scores_model_id"
META_AS_OF = "scores_as_of"


def score_orders(db: sqlite_utils.Database, order_ids: set[str], as_of: datetime, *, full: bool = False) -> set[str]:
    """Rescore these orders (every order after a new model); return the order ids scored."""
    from tracker.training import load_active_model

    loaded = load_active_model(db)
    if loaded is None:
        return set()
    full = full or get_meta(db, META_MODEL) != loaded.model_id
    if not full and not order_ids:
        return set()
    refresh_shipment_facts(db)
    # a full run over a large store writes in a child process, started now so it is ready when the ids are
    writer = _child_writer(db) if full else None
    try:
        return _score(db, loaded, order_ids, as_of, full, writer)
    finally:
        if writer is not None:
            writer.close()


def _score(db: sqlite_utils.Database, loaded: Any, order_ids: set[str], as_of: datetime, full: bool,
           writer: score_writer.ChildWrite | None) -> set[str]:
    from detectors.classifier import single_threaded

    settings = config.load("model").get("scoring", {})
    frame = load_order_frame(db.conn, None if full else order_ids, as_of, message_scores=message_scorer(db))
    if frame.empty:
        _record(db, loaded.model_id, as_of, pd.DataFrame(), full)
        return set()
    tracked = has_text(frame["tracking_number"])
    untracked = set(frame.loc[~tracked & frame["target"].to_numpy(), "order_id"])  # lost their number: lose their score
    if writer is not None:  # it sorts the ids and takes the write lock while this process works out the scores
        if db.conn.in_transaction:
            # there was none when the run began: one the reading left open (temporary tables open one) ends
            # here, so this connection holds no snapshot older than the child's write
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
    score = _fraud_probability(classifier, matrix)
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
        with single_threaded():  # beside the write: one core each
            return explain(classifier, features.iloc[rows], matrix[rows], pending["score"].to_numpy(),
                           min_score=min_score, max_reasons=int(settings.get("max_reasons", 3)),
                           min_contribution=float(settings.get("min_contribution", 0.02)))

    if writer is not None:
        # only the few orders scoring at least min_score get reasons: the child writes all the others while this
        # process works them out, then writes them, in the same transaction
        scored_at = to_db(as_of)
        codes = frame["codes"].to_numpy(dtype=object)
        writer.rows(score, codes, ~explained, loaded.model_id, scored_at)
        writer.later(pending["order_id"].to_numpy(dtype=object), score[rows], codes[rows], explain_pending())
        writer.commit({META_MODEL: loaded.model_id, META_AS_OF: scored_at})
        return set(frame["order_id"])
    # in this process: the reasons in a thread while this one writes the others
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(explain_pending)
        _record(db, loaded.model_id, as_of, frame[~explained].assign(reasons="[]"), full, untracked,
                later=lambda: pending.assign(reasons=future.result()))
    return set(frame["order_id"])


def _child_writer(db: sqlite_utils.Database) -> score_writer.ChildWrite | None:
    """A child process for a full run's write, or None where it does not pay or apply: a small store, a database
    without a file, or a write this connection already holds (the child would wait for it)."""
    from detectors import columnar

    path = columnar.file_for_children(db.conn, "SELECT max(rowid) FROM orders", score_writer.CHILD_MIN_ORDERS)
    if not path:
        return None
    try:
        return score_writer.ChildWrite(path)
    except Exception:  # noqa: BLE001 - no child process here (e.g. a main module without a __main__ guard)
        return None


META_FACTS = "shipment_facts_event_id"


def refresh_shipment_facts(db: sqlite_utils.Database) -> int:
    """Bring `shipment_facts` up to date with the events: re-aggregate only numbers with events newer than
    the last refresh (events are only ever added). Returns how many numbers were refreshed."""
    from detectors.features import shipment_facts_sql
    from detectors.view import ScanKinds

    conn = db.conn
    done = int(get_meta(db, META_FACTS, "0") or 0)
    latest = conn.execute("SELECT max(id) FROM tracking_events").fetchone()[0] or 0
    if latest <= done:
        return 0
    where = "" if done == 0 else \
        f"WHERE tracking_number IN (SELECT DISTINCT tracking_number FROM tracking_events WHERE id > {done})"
    aggregate, place = shipment_facts_sql(ScanKinds.from_settings(config.load("rules")), where)
    with conn:
        before = conn.total_changes
        conn.execute(f"""INSERT OR REPLACE INTO shipment_facts(tracking_number, n_events, n_scans, n_transit, n_export,
            n_import, first_event_jd, first_scan_jd, last_scan_jd, delivered_jd, max_event_id) {aggregate}""")
        refreshed = conn.total_changes - before
        conn.execute(f"""UPDATE shipment_facts SET delivered_country = d.country, delivered_city = d.city,
            delivered_postcode = d.postcode FROM ({place}) AS d WHERE d.tracking_number = shipment_facts.tracking_number""")
        set_meta(db, META_FACTS, str(latest))
    return refreshed


# from this many messages on, the pressure cache is read whole instead of looked up message by message
LOOKUP_WHOLE_CACHE_FROM = 20_000


def message_scorer(db: sqlite_utils.Database) -> MessageScorer:
    """Scores seller messages through the `message_pressure` cache: each message once per message model."""
    from detectors import message_model, persistence

    model_key = persistence.read_metadata(message_model.MODEL_PATH)["sha256"][:16]

    def score(messages: pd.DataFrame) -> np.ndarray:
        conn = db.conn
        ids = messages["id"].to_numpy(dtype=np.int64)
        if len(ids) >= LOOKUP_WHOLE_CACHE_FROM:  # read the model's whole cache once, match by sorted search
            rows = conn.execute("SELECT message_id, probability FROM message_pressure WHERE model = ? "
                                "ORDER BY message_id", [model_key]).fetchall()
        else:  # a few messages: look each up (in a temporary table, whose writes open a transaction: ended below)
            outside = not conn.in_transaction
            conn.execute("DROP TABLE IF EXISTS temp.pressure_lookup")
            conn.execute("CREATE TEMP TABLE pressure_lookup (message_id INTEGER PRIMARY KEY)")
            conn.executemany("INSERT OR IGNORE INTO temp.pressure_lookup VALUES (?)", ((int(i),) for i in ids))
            rows = conn.execute(
                "SELECT p.message_id, p.probability FROM message_pressure p JOIN temp.pressure_lookup l "
                "ON l.message_id = p.message_id WHERE p.model = ? ORDER BY p.message_id", [model_key]).fetchall()
            conn.execute("DROP TABLE temp.pressure_lookup")
            if outside and conn.in_transaction:  # one this left open would pin this connection's snapshot
                conn.commit()
        known_ids = np.array([r[0] for r in rows], dtype=np.int64)
        known_p = np.array([r[1] for r in rows], dtype=float)
        at = np.minimum(np.searchsorted(known_ids, ids), max(len(known_ids) - 1, 0))
        hit = known_ids[at] == ids if len(known_ids) else np.zeros(len(ids), dtype=bool)
        probability = pd.Series(np.where(hit, known_p[at] if len(known_ids) else np.nan, np.nan),
                                index=messages.index)
        missing = probability.isna().to_numpy()
        if missing.any():
            fresh = score_messages(messages[missing])
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
    conn = db.conn
    conn.execute("DROP TABLE IF EXISTS temp.score_lookup")
    conn.execute("CREATE TEMP TABLE score_lookup (order_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT OR IGNORE INTO temp.score_lookup VALUES (?)", ((o,) for o in order_ids))
    rows = conn.execute("SELECT order_id, score FROM scores JOIN temp.score_lookup USING (order_id)").fetchall()
    conn.execute("DROP TABLE temp.score_lookup")
    return pd.Series({o: s for o, s in rows}, dtype=float)


def _record(db: sqlite_utils.Database, model_id: str, as_of: datetime, frame: pd.DataFrame, full: bool,
            untracked: Iterable[str] = (), later: Callable[[], pd.DataFrame] | None = None) -> None:
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
                _insert_scores(db, rows, model_id, scored_at)
            for sql in indexes:  # before `later`'s few rows: while the thread working them out still runs
                conn.execute(sql)
            rest = later() if later is not None else None
            if rest is not None and not rest.empty:
                _insert_scores(db, _rows_in_key_order(rest), model_id, scored_at)
            if full or get_meta(db, META_MODEL) is None:
                set_meta(db, META_MODEL, model_id)
            set_meta(db, META_AS_OF, scored_at)
    finally:
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")


def _insert_scores(db: sqlite_utils.Database, columns: score_writer.ScoreColumns, model_id: str,
                   scored_at: str) -> None:
    score_writer.insert_scores(db.conn, columns, model_id, scored_at)


def _rows_in_key_order(frame: pd.DataFrame) -> score_writer.ScoreColumns:
    """The frame's rows (order_id, score, codes, reasons) as columns in order-id order (see
    `score_writer.KeyOrder`)."""
    return score_writer.rows_in_key_order(frame["order_id"].to_numpy(dtype=object), frame["score"].to_numpy(),
                                          frame["codes"].to_numpy(dtype=object),
                                          frame["reasons"].to_numpy(dtype=object))


# --------------------------------------------------------------------------------------------- reasons

def _groups() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(FEATURES):
        groups.setdefault(FEATURE_GROUPS[name], []).append(index)
    return groups


def explain(classifier: Any, features: pd.DataFrame, matrix: np.ndarray, score: np.ndarray, *, min_score: float,
            max_reasons: int, min_contribution: float) -> list[str]:
    """Top reasons per order as JSON text: the feature groups whose reset to the median lowers the score most.

    An order whose score rests on several findings that each suffice (no single reset moves it) is explained
    by those flags together: the drop when all of them are reset, shared out in proportion to what each one
    alone adds to an order without the others (see `_shared_flag_drops`).
    """
    reasons = ["[]"] * len(score)
    rows = np.flatnonzero(score >= min_score)
    reference = getattr(classifier, "reference_", None)
    if not len(rows) or reference is None:
        return reasons
    sub = matrix[rows]
    names: list[str] = []
    drops = np.zeros((len(rows), 0))
    n_flags = FEATURES.index("n_flags")
    # binned once: a reset group's bins are the reference's bins (binning is per value), so most groups
    # skip binning their rows again
    bins = classifier.bins(sub) if hasattr(classifier, "bins") else None
    reference_bins = classifier.bins(reference[None, :])[0] if bins is not None else None
    # and each tree's part of every score: resetting a group walks again only the trees that test it
    trees = classifier.tree_values(bins) if bins is not None else None
    for name, columns in _groups().items():
        if name == "flag_count":  # the count is explained by the flags that make it up, one by one
            continue
        changed = ~np.all((sub[:, columns] == reference[columns]) |
                          (np.isnan(sub[:, columns]) & np.isnan(reference[columns])), axis=1)
        drop = np.zeros(len(rows))
        if not changed.any():
            pass
        elif bins is not None and not name.startswith("flag:"):
            reset_bins = bins[changed]
            reset_bins[:, columns] = reference_bins[columns]
            drop[changed] = score[rows][changed] - classifier.fraud_probability_replacing(
                reset_bins, trees[:, changed], columns)
        else:  # a flag's few orders: n_flags changes too, and is binned anew with the rest of the row
            reset = sub[changed].copy()
            reset[:, columns] = reference[columns]
            if name.startswith("flag:"):  # without this flag the order also has one flag fewer
                reset[:, n_flags] -= sub[changed][:, columns[0]] - reference[columns[0]]
            if bins is None:
                drop[changed] = score[rows][changed] - _fraud_probability(classifier, reset)
            else:
                drop[changed] = score[rows][changed] - classifier.fraud_probability_replacing(
                    classifier.bins(np.asfortranarray(reset)), trees[:, changed], [*columns, n_flags])
        drops = np.column_stack([drops, drop])
        names.append(name)

    best = np.argsort(-drops, axis=1)[:, :max_reasons]
    chosen = np.take_along_axis(drops, best, axis=1) >= min_contribution
    saturated = ~chosen.any(axis=1)
    flag_groups = [j for j, name in enumerate(names) if name.startswith("flag:")]
    flag_columns = [FEATURES.index(f"flag_{names[j][5:]}") for j in flag_groups]
    active = (sub[:, flag_columns] != 0) & saturated[:, None]
    shared = _shared_flag_drops(classifier, sub, score[rows], active, flag_columns, reference, n_flags)

    # every reason shown as (order, group, weight, suffix): an order's own top groups (in order of weight), or
    # for a saturated order its heaviest shares of the flags (equal shares keep the flags' own order)
    order, slot = np.nonzero(chosen)
    group = best[order, slot]
    weight = drops[order, group]
    suffix = np.zeros(len(order), dtype=bool)
    several = np.flatnonzero(active.any(axis=1))
    if len(several):
        mine = active[several]
        ranked = np.argsort(np.where(mine, -shared[several], np.inf), axis=1, kind="stable")[:, :max_reasons]
        at, place = np.nonzero(np.take_along_axis(mine, ranked, axis=1))
        flag = ranked[at, place]
        order = np.concatenate([order, several[at]])
        group = np.concatenate([group, np.asarray(flag_groups, dtype=np.int64)[flag]])
        weight = np.concatenate([weight, shared[several[at], flag]])
        suffix = np.concatenate([suffix, np.ones(len(at), dtype=bool)])
    # each group's phrases over all its orders at once, then each order's reasons as JSON text
    phrase = np.empty(len(order), dtype=object)
    for j in np.unique(group).tolist():
        mask = group == j
        phrase[mask] = describe_many(names[j], features.iloc[rows[order[mask]]])
    pieces = _reason_json([names[j] for j in group.tolist()], phrase.tolist(), suffix.tolist(), weight.tolist())
    sort = np.argsort(order, kind="stable")  # by order; within one, in the order found above
    order = order[sort]
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]]) if len(order) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(order)]
    pieces = [pieces[k] for k in sort.tolist()]
    for i, a, b in zip(order[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        reasons[rows[i]] = "[" + ", ".join(pieces[a:b]) + "]"
    return reasons


_SEVERAL = " (one of several that each suffice)"


def _reason_json(features: list[str], phrases: list[str], several: list[bool], weights: list[float]) -> list[str]:
    """`json.dumps({"feature": f, "text": phrase (+ the 'one of several' note), "weight": round(w, 3)})` per
    reason, character for character, without building a dict per reason."""
    text = json.encoder.encode_basestring_ascii  # what json.dumps uses for strings (ensure_ascii)
    quoted = {name: text(name) for name in set(features)}
    return ['{"feature": ' + quoted[f] + ', "text": ' + text(p + _SEVERAL if s else p) + ', "weight": '
            + _number(round(w, 3)) + "}"
            for f, p, s, w in zip(features, phrases, several, weights, strict=True)]


def _number(value: float) -> str:
    """A float as json.dumps writes it."""
    return repr(value) if value - value == 0 else json.dumps(value)


def _fraud_probability(classifier: Any, matrix: np.ndarray) -> np.ndarray:
    """The classifier's fraud probability per row, given the rows column-major: each tree tests one feature
    across all rows, so a column read in sequence is several times faster than the strided rows a fancy-indexed
    copy would hand over. The values are the same either way."""
    return classifier.predict_proba(np.asfortranarray(matrix))[:, 1]


def _shared_flag_drops(classifier: Any, sub: np.ndarray, score: np.ndarray, active: np.ndarray,
                       flag_columns: list[int], reference: np.ndarray, n_flags: int) -> np.ndarray:
    """For each order and each of its `active` flags, that flag's share of the score's drop when all of them are
    reset together. Shares follow what each flag alone adds to the order with the others reset (equal shares
    when none adds anything alone). Two batched predictions, no per-order loop."""
    shared = np.zeros(active.shape)
    orders = np.flatnonzero(active.any(axis=1))
    if not len(orders):
        return shared
    mine = active[orders]
    base = sub[orders]
    cleared = base.copy()
    for k, column in enumerate(flag_columns):
        on = mine[:, k]
        cleared[on, column] = reference[column]
        cleared[on, n_flags] -= base[on, column] - reference[column]
    p_cleared = _fraud_probability(classifier, cleared)
    # one row per (order, flag): the order with only that one of its flags put back
    who, which = np.nonzero(mine)
    alone = cleared[who].copy()
    columns = np.asarray(flag_columns)[which]
    alone[np.arange(len(who)), columns] = base[who, columns]
    alone[:, n_flags] += base[who, columns] - reference[columns]
    adds = np.zeros(mine.shape)
    adds[who, which] = np.clip(_fraud_probability(classifier, alone) - p_cleared[who], 0.0, None)
    total = adds.sum(axis=1, keepdims=True)
    share = np.where(total > 0, adds / np.where(total > 0, total, 1.0), mine / mine.sum(axis=1, keepdims=True))
    shared[orders] = share * (score[orders] - p_cleared)[:, None] * mine
    return shared


def _values(rows: pd.DataFrame, name: str) -> list[float | None]:
    """A feature column as Python floats, None where missing."""
    values = rows[name].to_numpy(dtype=float)
    return [None if v != v else v for v in values.tolist()]


def describe_many(group: str, rows: pd.DataFrame) -> list[str]:
    """One English phrase per order (a row of features) for a reason group, with the order's own numbers,
    formatted column by column."""
    if group.startswith("flag:"):
        return [f"rule flag {group[5:]}"] * len(rows)

    def v(name: str) -> list[float | None]:
        return _values(rows, name)

    def count(name: str) -> list[int]:
        return [int(x or 0) for x in v(name)]

    if group == "transit":
        return [("no delivered scan yet" if days is None else f"delivered {days:.1f} days after the first scan"
                 + (f" ({ratio:.0%} of the route's median)" if ratio is not None else ""))
                for days, ratio in zip(v("accept_to_delivered_days"), v("transit_vs_route_median"), strict=True)]
    if group == "first_scan":
        return ["no carrier event yet" if days is None else f"first carrier event {days:+.1f} days from the order"
                for days in v("order_to_first_scan_days")]
    if group == "customs":
        return [f"{e} export and {i} import customs scans" for e, i in zip(count("n_export"), count("n_import"),
                                                                            strict=True)]
    if group == "scans":
        return [f"{s} physical scans, {e} events" for s, e in zip(count("n_scans"), count("n_events"), strict=True)]
    if group == "stale":
        return [f"no new scan for {quiet:.0f} days" if quiet is not None else f"order {age or 0:.0f} days old"
                for quiet, age in zip(v("days_since_last_event"), v("order_age_days"), strict=True)]
    if group == "destination":
        text = {0.0: "another country", 0.5: "another city or postcode", 1.0: "the right country only",
                2.0: "the right city", 3.0: "the right postcode"}
        return ["delivered scan at " + (text.get(level, "an unknown place") if level is not None else "no known place")
                for level in v("dest_match_level")]
    if group == "confirmation":
        return ["buyer confirmed receipt before any delivered scan" if early
                else f"buyer confirmed {days:.1f} days after the delivered scan" if days is not None
                else "buyer has not confirmed receipt"
                for early, days in zip(v("confirmed_before_delivery"), v("confirm_minus_delivered_days"), strict=True)]
    if group == "buyer_says":
        said = {1.0: "buyer says it arrived", 0.0: "buyer says it did not arrive"}
        return [said.get(x, "buyer has not said") for x in v("buyer_received")]
    if group == "reuse":
        return [f"tracking number on {o} orders of {b} buyers"
                for o, b in zip(count("orders_on_number"), count("buyers_on_number"), strict=True)]
    if group == "messages":
        return [f"seller messages: pressure probability {p or 0:.0%}" for p in v("msg_pressure_max")]
    if group == "seller":
        return [", ".join([f"seller with {n} orders"]
                          + ([f"{rate:.0%} of the others flagged"] if rate is not None else [])
                          + ([f"{fast:.0%} delivered within 6 days"] if fast is not None else [])
                          + ([f"median transit {median:.1f} days"] if median is not None else []))
                for n, rate, fast, median in zip(count("seller_n_orders"), v("seller_flag_rate"),
                                                 v("seller_fast_share"), v("seller_median_transit"), strict=True)]
    if group == "buyer":
        return [f"buyer with {n} orders, {f} others flagged, {r} others not received"
                for n, f, r in zip(count("buyer_n_orders"), count("buyer_flagged_other"),
                                   count("buyer_not_received_other"), strict=True)]
    if group == "flag_count":
        return [f"{n} rule flags" for n in count("n_flags")]
    if group == "delivery":
        return ["delivered" if d else "not delivered" for d in v("delivered")]
    if group == "carrier":
        return ["carrier"] * len(rows)
    if group == "order":
        return [f"promised {d or 0:.0f} days" for d in v("promised_days")]
    return [group] * len(rows)
