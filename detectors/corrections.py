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
    present = [i for i, n in enumerate(numbers) if isinstance(n, str) and n]
    distinct = list(dict.fromkeys(numbers[i] for i in present))
    valid_of = dict(zip(distinct, valid_many(distinct), strict=True))
    # number_valid: the number as written holds a known format (False also for no number)
    frame["number_valid"] = np.fromiter((isinstance(n, str) and valid_of.get(n, False) for n in numbers),
                                        dtype=bool, count=len(numbers))
    invalid = {str(frame.at[frame.index[i], "order_id"]): frame.index[i]
               for i in present if not valid_of[numbers[i]]}
    if not invalid:
        return frame
    marks = ", ".join("?" for _ in invalid)
    messages = conn.execute(
        f"SELECT id, order_id, text FROM messages WHERE lower(sender) = 'seller' AND order_id IN ({marks}) "
        "ORDER BY sent_at DESC, id DESC", list(invalid)).fetchall()
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
