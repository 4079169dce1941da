"""The order frame: what rules and features read, one row per order (vectorised predicates, not loops).

Its columns, whichever reader built it (`tracker.detection.readers`):

- from `orders`: ORDER_COLUMNS, and ORDER_TIMES as Julian days;
- from `shipments`: shipment_state, not_found_count (0 without a shipment row);
- the facts of the order's tracking number (`detectors.facts.FACTS`: 0 / NaN / None when it has no event);
- n_orders_on_number: how many orders of the whole store carry the same number (rules' frame).

Times are **Julian days** (float, UTC; NaN when unknown): subtracting two gives days. `jd_to_text` turns
one back into the store's canonical text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a frame is read: a child reader of facts never needs it
    import pandas as pd

# Scans a carrier makes when it handles the parcel (not label creation, not a lookup failure)
PHYSICAL_STATUSES = (
    "in_transit",
    "out_for_delivery",
    "available_for_pickup",
    "delivery_failed",
    "delivered",
    "exception",
    "returned",
)
_JD_UNIX_EPOCH = 2440587.5

ORDER_COLUMNS = ("order_id", "buyer_id", "seller_id", "dest_country", "dest_city", "dest_postcode", "tracking_number",
                 "carrier", "promised_days", "buyer_received", "amount")
ORDER_TIMES = ("ordered_jd", "shipped_jd", "confirmed_jd")
SHIPMENT_COLUMNS = ("shipment_state", "not_found_count")


def jd_to_datetime(jd: float) -> datetime | None:
    if jd is None or (isinstance(jd, float) and np.isnan(jd)):
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=round((jd - _JD_UNIX_EPOCH) * 86400))


def jd_to_text(jd: float) -> str:
    """Canonical store text ('2026-09-14T10:00:00Z') of a Julian day, '' when unknown."""
    dt = jd_to_datetime(jd)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else ""


def jd_to_texts(jds: np.ndarray) -> list[str]:
    """`jd_to_text` of each Julian day, at once (the same rounding to the second: half to even)."""
    jds = np.asarray(jds, dtype=float)
    seconds = np.round((jds - _JD_UNIX_EPOCH) * 86400)
    plain = np.isfinite(seconds) & (seconds >= -30610224000) & (seconds < 253402300800)  # years 1000 to 9999
    out = np.full(len(jds), "", dtype=object)
    if plain.any():
        stamps = np.datetime_as_string(seconds[plain].astype("datetime64[s]"), unit="s")
        out[plain] = np.char.add(stamps, "Z").astype(object)
    for i in np.flatnonzero(~plain):
        out[i] = jd_to_text(float(jds[i]))
    return out.tolist()


def jd_to_date(jd: float) -> str:
    dt = jd_to_datetime(jd)
    return dt.strftime("%Y-%m-%d") if dt else "?"


def datetime_to_jd(dt: datetime) -> float:
    return dt.timestamp() / 86400 + _JD_UNIX_EPOCH


def has_number(values: pd.Series) -> np.ndarray:
    """Per row, whether the order carries a tracking number (non-empty text); a categorical column is read from
    its codes (each distinct number looked at once, no text per row made)."""
    import pandas as pd

    if not isinstance(values.dtype, pd.CategoricalDtype):
        # two passes in C over the rows: a million numbers are nearly all distinct, a factorisation finds no repeats
        array = values.to_numpy(dtype=object)
        numbered = np.fromiter(map(isinstance, array, repeat(str)), dtype=bool, count=len(array))
        numbered[numbered] = array[numbered] != ""  # only texts compared: pd.NA has no truth value
        return numbered
    codes, uniques = values.cat.codes.to_numpy(), values.cat.categories.to_numpy(dtype=object)
    return np.array([isinstance(u, str) and u != "" for u in uniques] + [False], dtype=bool)[codes]


def orders_on_number(values: pd.Series) -> np.ndarray:
    """Per row, how many rows of the frame carry the same (non-empty) number: 0 without one."""
    import pandas as pd

    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    filled = np.array([isinstance(u, str) and u != "" for u in uniques] + [False], dtype=bool)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return np.where(filled[codes], np.r_[counts, 0][codes], 0).astype(np.int64)
