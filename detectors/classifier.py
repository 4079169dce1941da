"""The fraud classifier: gradient-boosted trees, a rules prior, and the blend of them that scores an order.

Three scikit-learn estimators, each giving a calibrated log-odds (`decision_function`) and exact additive
reasons (`contributions`: per row and feature, in log-odds, with a base value; base + a row's contributions =
its log-odds):

- `FraudClassifier`: a `HistGradientBoostingClassifier` (mixed tabular features, NaN for "unknown" handled
  natively, monotonic constraints on the evidence features), calibrated by a logistic (Platt) map of its
  raw log-odds fitted on a stratified slice it never trained on. A logistic map keeps log-odds linear, so the
  trees' path contributions (`detectors.sklearn_internals.path_contributions`) scale into calibrated ones.
- `RulesPrior`: a logistic regression on the flag indicators and the flag count, its coefficients held at 0 or
  above: what the rules alone say, calibrated.
- `BlendedClassifier`: the score, sigmoid(Σ weight_i x log-odds_i) over fitted parts (the shipped model, a
  local one, the prior; `tracker.detection.training` decides the weights from how much local labelled
  evidence exists). Monotone parts with weights >= 0 make a monotone blend: more evidence never lowers it.

`make_pipeline()` chains `OrderFeatures` and a classifier: the one object that is trained, shipped and used
for scoring. How many threads the boosting uses is the caller's to decide (`tracker.detection.threads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from detectors import lean_model, seller_aggregates, sklearn_internals
from detectors.features import FEATURES, FLAG_CODES, MONOTONIC, OrderFeatures


def _check_binary(estimator: Any, y: np.ndarray) -> np.ndarray:
    estimator.classes_ = unique_labels(y)
    if len(estimator.classes_) != 2:
        kind = "Only binary classification is supported" if len(estimator.classes_) > 2 else "y has 1 class"
        raise ValueError(f"{kind}: {type(estimator).__name__} needs exactly 2 classes (fraud and not), "
                         f"got {list(estimator.classes_)}")
    return np.searchsorted(estimator.classes_, y)


class _LogOddsClassifier(ClassifierMixin, BaseEstimator):
    """predict_proba and predict from `decision_function` (calibrated log-odds)."""

    def predict_proba(self, X) -> np.ndarray:  # noqa: ANN001, N803
        fraud = lean_model.sigmoid(self.decision_function(X))  # the function the lean export's scores use too
        return np.column_stack([1.0 - fraud, fraud])

    def predict(self, X) -> np.ndarray:  # noqa: ANN001, N803
        check_is_fitted(self, "classes_")
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags


class FraudClassifier(_LogOddsClassifier):
    """Calibrated gradient boosting for fraud / not fraud.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization :
        passed to `HistGradientBoostingClassifier`.
    monotonic_cst : sequence of {-1, 0, 1} or None
        Per column: 1, the score never falls as it grows (evidence); -1, never rises; 0, free.
    calibration_fraction : float
        Share of the training rows kept aside to fit the logistic calibration (stratified).
    max_train_rows : int or None
        Above this many rows, fit on a stratified sample of this size (the class ratio kept): the model stops
        improving long before a million rows, the clock does not.
    grids : sequence of grid names (`detectors.seller_aggregates.GRIDS`) or None, or None
        Per column: fit on its values moved to that grid's nearest point, so the trees' thresholds on it sit
        between grid points (`grids(features)`: the seller features', as the shipped model is fitted); None, as
        they are. Scoring reads the values as they are.
    random_state : int
    """

    def __init__(self, max_iter: int = 50, learning_rate: float = 0.3, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0,
                 monotonic_cst: Sequence[int] | None = None, calibration_fraction: float = 0.2,
                 max_train_rows: int | None = 400_000, grids: Sequence[str | None] | None = None,
                 random_state: int = 0):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.monotonic_cst = monotonic_cst
        self.calibration_fraction = calibration_fraction
        self.max_train_rows = max_train_rows
        self.grids = grids
        self.random_state = random_state

    def fit(self, X, y):  # noqa: ANN001, ANN201, N803 - sklearn's names
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        y_index = _check_binary(self, y)
        if self.grids is not None:
            if len(self.grids) != X.shape[1]:
                raise ValueError(f"grids has {len(self.grids)} entries for {X.shape[1]} features")
            X = X.copy()
            for j, grid in enumerate(self.grids):
                if grid is not None:
                    X[:, j] = seller_aggregates.snap(grid, X[:, j])
        X = _no_empty_columns(X)
        rng = np.random.RandomState(self.random_state)
        if self.max_train_rows and len(y) > self.max_train_rows:
            keep, _ = train_test_split(np.arange(len(y_index)), train_size=self.max_train_rows,
                                       stratify=y_index, random_state=rng)
            keep.sort()
            X, y_index = X[keep], y_index[keep]
        cst = None if self.monotonic_cst is None else list(self.monotonic_cst)
        if cst is not None and len(cst) != X.shape[1]:
            raise ValueError(f"monotonic_cst has {len(cst)} entries for {X.shape[1]} features")
        boost = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            monotonic_cst=cst, early_stopping=len(y_index) >= 2000, validation_fraction=0.1,
            n_iter_no_change=20, random_state=self.random_state,
        )
        minority = int(min(np.bincount(y_index, minlength=2)))
        self.calibration_ = (1.0, 0.0)  # (slope, intercept) on the raw log-odds
        if minority >= 4 and self.calibration_fraction > 0:
            X_fit, X_cal, y_fit, y_cal = train_test_split(
                X, y_index, test_size=self.calibration_fraction, stratify=y_index, random_state=rng)
            boost.fit(_no_empty_columns(X_fit), y_fit)  # a few rows' column may have its values all held out
            platt = LogisticRegression(C=1e4).fit(boost.decision_function(X_cal).reshape(-1, 1), y_cal)
            # a slope above 0 keeps the booster's order (and its monotonic constraints)
            self.calibration_ = (max(float(platt.coef_[0, 0]), 1e-3), float(platt.intercept_[0]))
        else:  # too few positives to hold any out: the booster's own log-odds, and said so in the metadata
            boost.fit(X, y_index)
        self.calibrated_ = self.calibration_ != (1.0, 0.0)
        self.booster_ = boost
        self.n_iter_ = boost.n_iter_
        return self

    def raw_log_odds(self, X) -> np.ndarray:  # noqa: ANN001, N803
        """The booster's own log-odds (before calibration), through its binned walk where it can."""
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return binned_decision_function(self.booster_, X)

    def decision_function(self, X) -> np.ndarray:  # noqa: ANN001, N803
        check_is_fitted(self, "booster_")
        slope, intercept = self.calibration_
        return slope * self.raw_log_odds(X) + intercept

    def contributions(self, X) -> tuple[np.ndarray, float]:  # noqa: ANN001, N803
        """Per row and column, its part of the row's calibrated log-odds, and the base value they add to."""
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        walk = sklearn_internals.BinnedWalk(self.booster_)
        raw, base = sklearn_internals.path_contributions(self.booster_, walk.bins(X))
        slope, intercept = self.calibration_
        return slope * raw, slope * base + intercept


def _no_empty_columns(X: np.ndarray) -> np.ndarray:  # noqa: N803
    """X, each all-NaN column made 0 (in a copy): the binner fails on one; a constant one is never split on."""
    empty = np.isnan(X).all(axis=0)
    if not empty.any():
        return X
    X = X.copy()  # noqa: N806
    X[:, empty] = 0.0
    return X


class RulesPrior(_LogOddsClassifier):
    """What the rules alone say: a logistic regression on the flag indicators and the flag count, with every
    coefficient kept at 0 or above (a flag never lowers the prior), calibrated on the rows it is fitted on.

    Parameters
    ----------
    columns : sequence of int or None
        The columns of X it reads (the flag features); None: every column.
    C : float
        Inverse regularisation strength.
    """

    def __init__(self, columns: Sequence[int] | None = None, C: float = 1.0):  # noqa: N803
        self.columns = columns
        self.C = C

    def fit(self, X, y):  # noqa: ANN001, ANN201, N803
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        y_index = _check_binary(self, y)
        columns = np.arange(X.shape[1]) if self.columns is None else np.asarray(self.columns, dtype=np.int64)
        values = np.nan_to_num(X[:, columns])
        free = np.ones(len(columns), dtype=bool)
        coef = np.zeros(len(columns))
        intercept = 0.0
        while free.any():  # drop whatever would lower the prior, and fit the rest again
            model = LogisticRegression(C=self.C, max_iter=1000).fit(values[:, free], y_index)
            coef[:] = 0.0
            coef[free] = model.coef_[0]
            intercept = float(model.intercept_[0])
            if (coef >= 0).all():
                break
            free &= coef > 0
        if not free.any():
            rate = float(np.clip(y_index.mean(), 1e-6, 1 - 1e-6))
            intercept = float(np.log(rate / (1 - rate)))
        self.columns_ = columns
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def decision_function(self, X) -> np.ndarray:  # noqa: ANN001, N803
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        return np.nan_to_num(X[:, self.columns_]) @ self.coef_ + self.intercept_

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True  # coefficients held >= 0: it cannot fit every toy problem
        return tags

    def contributions(self, X) -> tuple[np.ndarray, float]:  # noqa: ANN001, N803
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        out = np.zeros(X.shape)
        out[:, self.columns_] = np.nan_to_num(X[:, self.columns_]) * self.coef_
        return out, self.intercept_


class BlendedClassifier(_LogOddsClassifier):
    """The score: sigmoid of the weighted sum of fitted parts' log-odds.

    Parameters
    ----------
    parts : list of (name, estimator)
        Fitted estimators with `decision_function` and `contributions` over the same columns.
    weights : list of float
        One per part, each >= 0; a part with weight 0 is never evaluated.
    """

    def __init__(self, parts: list[tuple[str, Any]], weights: Sequence[float]):
        self.parts = parts
        self.weights = weights

    def fit(self, X, y):  # noqa: ANN001, ANN201, N803
        """Fit every part on the same rows (the blend itself has nothing to learn)."""
        for _, part in self.parts:
            part.fit(X, y)
        return self._finish(y)

    def _finish(self, y: np.ndarray | None = None) -> BlendedClassifier:
        if len(self.parts) != len(self.weights) or any(w < 0 for w in self.weights):
            raise ValueError("one weight >= 0 per part")
        self.classes_ = np.array([0, 1]) if y is None else unique_labels(y)
        self.n_features_in_ = next(p.n_features_in_ for _, p in self.parts)
        return self

    @classmethod
    def of(cls, parts: list[tuple[str, Any]], weights: Sequence[float]) -> BlendedClassifier:
        """A blend of parts fitted already."""
        return cls(parts, [float(w) for w in weights])._finish()

    def _active(self) -> list[tuple[float, Any]]:
        check_is_fitted(self, "classes_")
        return [(w, part) for (_, part), w in zip(self.parts, self.weights, strict=True) if w > 0]

    def decision_function(self, X) -> np.ndarray:  # noqa: ANN001, N803
        total = None
        for weight, part in self._active():
            value = weight * part.decision_function(X)
            total = value if total is None else total + value
        return total if total is not None else np.zeros(len(X))

    def contributions(self, X) -> tuple[np.ndarray, float]:  # noqa: ANN001, N803
        out, base = None, 0.0
        for weight, part in self._active():
            c, b = part.contributions(X)
            out = weight * c if out is None else out + weight * c
            base += weight * b
        return (out if out is not None else np.zeros((len(X), self.n_features_in_))), base

    def base_value(self) -> float:
        """The log-odds every row starts from (its contributions add to it)."""
        return self.contributions(np.zeros((1, self.n_features_in_)))[1]

    def shares(self) -> list[dict[str, Any]]:
        """Which parts score, with their weights as shares of the total."""
        total = sum(w for w in self.weights) or 1.0
        return [{"part": name, "weight": round(w / total, 4)} for (name, _), w in zip(self.parts, self.weights,
                                                                                      strict=True) if w > 0]


def binned_decision_function(booster: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:  # noqa: N803
    """`booster.decision_function(X)`, bit for bit, about a third faster on a million rows (the trees walked over
    X binned as training binned it: `detectors.sklearn_internals.BinnedWalk`); where the booster's private parts
    are not what that expects, the public call answers."""
    walk = sklearn_internals.binned_walk(booster)
    if walk is None or not len(X):
        return booster.decision_function(X)
    return walk.decision(walk.bins(X))


def fraud_probability(classifier: Any, matrix: np.ndarray) -> np.ndarray:
    """The classifier's fraud probability per row, given the rows column-major: each tree tests one feature
    across all rows, so a column read in sequence is several times faster than the strided rows a fancy-indexed
    copy would hand over. The values are the same either way."""
    return classifier.predict_proba(np.asfortranarray(matrix))[:, 1]


def log_odds(classifier: Any, matrix: np.ndarray) -> np.ndarray:
    """The classifier's log-odds per row (what `fraud_probability` is the sigmoid of)."""
    return classifier.decision_function(np.asfortranarray(matrix))


def monotonic_cst(features: Sequence[str]) -> list[int]:
    return [MONOTONIC.get(name, 0) for name in features]


def grids(features: Sequence[str]) -> list[str | None]:
    """Per feature, the grid its thresholds are fitted on (`FraudClassifier(grids=...)`), None for none."""
    return [seller_aggregates.GRID_OF.get(name) for name in features]


def prior_columns(features: Sequence[str]) -> list[int]:
    """The columns the rules prior reads: each flag's indicator and the flag count."""
    wanted = {f"flag_{code}" for code in FLAG_CODES} | {"n_flags"}
    return [j for j, name in enumerate(features) if name in wanted]


def make_pipeline(features: Sequence[str] | None = None, **params: Any) -> Pipeline:
    """OrderFeatures -> FraudClassifier over `features` (default: all), the evidence ones monotonic; `params` go
    to the classifier (see data/model.toml)."""
    names = tuple(features) if features is not None else FEATURES
    params.setdefault("monotonic_cst", monotonic_cst(names))
    return Pipeline([("features", OrderFeatures(features=names)), ("classifier", FraudClassifier(**params))])


def make_prior(features: Sequence[str] | None = None, C: float = 1.0) -> Pipeline:  # noqa: N803
    names = tuple(features) if features is not None else FEATURES
    return Pipeline([("features", OrderFeatures(features=names)),
                     ("classifier", RulesPrior(columns=prior_columns(names), C=C))])


def blend(features: Sequence[str], parts: list[tuple[str, Any]], weights: Sequence[float]) -> Pipeline:
    """The scoring pipeline: OrderFeatures over `features`, then the blend of fitted classifiers over them."""
    return Pipeline([("features", OrderFeatures(features=tuple(features)).fit(None)),
                     ("classifier", BlendedClassifier.of(parts, weights))])


def score_edges(pipeline: Pipeline) -> dict[str, np.ndarray | None]:
    """Per feature the scoring pipeline reads, the values at which its score can change: the split edges of its
    boosted parts' trees (`sklearn_internals.split_edges`; a value that moves without crossing one leaves every
    tree's output as it was, and a feature no tree splits on has none); None where a part with a weight reads it
    linearly (the rules prior), so that any change of it moves the score. For re-scoring only the orders whose
    inputs crossed an edge."""
    names = [str(n) for n in pipeline.named_steps["features"].get_feature_names_out()]
    classifier = pipeline.named_steps["classifier"]
    parts = classifier._active() if isinstance(classifier, BlendedClassifier) else [(1.0, classifier)]
    edges: dict[str, set[float]] = {name: set() for name in names}
    linear: set[str] = set()
    for _weight, part in parts:
        if isinstance(part, FraudClassifier):
            for name, values in sklearn_internals.split_edges(part.booster_, names).items():
                edges[name].update(values.tolist())
        elif isinstance(part, RulesPrior):
            linear.update(names[j] for j, c in zip(part.columns_, part.coef_, strict=True) if c != 0)
        else:
            linear.update(names)
    return {name: None if name in linear else np.array(sorted(edges[name]), dtype=np.float64) for name in names}


def boosters(classifier: Any) -> list[Any]:
    """The fitted boosters a classifier scores with (a blend's parts with a weight, or the classifier itself)."""
    parts = classifier._active() if isinstance(classifier, BlendedClassifier) else [(1.0, classifier)]
    return [part.booster_ for _, part in parts if isinstance(part, FraudClassifier) and hasattr(part, "booster_")]


def bin_threads(classifier: Any, threads: int | None) -> None:
    """Every booster's binning on `threads` threads (None: as many as the process allows): a booster keeps the
    count of the machine it was fitted on, and two spinning threads on a busy machine are a hundredfold slower."""
    for booster in boosters(classifier):
        sklearn_internals.set_bin_threads(booster, threads)


class _BinnedBooster:
    """A fitted `FraudClassifier` as `lean_model.ByteRows` reads a boosted part: scikit-learn's binning and (threaded)
    walk of its trees, calibrated."""

    def __init__(self, part: FraudClassifier):
        self.booster = part.booster_
        self.walk = sklearn_internals.BinnedWalk(part.booster_)
        self.slope, self.intercept = part.calibration_

    def bins(self, X: np.ndarray, columns: list[int] | None = None) -> np.ndarray:  # noqa: N803
        binned = self.walk.bins(X)
        return binned if columns is None else binned[:, columns]

    def decision(self, binned: np.ndarray) -> np.ndarray:
        return self.slope * self.walk.decision(binned) + self.intercept

    def contributions(self, binned: np.ndarray) -> tuple[np.ndarray, float]:
        raw, base = sklearn_internals.path_contributions(self.booster, binned)
        return self.slope * raw, self.slope * base + self.intercept


class _BinnedPrior:
    """A fitted `RulesPrior` as `lean_model.ByteRows` reads a prior."""

    def __init__(self, part: RulesPrior):
        self.columns, self.coef, self.intercept = part.columns_, part.coef_, part.intercept_


class BinnedInput(lean_model.ByteRows):
    """A fitted classifier's input kept as bytes per row, and its score of such rows: bit for bit its score of the
    rows themselves (`lean_model.ByteRows`, with scikit-learn's binning and tree walk). A store keeps them per order,
    so an order whose seller columns alone moved is scored again from its bytes with those columns binned anew
    (`tracker.detection.rescoring`). Raises InternalsChanged / TypeError for a classifier it cannot hold this way."""

    def __init__(self, classifier: Any):
        self.blend = isinstance(classifier, BlendedClassifier)
        parts = classifier._active() if self.blend else [(1.0, classifier)]
        n = self.n_features = int(classifier.n_features_in_)
        self.parts, self.offsets = [], []
        offset = 0
        for weight, part in parts:
            if isinstance(part, FraudClassifier):
                self.parts.append(("boost", weight, _BinnedBooster(part)))
                width = n
            elif isinstance(part, RulesPrior):
                self.parts.append(("prior", weight, _BinnedPrior(part)))
                width = len(part.columns_)
            else:
                raise TypeError(f"no binned input for {type(part).__name__}")
            self.offsets.append(np.arange(offset, offset + width))
            offset += width
        self.width = offset

    def contributions(self, binned: np.ndarray) -> tuple[np.ndarray, float]:
        """The classifier's `contributions` of these rows, from their bytes."""
        return self.contributions_of(binned)


def binned_input(classifier: Any) -> BinnedInput | None:
    """`BinnedInput` of the classifier, or None where it cannot hold its input as bytes."""
    try:
        return BinnedInput(classifier)
    except (AttributeError, TypeError, ImportError, sklearn_internals.InternalsChanged):
        return None


def lean_export(pipeline: Any, source: dict[str, Any] | None = None) -> lean_model.LeanModel | None:
    """The fitted scoring pipeline as a `detectors.lean_model.LeanModel` (its scores bit for bit the pipeline's), or
    None where its shape is not one the lean model holds: OrderFeatures followed by a FraudClassifier, a RulesPrior,
    or a BlendedClassifier of them, over trees whose private parts `detectors.sklearn_internals` reads. `source`
    names the model file it is made from (`model_sha256`, ...)."""
    try:
        features, classifier = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
        if not isinstance(features, OrderFeatures):
            return None
        names = [str(n) for n in features.get_feature_names_out()]
        blend = isinstance(classifier, BlendedClassifier)
        active = classifier._active() if blend else [(1.0, classifier)]
        parts: list[tuple[str, float, Any]] = []
        for weight, part in active:
            if isinstance(part, FraudClassifier):
                edges, missing_bin, baseline, nodes, tree_start = sklearn_internals.booster_arrays(
                    part.booster_, lean_model.NODE_FIELDS)
                slope, intercept = part.calibration_
                parts.append(("boost", float(weight), lean_model.Booster(
                    edges, missing_bin, baseline, slope, intercept, nodes, tree_start)))
            elif isinstance(part, RulesPrior):
                parts.append(("prior", float(weight), lean_model.Prior(part.columns_, part.coef_, part.intercept_)))
            else:
                return None
        shares = [(name, float(w)) for (name, _), w in zip(classifier.parts, classifier.weights, strict=True)] \
            if blend else []
        lean = lean_model.LeanModel(lean_model.LeanFeatures(names, features.max_age_days),
                                    lean_model.LeanClassifier(len(names), parts, blend, shares), source or {})
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, sklearn_internals.InternalsChanged):
        return None
    return lean
