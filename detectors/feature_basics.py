"""The classifier's feature names (`FEATURES`, each with its reason group in `FEATURE_GROUPS`), which may only raise
a score (`MONOTONIC`), and the small per-value helpers both `detectors.features` (the frame) and
`detectors.order_features` (the transformer) use: a module of their own, so neither imports the other for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# Deliberately its own list, not the rule registry's: a shipped model's feature list must not change when
# a rule is added (a model trained on another feature list is refused).
FLAG_CODES = (
    "invalid_tracking_number",
    "tracking_reused",
    "wrong_destination",
    "accepted_before_order",
    "impossible_transit",
    "delivered_not_received",
    "early_confirmation",
    "seller_pressure",
    "no_tracking_progress",
)
# feature name -> reason group; a reason names the group whose values pushed the score up
FEATURE_GROUPS: dict[str, str] = {
    **{f"flag_{code}": f"flag:{code}" for code in FLAG_CODES},
    "n_flags": "flag_count",
    "accept_to_delivered_days": "transit",
    "physical_to_delivered_days": "transit",
    "order_to_delivered_days": "transit",
    "transit_vs_typical": "transit",
    "order_to_first_scan_days": "first_scan",
    "shipped_to_first_physical_days": "first_scan",
    "ship_delay_days": "first_scan",
    "n_events": "scans",
    "n_scans": "scans",
    "n_transit": "scans",
    "n_export": "customs",
    "n_import": "customs",
    "has_customs": "customs",
    "delivered": "delivery",
    "days_since_last_event": "stale",
    "order_age_days": "stale",
    "dest_match_level": "destination",
    "confirm_minus_delivered_days": "confirmation",
    "confirmed_before_delivery": "confirmation",
    "buyer_received": "buyer_says",
    "orders_on_number": "reuse",
    "buyers_on_number": "reuse",
    "promised_days": "order",
    "amount": "order",
    "msg_pressure_max": "messages",
    "n_seller_messages": "messages",
    "seller_n_orders": "seller",
    "seller_flag_rate": "seller",
    "seller_median_transit": "seller",
    "seller_fast_share": "seller",
    "seller_transit_vs_typical": "seller",
    "seller_fast_share_vs_typical": "seller",
    "seller_reuse_share": "seller",
    "seller_no_customs_share": "seller",
    "seller_not_received_share": "seller",
    "seller_pressure_share": "seller",
    "buyer_n_orders": "buyer",
    "buyer_not_received_other": "buyer",
    "buyer_flagged_other": "buyer",
}
FEATURES: tuple[str, ...] = tuple(FEATURE_GROUPS)
# evidence: a larger value never lowers a score (HistGradientBoosting's monotonic_cst; the rules prior's
# coefficients are kept >= 0 on the same features)
MONOTONIC: dict[str, int] = {
    **{f"flag_{code}": 1 for code in FLAG_CODES},
    "n_flags": 1,
    "buyers_on_number": 1,
    "msg_pressure_max": 1,
    "seller_flag_rate": 1,
    "seller_reuse_share": 1,
    "seller_not_received_share": 1,
    "seller_pressure_share": 1,
    "buyer_not_received_other": 1,
    "buyer_flagged_other": 1,
}


def per_value(values: pd.Series, fn: Callable[[str], Any], dtype: Any = np.float64) -> np.ndarray:
    """`fn(str(value))` per row ('' for a missing value), computed once per distinct value: the same result as
    `values.fillna('').astype(str)` then string methods, without pandas 3's slow string arrays."""
    codes, uniques = codes_of(values)
    mapped = np.array([fn(str(u)) for u in uniques] + [fn("")], dtype=dtype)  # code -1 (missing): fn('')
    return mapped[codes]


def zero_nan(values: np.ndarray) -> np.ndarray:
    """NaN as 0 (pandas' fillna(0): infinities stay what they are)."""
    return np.where(np.isnan(values), 0.0, values)


def answer(text: str) -> str:
    return text.strip().lower()


def codes_of(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, -1 for missing; distinct values) of a text column: a categorical column's own (the whole-store
    read's; its categories may hold values no row uses), else `pandas.factorize`'s."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), values.cat.categories.to_numpy(dtype=object)
    return pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
