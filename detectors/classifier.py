"""The fraud classifier: gradient-boosted trees over the order features, calibrated so 0.8 means about 80%.

`FraudClassifier` follows scikit-learn's estimator contract (`__init__` stores parameters, `fit` returns
self and sets trailing-underscore attributes, `predict_proba` checks it is fitted). It splits off a
stratified calibration slice, fits a `HistGradientBoostingClassifier` (mixed tabular features, NaN for
"unknown" handled natively) on the rest and an isotonic (or sigmoid) calibrator on the slice: what
`CalibratedClassifierCV(FrozenEstimator(...))` does, but with one boosting fit and one calibrator
instead of k of each, which is what keeps a million-order training run inside two minutes on two cores
and scoring to one tree ensemble. How many threads the boosting uses is the caller's to decide (the tracker
judges it by how busy the machine is: `tracker.detection.threads`).

`make_pipeline()` chains `OrderFeatures` and this classifier: the one object that is trained, shipped
and used for scoring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from detectors.features import OrderFeatures


class FraudClassifier(ClassifierMixin, BaseEstimator):
    """Calibrated gradient boosting for fraud / not fraud.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization :
        passed to `HistGradientBoostingClassifier`.
    calibration : {"isotonic", "sigmoid"}
        The calibrator fitted on the held-out slice.
    calibration_fraction : float
        Share of the training rows kept aside for calibration (stratified).
    max_train_rows : int or None
        Above this many rows, fit on a stratified sample of this size (the class ratio kept, so the
        calibration still matches the population): the model stops improving long before a million rows,
        the clock does not.
    random_state : int
    """

    def __init__(self, max_iter: int = 50, learning_rate: float = 0.3, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0, calibration: str = "isotonic",
                 calibration_fraction: float = 0.2, max_train_rows: int | None = 400_000,
                 random_state: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def fit(self, X, y):  # noqa: ANN001, ANN201, N803 - sklearn's names
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        self.classes_ = unique_labels(y)
        self.reference_ = typical_values(X)
        if len(self.classes_) != 2:
            kind = "Only binary classification is supported" if len(self.classes_) > 2 else "y has 1 class"
            raise ValueError(f"{kind}: FraudClassifier needs exactly 2 classes (fraud and not), "
                             f"got {list(self.classes_)}")
        if self.calibration not in ("isotonic", "sigmoid"):
            raise ValueError(f"calibration must be 'isotonic' or 'sigmoid', not {self.calibration!r}")
        y_index = np.searchsorted(self.classes_, y)
        empty = np.isnan(X).all(axis=0)
        if empty.any():  # the binner fails on an all-NaN column; a constant one is never split on instead
            X = X.copy()
            X[:, empty] = 0.0
        rng = np.random.RandomState(self.random_state)
        if self.max_train_rows and len(y) > self.max_train_rows:
            keep, _ = train_test_split(np.arange(len(y_index)), train_size=self.max_train_rows,
                                       stratify=y_index, random_state=rng)
            keep.sort()
            X, y_index = X[keep], y_index[keep]
        boost = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=len(y_index) >= 2000, validation_fraction=0.1, n_iter_no_change=20,
            random_state=self.random_state,
        )
        minority = int(min(np.bincount(y_index, minlength=2)))
        if minority >= 4 and self.calibration_fraction > 0:
            X_fit, X_cal, y_fit, y_cal = train_test_split(
                X, y_index, test_size=self.calibration_fraction, stratify=y_index, random_state=rng)
            boost.fit(X_fit, y_fit)
            # isotonic needs many positives in the slice; with few it overfits into a staircase
            method = self.calibration if len(y_cal) >= 1000 and y_cal.sum() >= 30 else "sigmoid"
            self.calibrator_ = _fit_calibrator(method, boost.decision_function(X_cal), y_cal)
        else:  # too few positives to hold any out: uncalibrated, and said so in the metadata
            boost.fit(X, y_index)
            self.calibrator_ = None
        self.booster_ = boost
        self.n_iter_ = boost.n_iter_
        return self

    def predict_proba(self, X) -> np.ndarray:  # noqa: ANN001, N803
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        log_odds = binned_decision_function(self.booster_, X)
        fraud = self._calibrated(log_odds)
        return np.column_stack([1.0 - fraud, fraud])

    def bins(self, X) -> np.ndarray | None:  # noqa: ANN001, N803
        """X binned as the booster was trained, for `fraud_probability_of_bins`; None where that walk does not
        apply. Binning is per value, so a column of these bins can be replaced by another value's bins."""
        check_is_fitted(self, "booster_")
        walk = _binned_walk(self.booster_)
        if walk is None:
            return None
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return walk.bins(X)

    def fraud_probability_of_bins(self, binned: np.ndarray) -> np.ndarray:
        """`predict_proba(X)[:, 1]` from `bins(X)`, bit for bit."""
        check_is_fitted(self, "booster_")
        return self._calibrated(_BinnedWalk(self.booster_).decision(binned))

    def tree_values(self, binned: np.ndarray) -> np.ndarray:
        """Each tree's output (one row per tree) for the rows `bins` gave: the parts of their log-odds, which
        `fraud_probability_replacing` reuses."""
        check_is_fitted(self, "booster_")
        return _BinnedWalk(self.booster_).tree_values(binned)

    def fraud_probability_replacing(self, binned: np.ndarray, values: np.ndarray, columns: list[int]) -> np.ndarray:
        """`fraud_probability_of_bins(binned)`, bit for bit, for rows whose bins differ from those that gave
        `tree_values` = `values` only in `columns`: only the trees that split on one of those columns are walked
        again (explaining a score resets one group of features at a time, and most trees use none of it)."""
        check_is_fitted(self, "booster_")
        walk = _BinnedWalk(self.booster_)
        values = values.copy()
        for tree in np.flatnonzero(walk.trees_using(columns)).tolist():
            values[tree] = walk.tree_values(binned, tree)
        return self._calibrated(walk.decision_of_values(values))

    def _calibrated(self, log_odds: np.ndarray) -> np.ndarray:
        return expit(log_odds) if self.calibrator_ is None else _apply_calibrator(self.calibrator_, log_odds)

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        check_is_fitted(self, "booster_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags


class _BinnedWalk:
    """A booster's trees walked over binned rows (see `binned_decision_function`); raises AttributeError,
    TypeError or ImportError where the booster's private parts are not what this expects."""

    def __init__(self, booster: HistGradientBoostingClassifier):
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        mapper = booster._bin_mapper
        self.threads = _openmp_effective_n_threads
        self.binning, self.missing_bin = mapper.transform, mapper.missing_values_bin_idx_
        self.baseline = np.asarray(booster._baseline_prediction)
        self.walks = [[tree.predict_binned for tree in iteration] for iteration in booster._predictors]
        self.trees = booster._predictors
        categorical = getattr(mapper, "is_categorical", None)
        if booster.n_trees_per_iteration_ != 1 or (categorical is not None and np.any(categorical)):
            raise TypeError("several trees per iteration or categorical features")
        # the binned walk wants writable node arrays (not those of a model mapped read-only from a file)
        if not all(tree.nodes.flags.writeable and tree.binned_left_cat_bitsets.flags.writeable
                   for iteration in booster._predictors for tree in iteration):
            raise TypeError("read-only trees")

    def bins(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        try:  # a read-only X (pandas' copy-on-write arrays, a memmap) as it is: a copy is 0.2 s at a million rows
            binned = self.binning(X)
        except ValueError:
            if X.flags.writeable:
                raise
            binned = self.binning(X.copy())  # an older binner whose memoryview wants a writable buffer
        return np.ascontiguousarray(binned)  # row by row: each tree reads a row's bytes together

    def decision(self, binned: np.ndarray) -> np.ndarray:
        raw = np.zeros(len(binned), dtype=self.baseline.dtype)
        raw += self.baseline.ravel()[0]
        threads = self.threads()
        for (walk,) in self.walks:
            raw += walk(binned, missing_values_bin_idx=self.missing_bin, n_threads=threads)
        return raw

    def tree_values(self, binned: np.ndarray, tree: int | None = None) -> np.ndarray:
        """Every tree's outputs (one row per tree), or tree `tree`'s."""
        threads = self.threads()
        if tree is not None:
            return self.walks[tree][0](binned, missing_values_bin_idx=self.missing_bin, n_threads=threads)
        out = np.empty((len(self.walks), len(binned)), dtype=self.baseline.dtype)
        for t, (walk,) in enumerate(self.walks):
            out[t] = walk(binned, missing_values_bin_idx=self.missing_bin, n_threads=threads)
        return out

    def decision_of_values(self, values: np.ndarray) -> np.ndarray:
        """`decision` from the trees' outputs: added up in the same order, so the same sums bit for bit."""
        raw = np.zeros(values.shape[1], dtype=self.baseline.dtype)
        raw += self.baseline.ravel()[0]
        for row in values:
            raw += row
        return raw

    def trees_using(self, columns: list[int]) -> np.ndarray:
        """Per tree, whether one of its splits tests one of these columns."""
        wanted = np.asarray(columns, dtype=np.int64)
        return np.array([np.isin(tree.nodes["feature_idx"][tree.nodes["is_leaf"] == 0], wanted).any()
                         for (tree,) in self.trees])


def _binned_walk(booster: HistGradientBoostingClassifier) -> _BinnedWalk | None:
    try:
        return _BinnedWalk(booster)
    except (AttributeError, ImportError, TypeError):
        return None


def binned_decision_function(booster: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:  # noqa: N803
    """`booster.decision_function(X)`, bit for bit, about a third faster on a million rows.

    Each tree is walked over X binned the way training binned it (one byte per value, so the rows stay in
    cache) instead of over the float64 values: a value is at most a split's threshold exactly when its bin
    is at most the split's bin, NaN has its own bin, and the trees' outputs are added in the same order.
    It leans on the booster's private parts (what its own early stopping uses); where they are not there,
    or the booster has categorical features or several trees per iteration, the public call answers.
    """
    walk = _binned_walk(booster)
    if walk is None or not len(X):
        return booster.decision_function(X)
    return walk.decision(walk.bins(X))


def typical_values(X: np.ndarray) -> np.ndarray:  # noqa: N803
    """Per column, the value of a typical row: NaN where most rows have none, else the median.

    Scoring explains a score by resetting feature groups to these values.
    """
    missing = np.isnan(X)
    typical = np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        if len(X) and missing[:, j].mean() <= 0.5:
            typical[j] = float(np.median(X[~missing[:, j], j]))
    return typical


def _fit_calibrator(method: str, log_odds: np.ndarray, y: np.ndarray) -> Any:
    """Map the booster's log-odds to a calibrated probability, fitted on rows the booster never saw."""
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(log_odds, y)
    return LogisticRegression(C=1e4).fit(log_odds.reshape(-1, 1), y)


TIE_BREAK = 1e-6


def _apply_calibrator(calibrator: Any, log_odds: np.ndarray) -> np.ndarray:
    if isinstance(calibrator, IsotonicRegression):
        calibrated = calibrator.predict(log_odds)
    else:
        calibrated = calibrator.predict_proba(log_odds.reshape(-1, 1))[:, 1]
    # isotonic maps whole ranges to one value and a sigmoid rounds to 1.0 far out; a millionth of a gentler
    # curve keeps the booster's order among them, so a reviewer's top 20 is not an arbitrary pick of equals
    return np.clip(calibrated * (1 - TIE_BREAK) + TIE_BREAK * expit(log_odds / 16), 0.0, 1.0)


def fraud_probability(classifier: Any, matrix: np.ndarray) -> np.ndarray:
    """The classifier's fraud probability per row, given the rows column-major: each tree tests one feature
    across all rows, so a column read in sequence is several times faster than the strided rows a fancy-indexed
    copy would hand over. The values are the same either way."""
    return classifier.predict_proba(np.asfortranarray(matrix))[:, 1]


def make_pipeline(**params: Any) -> Pipeline:
    """OrderFeatures -> FraudClassifier; `params` go to the classifier (see data/model.toml)."""
    return Pipeline([("features", OrderFeatures()), ("classifier", FraudClassifier(**params))])
