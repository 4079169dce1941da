"""Every private part of scikit-learn the classifier leans on, in one place.

A fitted `HistGradientBoostingClassifier` keeps what scoring fast and explaining exact need behind private
names: the binner (`_bin_mapper`: each feature's bin edges and its missing-value bin), the constant the trees
start from (`_baseline_prediction`), the trees themselves (`_predictors`, each a `TreePredictor` whose `nodes`
record array names each split's feature, bin threshold, children, missing-value side, value and training
count), and the thread count its own prediction uses (`sklearn.utils._openmp_helpers`). Nothing else in the
project reaches past scikit-learn's public API; `check(booster)` says exactly what is missing or changed, and
`tests/test_sklearn_internals.py` runs it on every supported version, so an upgrade that moves them fails
loudly there instead of scoring differently. Where a part is missing at scoring time the callers fall back to
the public `decision_function` (same numbers, slower).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# the node fields read here (sklearn.ensemble._hist_gradient_boosting.common.PREDICTOR_RECORD_DTYPE)
NODE_FIELDS = ("value", "count", "feature_idx", "missing_go_to_left", "left", "right", "is_leaf",
               "bin_threshold", "is_categorical")


class InternalsChanged(TypeError):
    """The booster's private parts are not what this module reads."""


def check(booster: Any) -> None:
    """Raise InternalsChanged naming the first private part of a fitted booster that is missing or changed."""
    for name in ("_bin_mapper", "_baseline_prediction", "_predictors", "n_trees_per_iteration_"):
        if not hasattr(booster, name):
            raise InternalsChanged(f"HistGradientBoostingClassifier has no {name} any more")
    mapper = booster._bin_mapper
    for name in ("transform", "missing_values_bin_idx_", "bin_thresholds_", "n_bins_non_missing_"):
        if not hasattr(mapper, name):
            raise InternalsChanged(f"its _bin_mapper has no {name} any more")
    if booster.n_trees_per_iteration_ != 1:
        raise InternalsChanged("several trees per iteration (not a binary classifier)")
    if np.any(getattr(mapper, "is_categorical", None) if getattr(mapper, "is_categorical", None) is not None
              else False):
        raise InternalsChanged("categorical features")
    for iteration in booster._predictors:
        for tree in iteration:
            for name in ("nodes", "predict_binned", "binned_left_cat_bitsets"):
                if not hasattr(tree, name):
                    raise InternalsChanged(f"TreePredictor has no {name} any more")
            missing = [f for f in NODE_FIELDS if f not in (tree.nodes.dtype.names or ())]
            if missing:
                raise InternalsChanged(f"TreePredictor.nodes has no field {', '.join(missing)} any more")
    try:
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads  # noqa: F401
    except ImportError as exc:
        raise InternalsChanged(f"sklearn.utils._openmp_helpers._openmp_effective_n_threads: {exc}") from None


def baseline(booster: Any) -> float:
    """The constant every tree's output is added to (the log-odds of the training base rate)."""
    return float(np.asarray(booster._baseline_prediction).ravel()[0])


def trees(booster: Any) -> list[np.ndarray]:
    """Each tree's node records (one tree per iteration for a binary classifier), in the order they are added."""
    return [tree.nodes for (tree,) in booster._predictors]


def booster_arrays(booster: Any, fields: tuple[str, ...]
                   ) -> tuple[list[np.ndarray], int, float, dict[str, np.ndarray], np.ndarray]:
    """Everything the booster's binned scoring reads, as plain arrays (for `detectors.lean_model`): each feature's
    bin edges, the missing-value bin, the baseline, these node `fields` of every tree one after another, and where
    each tree starts among them (one more entry: the end). Raises InternalsChanged where the parts are not there."""
    check(booster)
    mapper = booster._bin_mapper
    nodes = trees(booster)
    return ([np.asarray(e, dtype=np.float64).copy() for e in mapper.bin_thresholds_], int(mapper.missing_values_bin_idx_),
            baseline(booster), {name: np.concatenate([t[name] for t in nodes]) for name in fields},
            np.cumsum([0] + [len(t) for t in nodes]).astype(np.int64))


def bin_thresholds(booster: Any, feature_names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per feature, the edges its values were binned by: a value at most edge k falls in bin k or below. Two
    values between the same two edges (and both on one side of every edge) get the same score from the trees."""
    edges = booster._bin_mapper.bin_thresholds_
    return {name: np.asarray(edges[j], dtype=np.float64).copy() for j, name in enumerate(feature_names)}


def split_edges(booster: Any, feature_names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per feature, only the edges some tree splits on (sorted, distinct): the ones a value must cross to
    change a score."""
    out = {name: set() for name in feature_names}
    for nodes in trees(booster):
        inner = nodes[nodes["is_leaf"] == 0]
        for j, threshold in zip(inner["feature_idx"].tolist(), inner["bin_threshold"].tolist(), strict=True):
            out[feature_names[j]].add(threshold)
    all_edges = bin_thresholds(booster, feature_names)
    result = {}
    for name, bins in out.items():
        edges = all_edges[name]
        result[name] = np.array(sorted(float(edges[b]) for b in bins if b < len(edges)), dtype=np.float64)
    return result


def openmp_threads() -> int:
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return int(_openmp_effective_n_threads())


class BinnedWalk:
    """A booster's trees walked over its own binning of the rows: the same sums as `decision_function`, bit for
    bit, about a third faster on a million rows (one byte per value keeps the rows in cache; a value is at most
    a split's threshold exactly when its bin is at most the split's bin, NaN has its own bin, and the trees'
    outputs are added in the same order). Raises InternalsChanged where the private parts are not there."""

    def __init__(self, booster: Any):
        check(booster)
        mapper = booster._bin_mapper
        self.binning, self.missing_bin = mapper.transform, mapper.missing_values_bin_idx_
        self.baseline = np.asarray(booster._baseline_prediction)
        self.walks = [tree.predict_binned for (tree,) in booster._predictors]
        # the binned walk wants writable node arrays (not those of a model mapped read-only from a file)
        if not all(tree.nodes.flags.writeable and tree.binned_left_cat_bitsets.flags.writeable
                   for (tree,) in booster._predictors):
            raise InternalsChanged("read-only trees")

    def bins(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        if not len(X):  # no row (a store whose orders carry no number yet): scikit-learn refuses an empty array
            return np.zeros((0, X.shape[1] if np.ndim(X) == 2 else 0), dtype=np.uint8)
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
        threads = openmp_threads()
        for walk in self.walks:
            raw += walk(binned, missing_values_bin_idx=self.missing_bin, n_threads=threads)
        return raw


def binned_walk(booster: Any) -> BinnedWalk | None:
    try:
        return BinnedWalk(booster)
    except (AttributeError, ImportError, InternalsChanged):
        return None


def path_contributions(booster: Any, binned: np.ndarray) -> tuple[np.ndarray, float]:
    """Per row and feature, what the trees' splits on that feature added to the row's raw log-odds, and the base
    value (`detectors.lean_model.path_contributions`, over the booster's own trees: the one implementation)."""
    from detectors import lean_model

    return lean_model.path_contributions(trees(booster), baseline(booster),
                                         booster._bin_mapper.missing_values_bin_idx_, binned)


def set_bin_threads(booster: Any, threads: int | None) -> None:
    """The booster's binner (`_bin_mapper.n_threads`) on `threads` threads; nothing where it has no such knob."""
    mapper = getattr(booster, "_bin_mapper", None)
    if mapper is not None and hasattr(mapper, "n_threads"):
        mapper.n_threads = None if threads is None else max(1, int(threads))
