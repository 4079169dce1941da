"""The classifier's feature matrix worked out from the feature frame (see `detectors.features`): numpy and pandas
only, so that scoring with the lean export of a model (`detectors.lean_model`) imports no scikit-learn. The one
implementation: `detectors.order_features.OrderFeatures`, the transformer the pipelines train with, calls it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from detectors.feature_basics import FLAG_CODES
from detectors.feature_basics import answer as _answer
from detectors.feature_basics import per_value as _per_value
from detectors.feature_basics import zero_nan as _zero_nan


def transform_frame(frame: pd.DataFrame, names: Sequence[str], max_age_days: float,
                    rows: np.ndarray | None = None) -> pd.DataFrame:
    """The features `names` (in this order) of the feature frame's rows (of those at the positions `rows` only, when
    given), as a named DataFrame over one column-major float block; ages clipped at `max_age_days`."""
    f = check_frame(frame)
    names = [str(n) for n in names]
    wanted = set(names)

    def column(name: str) -> np.ndarray:
        return f[name].to_numpy(dtype=np.float64)

    # numpy columns, then one column-major float block: the frame returned is a view of it, and the
    # classifier reads it as it is (a pandas frame built column by column costs more than the arithmetic)
    out: dict[str, np.ndarray] = {}
    for code in FLAG_CODES:
        out[f"flag_{code}"] = column(f"flag_{code}")
    out["n_flags"] = np.sum([out[f"flag_{c}"] for c in FLAG_CODES], axis=0)  # whole numbers: exact in any order
    delivered, first_event, ordered = column("delivered_jd"), column("first_event_jd"), column("ordered_jd")
    first_scan, shipped, confirmed = column("first_scan_jd"), column("shipped_jd"), column("confirmed_jd")
    out["accept_to_delivered_days"] = delivered - first_event
    out["physical_to_delivered_days"] = delivered - first_scan
    out["order_to_delivered_days"] = delivered - ordered
    if "transit_vs_typical" in wanted:
        out["transit_vs_typical"] = out["accept_to_delivered_days"] / column("typical_transit")
    out["order_to_first_scan_days"] = first_event - ordered
    out["shipped_to_first_physical_days"] = first_scan - shipped
    out["ship_delay_days"] = shipped - ordered
    for name in ("n_events", "n_scans", "n_transit", "n_export", "n_import"):
        out[name] = _zero_nan(column(name))
    out["has_customs"] = ((out["n_export"] + out["n_import"]) > 0).astype(float)
    out["delivered"] = (~np.isnan(delivered)).astype(float)
    last_scan = column("last_scan_jd")
    age = column("as_of_jd") - np.where(np.isnan(last_scan), first_event, last_scan)
    # staleness matters for parcels still on their way; a delivered parcel is done, not stale
    out["days_since_last_event"] = np.minimum(np.where(np.isnan(delivered), age, np.nan), max_age_days)
    out["order_age_days"] = np.minimum(column("as_of_jd") - ordered, max_age_days)
    out["dest_match_level"] = column("dest_match_level")
    out["confirm_minus_delivered_days"] = confirmed - delivered
    out["confirmed_before_delivery"] = (~np.isnan(confirmed) & (np.isnan(delivered) | (confirmed < delivered))
                                        ).astype(float)
    said_no = _per_value(f["buyer_received"], lambda text: float(_answer(text) == "no"))
    out["buyer_received"] = _per_value(f["buyer_received"], lambda text: {"yes": 1.0, "no": 0.0}.get(
        _answer(text), np.nan))
    out["orders_on_number"] = _zero_nan(column("n_orders_on_number"))
    out["buyers_on_number"] = _zero_nan(column("buyers_on_number"))
    for name in ("promised_days", "amount"):
        if name in wanted:
            out[name] = pd.to_numeric(f[name], errors="coerce").to_numpy(dtype=np.float64)
    out["msg_pressure_max"] = column("msg_pressure_max")
    out["n_seller_messages"] = column("n_seller_messages")
    for name in ("seller_n_orders", "seller_flag_rate", "seller_median_transit", "seller_fast_share",
                 "seller_transit_vs_typical", "seller_fast_share_vs_typical", "seller_reuse_share",
                 "seller_no_customs_share", "seller_not_received_share", "seller_pressure_share",
                 "buyer_n_orders"):
        if name in wanted:
            out[name] = column(name)
    out["buyer_not_received_other"] = np.maximum(_zero_nan(column("_buyer_not_received"))
                                                 - said_no, 0.0)
    out["buyer_flagged_other"] = np.maximum(_zero_nan(column("_buyer_flagged"))
                                            - (out["n_flags"] > 0), 0.0)
    matrix = np.empty((len(f) if rows is None else len(rows), len(names)), dtype=np.float64, order="F")
    for j, name in enumerate(names):
        matrix[:, j] = out[name] if rows is None else np.broadcast_to(out[name], (len(f),))[rows]
    return pd.DataFrame(matrix, index=f.index if rows is None else f.index[rows], columns=names, copy=False)


def check_frame(X) -> pd.DataFrame:  # noqa: ANN001, N803
    """The frame itself, when it is a feature frame (TypeError / ValueError otherwise)."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError("OrderFeatures expects the feature frame of detectors.features.feature_frame")
    missing = [c for c in ("order_id", "delivered_jd", "first_event_jd", "as_of_jd") if c not in X.columns]
    if missing:
        raise ValueError(f"feature frame lacks columns {missing}; build it with feature_frame")
    return X
