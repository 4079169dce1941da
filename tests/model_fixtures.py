"""A small store the classifier tests build for themselves: orders, scans, flags and messages with labels.

Honest sellers ship parcels that take 10-25 days through customs; a few fraudulent sellers deliver in 1-3
days without customs scans or reuse numbers across buyers. Flags are written the way the rules would
(some innocent orders carry them too, and some fraud carries none), so a classifier has something to
beat a flag count on. No dependency on the world generator or the rules engine.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlite_utils

from tracker.timeutil import to_db

START = datetime(2026, 3, 1, tzinfo=UTC)
AS_OF = datetime(2026, 7, 1, tzinfo=UTC)


def _event(
    number: str, at: datetime, status: str, code: str, country: str, city: str = "", postcode: str = ""
) -> dict:
    return {
        "tracking_number": number,
        "occurred_at": to_db(at),
        "status": status,
        "raw_code": code,
        "description": code.lower(),
        "country": country,
        "city": city,
        "postcode": postcode,
        "carrier": "cainiao",
        "event_key": f"{number}|{to_db(at)}|{code}",
    }


def build_store(db: sqlite_utils.Database, n_orders: int = 600, seed: int = 1) -> pd.DataFrame:
    """Fill the store; return the labels (order_id, fraud, pattern)."""
    rng = random.Random(seed)
    sellers = [f"S{i:02d}" for i in range(20)]
    fraud_sellers = set(sellers[:4])
    orders, events, flags, messages, labels = [], [], [], [], []
    reused_number = None
    for i in range(n_orders):
        order_id = f"O{i:05d}"
        seller = rng.choice(sellers)
        buyer = f"B{rng.randrange(n_orders // 2):04d}"
        ordered = START + timedelta(hours=i * 4 + rng.random())
        number = f"LP{100000000000 + i}"
        fraud = seller in fraud_sellers and rng.random() < 0.7
        pattern = ""
        first = ordered + timedelta(days=1 + rng.random())
        if fraud:
            pattern = rng.choice(["fast", "reuse", "fast"])
            if pattern == "reuse":
                reused_number = reused_number if reused_number and rng.random() < 0.7 else number
                number = reused_number
            transit = rng.uniform(1, 3)
            path = [("in_transit", "PU_PICKUP_SUCCESS", "CN")]
        else:
            transit = rng.uniform(10, 25)
            path = [
                ("in_transit", "PU_PICKUP_SUCCESS", "CN"),
                ("in_transit", "CC_EX_SUCCESS", "CN"),
                ("in_transit", "LH_DEPART", "CN"),
                ("in_transit", "CC_IM_SUCCESS", "FR"),
            ]
        delivered = first + timedelta(days=transit)
        events.append(_event(number, first, "info_received", "GWMS_ACCEPT", "CN"))
        for k, (status, code, country) in enumerate(path):
            events.append(
                _event(
                    number, first + timedelta(days=transit * (k + 1) / (len(path) + 1)), status, code, country
                )
            )
        delivered_now = delivered < AS_OF
        if delivered_now:
            events.append(_event(number, delivered, "delivered", "GTMS_SIGNED", "FR", "Paris", "75001"))
        orders.append(
            {
                "order_id": order_id,
                "buyer_id": buyer,
                "seller_id": seller,
                "ordered_at": to_db(ordered),
                "dest_country": "FR",
                "dest_city": "Paris",
                "dest_postcode": "75001",
                "tracking_number": number,
                "carrier": "cainiao",
                "shipped_at": to_db(ordered + timedelta(hours=20)),
                "promised_days": 30,
                "buyer_received": ("no" if fraud and rng.random() < 0.3 else ""),
                "amount": round(rng.uniform(2, 80), 2),
                "seq": 1,
            }
        )
        if (fraud and rng.random() < 0.75) or (not fraud and rng.random() < 0.08):
            flags.append(
                {
                    "order_id": order_id,
                    "code": "impossible_transit",
                    "severity": "high",
                    "explanation": "fast",
                    "detected_at": to_db(AS_OF),
                    "rule_version": "test",
                }
            )
        if fraud and rng.random() < 0.3:
            messages.append(
                {
                    "order_id": order_id,
                    "sender": "seller",
                    "sent_at": to_db(first),
                    "text": "please confirm receipt now, the parcel will arrive soon",
                    "message_key": f"m{i}",
                }
            )
        elif rng.random() < 0.2:
            messages.append(
                {
                    "order_id": order_id,
                    "sender": "seller",
                    "sent_at": to_db(first),
                    "text": "your parcel has been shipped, tracking will update in 5 days",
                    "message_key": f"m{i}",
                }
            )
        labels.append({"order_id": order_id, "fraud": int(fraud), "pattern": pattern})
    with db.conn:
        db["orders"].insert_all(orders)
        db["tracking_events"].insert_all(events, ignore=True)
        db["flags"].insert_all(flags)
        db["messages"].insert_all(messages)
    # a second fraud flag for reused numbers, as the rules would raise it
    with db.conn:
        db.execute(
            """INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, rule_version)
            SELECT order_id, 'tracking_reused', 'high', 'reused', ?, 'test' FROM orders WHERE tracking_number IN
            (SELECT tracking_number FROM orders GROUP BY tracking_number HAVING count(DISTINCT buyer_id) > 1)""",
            [to_db(AS_OF)],
        )
    return pd.DataFrame(labels)


def plain_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with categorical text columns (the whole-store read's) as object text, None where missing, as
    the SQL path gives them: to compare the two paths' values."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            values = out[name].astype(object)
            out[name] = values.where(values.notna(), None).astype(object)
    return out


def stored_scores(db: sqlite_utils.Database) -> list[tuple]:
    """Every row of `scores`, by order id."""
    return db.execute("SELECT order_id, score, codes, reasons, model_id, scored_at FROM scores "
                      "ORDER BY order_id").fetchall()


def score_index(db: sqlite_utils.Database) -> str | None:
    """The SQL of the (partial) score index, None when there is none."""
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'idx_scores_high'").fetchone()
    return row[0] if row else None
