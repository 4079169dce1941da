"""Scores orders with the active classifier and writes `scores` (order_id, score, codes, reasons, model_id).

Incremental by default: the orders `detect` examined are rescored, and so are the other orders of their
sellers whose score moved by at least `seller_rescore_delta` (a seller's aggregates, such as their flag
rate, change with every order of theirs, and feed every one of their scores). A model whose id differs
from the one the scores were made with (meta `scores_model_id`) makes the next run rescore every order.

Reasons: for an order scoring at least `reasons_min_score`, each feature group (one flag, the transit
times, the seller's aggregates, ...) is set back to the training population's median and the order
rescored; the groups whose reset lowers the score most are its top reasons, stored as JSON
`[{"feature", "text", "weight"}]`. One batched prediction per group: no per-order loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils

from detectors.features import FEATURE_GROUPS, FEATURES, MessageScorer, load_order_frame, score_messages
from tracker import config
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
    settings = config.load("model").get("scoring", {})
    full = full or get_meta(db, META_MODEL) != loaded.model_id
    if not full and not order_ids:
        return set()
    refresh_shipment_facts(db)
    frame = load_order_frame(db.conn, None if full else order_ids, as_of, message_scores=message_scorer(db))
    if frame.empty:
        _record(db, loaded.model_id, as_of, pd.DataFrame(), full)
        return set()
    tracked = frame["tracking_number"].fillna("") != ""
    untracked = set(frame.loc[~tracked & frame["target"], "order_id"])  # lost their number: lose their score
    frame = frame[tracked]
    features = loaded.model.named_steps["features"].transform_frame(frame)
    classifier = loaded.model.named_steps["classifier"]
    matrix = features.to_numpy(dtype=np.float64)
    score = classifier.predict_proba(matrix)[:, 1]
    frame = frame.assign(score=score)

    if not full:
        # the asked-for orders always; their sellers' other orders only when the score moved materially
        previous = _stored_scores(db, frame.loc[~frame["target"], "order_id"])
        moved = (frame["score"] - frame["order_id"].map(previous)).abs()
        keep = frame["target"].to_numpy() | ~(moved < float(settings.get("seller_rescore_delta", 0.01))).to_numpy()
        frame, matrix, features = frame[keep], matrix[keep], features[keep]

    reasons = explain(classifier, features, matrix, frame["score"].to_numpy(),
                      min_score=float(settings.get("reasons_min_score", 0.1)),
                      max_reasons=int(settings.get("max_reasons", 3)),
                      min_contribution=float(settings.get("min_contribution", 0.02)))
    frame = frame.assign(reasons=reasons)
    _record(db, loaded.model_id, as_of, frame, full, untracked)
    return set(frame["order_id"])


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


def message_scorer(db: sqlite_utils.Database) -> MessageScorer:
    """Scores seller messages through the `message_pressure` cache: each message once per message model."""
    from detectors import message_model, persistence

    model_key = persistence.read_metadata(message_model.MODEL_PATH)["sha256"][:16]

    def score(messages: pd.DataFrame) -> np.ndarray:
        conn = db.conn
        conn.execute("DROP TABLE IF EXISTS temp.pressure_lookup")
        conn.execute("CREATE TEMP TABLE pressure_lookup (message_id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO temp.pressure_lookup VALUES (?)", ((int(i),) for i in messages["id"]))
        known = dict(conn.execute(
            "SELECT p.message_id, p.probability FROM message_pressure p JOIN temp.pressure_lookup l "
            "ON l.message_id = p.message_id WHERE p.model = ?", [model_key]).fetchall())
        conn.execute("DROP TABLE temp.pressure_lookup")
        probability = messages["id"].map(known)
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
            untracked: Iterable[str] = ()) -> None:
    scored_at = to_db(as_of)
    rows = [] if frame.empty else list(zip(
        frame["order_id"].tolist(), np.round(frame["score"].to_numpy(), 7).tolist(), frame["codes"].tolist(),
        frame["reasons"].tolist(), [model_id] * len(frame), [scored_at] * len(frame), strict=True))
    with db.conn:
        if full:
            # a full run is the whole truth: orders that lost their tracking number lose their score
            db.execute("DELETE FROM scores")
        db.conn.executemany("DELETE FROM scores WHERE order_id = ?", ((o,) for o in untracked))
        db.conn.executemany(
            "INSERT OR REPLACE INTO scores(order_id, score, codes, reasons, model_id, scored_at) VALUES (?,?,?,?,?,?)",
            rows)
        if full or get_meta(db, META_MODEL) is None:
            set_meta(db, META_MODEL, model_id)
        set_meta(db, META_AS_OF, scored_at)


# --------------------------------------------------------------------------------------------- reasons

def _groups() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(FEATURES):
        groups.setdefault(FEATURE_GROUPS[name], []).append(index)
    return groups


def explain(classifier: Any, features: pd.DataFrame, matrix: np.ndarray, score: np.ndarray, *, min_score: float,
            max_reasons: int, min_contribution: float) -> list[str]:
    """Top reasons per order as JSON text: the feature groups whose reset to the median lowers the score most."""
    reasons = ["[]"] * len(score)
    rows = np.flatnonzero(score >= min_score)
    reference = getattr(classifier, "reference_", None)
    if not len(rows) or reference is None:
        return reasons
    sub = matrix[rows]
    drops = np.zeros((len(rows), 0))
    names: list[str] = []
    n_flags = FEATURES.index("n_flags")
    for name, columns in _groups().items():
        if name == "flag_count":  # the count is explained by the flags that make it up, one by one
            continue
        changed = ~np.all((sub[:, columns] == reference[columns]) |
                          (np.isnan(sub[:, columns]) & np.isnan(reference[columns])), axis=1)
        drop = np.zeros(len(rows))
        if changed.any():
            reset = sub[changed].copy()
            reset[:, columns] = reference[columns]
            if name.startswith("flag:"):  # without this flag the order also has one flag fewer
                reset[:, n_flags] -= sub[changed][:, columns[0]] - reference[columns[0]]
            drop[changed] = score[rows][changed] - classifier.predict_proba(reset)[:, 1]
        drops = np.column_stack([drops, drop])
        names.append(name)
    records = features.iloc[rows].to_dict("records")
    best = np.argsort(-drops, axis=1)[:, :max_reasons]
    for i, row in enumerate(rows):
        found = [{"feature": names[j], "text": describe(names[j], records[i]), "weight": round(float(drops[i, j]), 3)}
                 for j in best[i] if drops[i, j] >= min_contribution]
        if not found:  # several findings that each suffice: no single one moves the score, all of them count
            found = [{"feature": name, "text": describe(name, records[i]) + " (one of several that each suffice)",
                      "weight": round(float(drops[i, j]), 3)}
                     for j, name in enumerate(names) if name.startswith("flag:") and records[i][f"flag_{name[5:]}"]]
            found = found[:max_reasons]
        reasons[row] = json.dumps(found)
    return reasons


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


class _Numbers:
    """f[name] as a float, None when missing: read only for the names a phrase uses."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def __getitem__(self, name: str) -> float | None:
        return _num(self.values.get(name))


def describe(group: str, f: dict[str, Any]) -> str:
    """One English phrase with the order's own numbers for a reason group."""
    if group.startswith("flag:"):
        return f"rule flag {group[5:]}"
    n = _Numbers(f)
    if group == "transit" and n["accept_to_delivered_days"] is not None:
        ratio = n["transit_vs_route_median"]
        return (f"delivered {n['accept_to_delivered_days']:.1f} days after the first scan"
                + (f" ({ratio:.0%} of the route's median)" if ratio is not None else ""))
    if group == "transit":
        return "no delivered scan yet"
    if group == "first_scan" and n["order_to_first_scan_days"] is not None:
        return f"first carrier event {n['order_to_first_scan_days']:+.1f} days from the order"
    if group == "first_scan":
        return "no carrier event yet"
    if group == "customs":
        return f"{int(n['n_export'] or 0)} export and {int(n['n_import'] or 0)} import customs scans"
    if group == "scans":
        return f"{int(n['n_scans'] or 0)} physical scans, {int(n['n_events'] or 0)} events"
    if group == "stale":
        if n["days_since_last_event"] is not None:
            return f"no new scan for {n['days_since_last_event']:.0f} days"
        return f"order {n['order_age_days'] or 0:.0f} days old"
    if group == "destination":
        level = n["dest_match_level"]
        text = {0.0: "another country", 0.5: "another city or postcode", 1.0: "the right country only",
                2.0: "the right city", 3.0: "the right postcode"}
        return "delivered scan at " + (text.get(level, "an unknown place") if level is not None else "no known place")
    if group == "confirmation":
        if n["confirmed_before_delivery"]:
            return "buyer confirmed receipt before any delivered scan"
        if n["confirm_minus_delivered_days"] is not None:
            return f"buyer confirmed {n['confirm_minus_delivered_days']:.1f} days after the delivered scan"
        return "buyer has not confirmed receipt"
    if group == "buyer_says":
        said = n["buyer_received"]
        return {1.0: "buyer says it arrived", 0.0: "buyer says it did not arrive"}.get(said, "buyer has not said")
    if group == "reuse":
        return f"tracking number on {int(n['orders_on_number'] or 0)} orders of {int(n['buyers_on_number'] or 0)} buyers"
    if group == "messages":
        return f"seller messages: pressure probability {n['msg_pressure_max'] or 0:.0%}"
    if group == "seller":
        parts = [f"seller with {int(n['seller_n_orders'] or 0)} orders"]
        if n["seller_flag_rate"] is not None:
            parts.append(f"{n['seller_flag_rate']:.0%} of the others flagged")
        if n["seller_fast_share"] is not None:
            parts.append(f"{n['seller_fast_share']:.0%} delivered within 6 days")
        if n["seller_median_transit"] is not None:
            parts.append(f"median transit {n['seller_median_transit']:.1f} days")
        return ", ".join(parts)
    if group == "buyer":
        return (f"buyer with {int(n['buyer_n_orders'] or 0)} orders, {int(n['buyer_flagged_other'] or 0)} others "
                f"flagged, {int(n['buyer_not_received_other'] or 0)} others not received")
    if group == "flag_count":
        return f"{int(n['n_flags'] or 0)} rule flags"
    if group == "delivery":
        return "delivered" if n["delivered"] else "not delivered"
    if group == "carrier":
        return "carrier"
    if group == "order":
        return f"promised {n['promised_days'] or 0:.0f} days"
    return group
