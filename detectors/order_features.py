"""`OrderFeatures`, the scikit-learn transformer of the classifier's features (see `detectors.features`): kept apart
so that reading frames does not import scikit-learn. Its arithmetic is `detectors.feature_matrix.transform_frame`
(no scikit-learn), which the lean export of a model (`detectors.lean_model`) calls too."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from detectors import feature_matrix
from detectors.feature_basics import FEATURE_GROUPS, FEATURES


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
        return feature_matrix.transform_frame(X, [str(n) for n in self.feature_names_in_], self.max_age_days,
                                              rows)

    @staticmethod
    def _check_frame(X) -> pd.DataFrame:  # noqa: ANN001, N803
        return feature_matrix.check_frame(X)
