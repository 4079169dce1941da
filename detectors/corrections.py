"""Tracking numbers corrected in the chat: "sorry, wrong number, the correct one is RR123456785CN".

A seller (or a buyer copying it) sometimes writes a number with a typo and then gives the right one in a
message. When an order's number is invalid and one of its seller's messages names a valid number that
the carrier knows (it has scans in the store), the order is judged on that number instead; the number
as written stays in `tracking_number_given`.

Pure: the caller hands over the seller messages of the orders with an invalid number and two lookups into
the store (which numbers have scans; the facts of numbers), see `apply_corrections`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from detectors.tracking_numbers import normalize_number, valid_many, validate

# candidate tokens: S10, Cainiao LP, YunExpress YT, UPS 1Z, USPS digits (spaces inside are allowed)
_TOKEN = re.compile(r"\b(?:[A-Za-z]{2}\s?\d{3}\s?\d{3}\s?\d{3}\s?[A-Za-z]{2}|LP\d{12,14}|YT\d{16}|1Z[0-9A-Z]{16}|"
                    r"(?:420\d{5,9})?9[2-5]\d{18,32})\b", re.I)

# which of these numbers have scans in the store
Known = Callable[[set[str]], set[str]]
# the facts of these numbers, one row each (tracking_number, the facts, n_orders: orders carrying it)
FactsOf = Callable[[set[str]], pd.DataFrame]
# the seller messages of these orders, newest first: id, order_id, text
MessagesOf = Callable[[list[str]], pd.DataFrame]


def numbers_in(text: str) -> list[str]:
    """Valid tracking numbers written in a message, normalised, in order of appearance."""
    found = [normalize_number(m.group(0)) for m in _TOKEN.finditer(text or "")]
    return [n for n in dict.fromkeys(found) if validate(n).valid]


def invalid_orders(frame: pd.DataFrame) -> dict[str, int]:
    """Sets `tracking_number_given`, `corrected_by_message_id` and `number_valid` (the number as written holds a
    known format; False also for no number) on the frame, in place; returns the orders with a number that is
    not valid: order id -> row label."""
    frame["tracking_number_given"] = frame["tracking_number"]
    frame["corrected_by_message_id"] = None
    numbers = frame["tracking_number"].to_numpy(dtype=object)
    # each distinct number validated once; codes -1: no number
    codes, distinct = pd.factorize(numbers, use_na_sentinel=True)
    distinct = [n if isinstance(n, str) else "" for n in distinct]
    valid_of = np.array(valid_many(distinct) + [False], dtype=bool)
    present_of = np.array([n != "" for n in distinct] + [False], dtype=bool)
    frame["number_valid"] = valid_of[codes]
    rows = np.flatnonzero(present_of[codes] & ~valid_of[codes])
    return dict(zip(frame["order_id"].to_numpy(dtype=object)[rows].tolist(), frame.index[rows], strict=True))


def chosen_numbers(messages: pd.DataFrame, known: Known) -> dict[str, tuple[str, int]]:
    """Per order, the number its newest seller message naming a valid, scanned number gives, with that message's
    id. `messages`: id, order_id, text, newest first."""
    candidates: list[tuple[str, int, list[str]]] = []
    for message_id, order_id, text in messages[["id", "order_id", "text"]].itertuples(index=False, name=None):
        named = numbers_in(text if isinstance(text, str) else "")
        if named:
            candidates.append((order_id, int(message_id), named))
    scanned = known({n for _, _, named in candidates for n in named}) if candidates else set()
    chosen: dict[str, tuple[str, int]] = {}
    for order_id, message_id, named in candidates:
        if order_id in chosen:
            continue
        number = next((n for n in named if n in scanned), None)
        if number is not None:
            chosen[order_id] = (number, message_id)
    return chosen


def apply_corrections(frame: pd.DataFrame, messages_of: MessagesOf, known: Known, facts_of: FactsOf,
                      fact_columns: Iterable[str]) -> pd.DataFrame:
    """Replace, in `frame` itself, invalid numbers by the valid, scanned number a seller message gives, with that
    number's facts (`fact_columns`) and order count.

    Works in place (and returns the frame): at a million orders a copy costs hundreds of MB of peak memory.
    """
    invalid = invalid_orders(frame)
    if not invalid:
        return frame
    chosen = chosen_numbers(messages_of(list(invalid)), known)
    if not chosen:
        return frame
    replacement = facts_of({number for number, _ in chosen.values()}).set_index("tracking_number")
    columns = [c for c in fact_columns if c in replacement.columns and c in frame.columns]
    order_ids = list(chosen)
    rows = frame.index.get_indexer([invalid[o] for o in order_ids])
    numbers = [chosen[o][0] for o in order_ids]
    known = np.array([n in replacement.index for n in numbers], dtype=bool)
    orders = replacement["n_orders"].reindex(numbers).fillna(0).to_numpy(dtype=np.int64) if "n_orders" in \
        replacement.columns else np.zeros(len(numbers), dtype=np.int64)
    # one assignment per column (a cell at a time costs a copy of the column each, at a million orders)
    _put(frame, "tracking_number", rows, numbers)
    _put(frame, "number_valid", rows, [True] * len(rows))
    _put(frame, "corrected_by_message_id", rows, [int(chosen[o][1]) for o in order_ids])
    _put(frame, "n_orders_on_number", rows, (orders + 1).tolist())
    if known.any():
        found = replacement.loc[[n for n, k in zip(numbers, known, strict=True) if k]]
        for col in columns:
            _put(frame, col, rows[known], found[col].tolist())
    return frame


def _put(frame: pd.DataFrame, column: str, rows: np.ndarray, values: list) -> None:
    """`frame[column]` at these row positions set to these values, in one assignment. A missing value (None: the
    facts of a number not yet delivered, say) goes into a numeric column as NaN, the column made float if it was
    not: pandas refuses None in a float64 column."""
    updated = frame[column].copy()
    if updated.dtype.kind in "fiub" and any(v is None for v in values):
        values = [np.nan if v is None else v for v in values]
        updated = updated.astype(np.float64)
    updated.iloc[rows] = values
    frame[column] = updated
