"""Tracking numbers corrected in the chat: "sorry, wrong number, the correct one is RR123456785CN".

A seller (or a buyer copying it) sometimes writes a number with a typo and then gives the right one in a
message. When an order's number is invalid and one of its seller's messages names a valid number that
the carrier knows (it has scans in the store), the order is judged on that number instead; the number
as written stays in `tracking_number_given`.
"""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pandas as pd

from detectors import view
from detectors.tracking_numbers import normalize_number, valid_many, validate

# candidate tokens: S10, Cainiao LP, YunExpress YT, UPS 1Z, USPS digits (spaces inside are allowed)
_TOKEN = re.compile(r"\b(?:[A-Za-z]{2}\s?\d{3}\s?\d{3}\s?\d{3}\s?[A-Za-z]{2}|LP\d{12,14}|YT\d{16}|1Z[0-9A-Z]{16}|"
                    r"(?:420\d{5,9})?9[2-5]\d{18,32})\b", re.I)


def numbers_in(text: str) -> list[str]:
    """Valid tracking numbers written in a message, normalised, in order of appearance."""
    found = [normalize_number(m.group(0)) for m in _TOKEN.finditer(text or "")]
    return [n for n in dict.fromkeys(found) if validate(n).valid]


def apply_corrections(conn: sqlite3.Connection, frame: pd.DataFrame, kinds: view.ScanKinds) -> pd.DataFrame:
    """Replace, in `frame` itself, invalid numbers by the valid, scanned number a seller message gives.

    Works in place (and returns the frame): at a million orders a copy costs hundreds of MB of peak memory.
    """
    frame["tracking_number_given"] = frame["tracking_number"]
    frame["corrected_by_message_id"] = None
    numbers = frame["tracking_number"].to_numpy(dtype=object)
    # each distinct number validated once; codes -1: no number
    codes, distinct = pd.factorize(numbers, use_na_sentinel=True)
    distinct = [n if isinstance(n, str) else "" for n in distinct]
    valid_of = np.array(valid_many(distinct) + [False], dtype=bool)
    present_of = np.array([n != "" for n in distinct] + [False], dtype=bool)
    # number_valid: the number as written holds a known format (False also for no number)
    frame["number_valid"] = valid_of[codes]
    rows = np.flatnonzero(present_of[codes] & ~valid_of[codes])
    invalid = dict(zip(frame["order_id"].to_numpy(dtype=object)[rows].tolist(), frame.index[rows], strict=True))
    if not invalid:
        return frame
    conn.execute("DROP TABLE IF EXISTS temp.correction_orders")
    conn.execute("CREATE TEMP TABLE correction_orders (order_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT OR IGNORE INTO temp.correction_orders VALUES (?)", ((o,) for o in invalid))
    # a temp table, not an IN list: a big store has more invalid numbers than SQLite allows parameters
    messages = conn.execute(
        "SELECT m.id, m.order_id, m.text FROM temp.correction_orders c CROSS JOIN messages m "
        "ON m.order_id = c.order_id WHERE lower(m.sender) = 'seller' ORDER BY m.sent_at DESC, m.id DESC").fetchall()
    conn.execute("DROP TABLE temp.correction_orders")
    chosen: dict[str, tuple[str, int]] = {}
    for message_id, order_id, text in messages:
        if order_id in chosen:
            continue
        for number in numbers_in(text):
            if conn.execute("SELECT 1 FROM tracking_events WHERE tracking_number = ? LIMIT 1", [number]).fetchone():
                chosen[order_id] = (number, message_id)
                break
    if not chosen:
        return frame
    replacement = {number for number, _ in chosen.values()}
    marks = ", ".join("?" for _ in replacement)
    aggregates = view._frame(conn, view.tracking_aggregates_sql(kinds, f"WHERE tracking_number IN ({marks})"),
                             sorted(replacement)).set_index("tracking_number")
    counts = dict(conn.execute(f"SELECT tracking_number, count(*) FROM orders WHERE tracking_number IN ({marks}) "
                               "GROUP BY tracking_number", sorted(replacement)).fetchall())
    for order_id, (number, message_id) in chosen.items():
        idx = invalid[order_id]
        frame.at[idx, "tracking_number"] = number
        frame.at[idx, "number_valid"] = True
        frame.at[idx, "corrected_by_message_id"] = int(message_id)
        frame.at[idx, "n_orders_on_number"] = int(counts.get(number, 0)) + 1
        if number in aggregates.index:
            for col in view.AGGREGATE_COLUMNS:
                frame.at[idx, col] = aggregates.at[number, col]
    return frame
