"""`OrderFeatures`, the scikit-learn transformer of the classifier's features (see `detectors.features`): kept apart
so that reading frames does not import scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from detectors.feature_basics import FEATURE_GROUPS, FEATURES, FLAG_CODES
from detectors.feature_basics import answer as _answer
from detectors.feature_basics import per_value as _per_value
from detectors.feature_basics import zero_nan as _zero_nan


class OrderFeatures(TransformerMixin, BaseEstimator):
    """Feature frame (from `feature_frame`) -> the numeric feature matrix of the named features.

    Parameters
    ----------
    features : sequence of str or None
        Which of `FEATURES` to compute, in this order (None: all of them).
    max_age_days : float
        Ages (since the order, since the last scan) are clipped here, so old history looks like old history.
    """

    def __init__(self, features: tuple[str, ...] | None = None, max_age_days: float = 120.0):
        self.features = features
        self.max_age_days = max_age_days

    def _names(self) -> tuple[str, ...]:
        names = tuple(self.features) if self.features is not None else FEATURES
        unknown = [n for n in names if n not in FEATURE_GROUPS]
        if unknown:
            raise ValueError(f"unknown features {unknown}: this version computes {', '.join(FEATURES)}")
        return names

    def fit(self, X: pd.DataFrame | None = None, y=None):  # noqa: ANN001, ANN201, N803 - sklearn's names
        """Nothing to learn from the rows: checks the frame (when given) and the feature names."""
        if X is not None:
            self._check_frame(X)
        self.feature_names_in_ = np.asarray(self._names(), dtype=object)
        self.n_features_out_ = len(self.feature_names_in_)
        return self

    def get_feature_names_out(self, input_features=None) -> np.ndarray:  # noqa: ANN001
        return np.asarray(self._names(), dtype=object)

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        check_is_fitted(self, "n_features_out_")
        return self.transform_frame(X).to_numpy(dtype=np.float64)

    def transform_frame(self, X: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:  # noqa: N803
        """The features as a named DataFrame (for reasons and inspection); of the frame's rows at the positions
        `rows` only, when given (each row's features are its own: the scorer leaves out orders without a number
        this way, instead of copying them out of the whole block)."""
        check_is_fitted(self, "n_features_out_")
        f = self._check_frame(X)
        names = [str(n) for n in self.feature_names_in_]
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
        out["days_since_last_event"] = np.minimum(np.where(np.isnan(delivered), age, np.nan), self.max_age_days)
        out["order_age_days"] = np.minimum(column("as_of_jd") - ordered, self.max_age_days)
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

    @staticmethod
    def _check_frame(X) -> pd.DataFrame:  # noqa: ANN001, N803
        if not isinstance(X, pd.DataFrame):
            raise TypeError("OrderFeatures expects the feature frame of detectors.features.feature_frame")
        missing = [c for c in ("order_id", "delivered_jd", "first_event_jd", "as_of_jd") if c not in X.columns]
        if missing:
            raise ValueError(f"feature frame lacks columns {missing}; build it with feature_frame")
        return X
