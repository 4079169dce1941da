"""A fitted scoring pipeline as plain numbers, and its scoring with numpy alone: no scikit-learn, SciPy or skops.

`detectors.classifier.lean_export` reads a fitted pipeline (`OrderFeatures` -> a `BlendedClassifier` of boosted
parts and a rules prior, or one such part alone) into a `LeanModel`: the features and their age cap, each part's
weight, and per boosted part its bin edges, missing-value bin, baseline, calibration (slope, intercept) and trees
(one set of node arrays, in the order the trees are added); per rules prior its columns, coefficients and
intercept. `arrays` gives it as named plain arrays (`tracker.detection.persistence` writes them as one `.npz`
beside the model file, no pickle either way, naming the SHA-256 of the model file they were made from), and
`of_arrays` reads them back, refusing (ValueError, KeyError, TypeError) arrays of another format or of a shape it
does not expect; the caller then scores with scikit-learn instead.

Its scores are the full pipeline's, bit for bit (`tests/test_lean_model.py`): the features are
`detectors.feature_matrix.transform_frame`, which `OrderFeatures` calls too; a value goes to the bin scikit-learn's
binner gives it (the first edge at or above it; NaN to the missing-value bin); each tree sends a row to the leaf
scikit-learn's binned walk reaches, and the trees' outputs are added to the baseline one tree after another, as
scikit-learn adds them; calibration, prior and blend are the same operations in the same order; and the
probability is `sigmoid`, which the full pipeline's `predict_proba` uses too. The path contributions (the reasons'
weights) are `path_contributions`, the one implementation `detectors.sklearn_internals` uses as well.

The rows' leaves are found without a loop per row: each tree's leaves, left to right, are bits of one integer;
a split a row fails (it goes right) rules out the leaves of its left subtree, so the row's leaf is the lowest bit
left once every split it fails has cleared its bits. Per feature and bin, the bits cleared in every tree are one
table row, so a block of rows is a few table look-ups and ANDs per feature (QuickScorer, Lucchese et al. 2015).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors import feature_matrix

FORMAT = 1
SUFFIX = ".lean.npz"
NODE_FIELDS = ("feature_idx", "bin_threshold", "missing_go_to_left", "left", "right", "is_leaf", "value", "count")
BLOCK = 4096  # rows walked at a time (their leaf bits stay in cache)
# rows from which binning and walking are shared among runs at once (`Booster.use_runs`): numpy lets go of the
# interpreter's lock in each step over a column or a block, and fewer rows are not worth a thread's start
THREADED_FROM = 65536


def row_runs(n: int, runs: int) -> list[tuple[int, int]]:
    """The rows [0, n) as up to `runs` runs of whole blocks (the last one ends at n), none empty."""
    blocks = -(-n // BLOCK)
    runs = max(1, min(runs, blocks))
    bounds = [min(n, (blocks * k // runs) * BLOCK) for k in range(runs + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def sigmoid(log_odds: np.ndarray) -> np.ndarray:
    """The probability of these log-odds: the one function every score goes through (full and lean)."""
    x = np.asarray(log_odds, dtype=np.float64)
    with np.errstate(over="ignore"):  # exp overflows to inf for very negative log-odds: probability 0
        return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------------ trees


def node_means(nodes: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each node's value as the training-count-weighted mean of its leaves' values (leaves keep their own)."""
    value = np.asarray(nodes["value"]).astype(np.float64).copy()
    count = np.asarray(nodes["count"]).astype(np.float64)
    is_leaf, lefts, rights = nodes["is_leaf"], nodes["left"], nodes["right"]
    # children come after their parent in the record array: fill parents from the last node backwards
    for i in range(len(value) - 1, -1, -1):
        if not is_leaf[i]:
            left, right = int(lefts[i]), int(rights[i])
            total = count[left] + count[right]
            value[i] = (value[left] * count[left] + value[right] * count[right]) / total if total else 0.0
    return value


def path_contributions(trees: Sequence[Mapping[str, np.ndarray]], baseline: float, missing_bin: int,
                       binned: np.ndarray, means: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """Per row and feature, what the trees' splits on that feature added to the row's raw log-odds, and the base
    value: each tree's output is its root's value plus the changes of value along the row's path, each change
    put on the feature of the split that made it (Saabas). A node's value is the training-count-weighted mean of
    its leaves (`node_means`; `means`: worked out already), so the base value is what an average training row
    gets. Exact: base + a row's contributions equal its raw log-odds (to rounding). `trees`: each tree's node
    fields (`NODE_FIELDS`, a record array or a dict of arrays)."""
    n, n_features = binned.shape
    out = np.zeros((n, n_features))
    base = float(baseline)
    rows = np.arange(n)
    for t, nodes in enumerate(trees):
        value = node_means(nodes) if means is None else means[t]
        base += value[0]
        at = np.zeros(n, dtype=np.int64)
        active = ~nodes["is_leaf"][at].astype(bool)
        while active.any():
            r, node = rows[active], at[active]
            feature = nodes["feature_idx"][node].astype(np.int64)
            b = binned[r, feature]
            left = np.where(b == missing_bin, nodes["missing_go_to_left"][node].astype(bool),
                            b <= nodes["bin_threshold"][node])
            child = np.where(left, nodes["left"][node], nodes["right"][node]).astype(np.int64)
            out[r, feature] += value[child] - value[node]
            at[r] = child
            active[r] = ~nodes["is_leaf"][child].astype(bool)
    return out, base


class Booster:
    """One boosted part: bin edges, missing-value bin, baseline, calibration and trees (see the module)."""

    def __init__(self, edges: Sequence[np.ndarray], missing_bin: int, baseline: float, slope: float,
                 intercept: float, nodes: Mapping[str, np.ndarray], tree_start: np.ndarray):
        self.edges = [np.ascontiguousarray(e, dtype=np.float64) for e in edges]
        self.missing_bin = int(missing_bin)
        self.baseline = float(baseline)
        self.slope, self.intercept = float(slope), float(intercept)
        self.nodes = {name: np.asarray(nodes[name]) for name in NODE_FIELDS}
        self.tree_start = np.asarray(tree_start, dtype=np.int64)
        self.trees = [{name: self.nodes[name][a:b] for name in NODE_FIELDS}
                      for a, b in zip(self.tree_start[:-1].tolist(), self.tree_start[1:].tolist(), strict=True)]
        self._check()
        self.means = [node_means(tree) for tree in self.trees]
        self._tables()
        # how a large set of rows is binned and walked: `runs` runs of rows handed to `at_once` (`use_runs`)
        self.runs, self.at_once = 1, None

    def use_runs(self, runs: int, at_once: Any) -> None:
        """Bin and walk `THREADED_FROM` rows or more as `runs` runs of whole blocks, which `at_once(work, runs)`
        does (`work(start, stop)` for each run; the caller's threads: this module starts none)."""
        self.runs, self.at_once = max(1, int(runs)), at_once

    def _spread(self, n: int, work: Any) -> None:
        """`work(start, stop)` over the rows [0, n): in runs at once where there are `THREADED_FROM` rows or more and
        a way to run them, else in one run here. Each row's work does not depend on the others' (its bins, its
        leaves and the sum of their values in the trees' order), so the results are the same either way."""
        runs = row_runs(n, self.runs) if self.at_once is not None and n >= THREADED_FROM else [(0, n)]
        if len(runs) <= 1:
            work(0, n)
            return
        self.at_once(work, runs)

    def _check(self) -> None:
        n_features = len(self.edges)
        if not 0 <= self.missing_bin <= 255 or not len(self.trees):
            raise ValueError("a missing-value bin outside a byte, or no trees")
        for tree in self.trees:
            size = len(tree["value"])
            inner = tree["is_leaf"] == 0
            if not size or not all(len(tree[name]) == size for name in NODE_FIELDS):
                raise ValueError("node arrays of different lengths")
            for side in ("left", "right"):
                children = tree[side][inner].astype(np.int64)
                if len(children) and (children.min() <= 0 or children.max() >= size or
                                      (children <= np.flatnonzero(inner)).any()):
                    raise ValueError("a child before its parent or outside its tree")
            features = tree["feature_idx"][inner]
            if len(features) and (features.min() < 0 or features.max() >= n_features):
                raise ValueError("a split on a feature the model does not have")

    def _tables(self) -> None:
        """Per tree its leaves' bits (left to right) and values; per feature and bin the bits each tree keeps."""
        n_trees = len(self.trees)
        leaves = max(int((tree["is_leaf"] != 0).sum()) for tree in self.trees)
        self.word = np.uint32 if leaves <= 32 else np.uint64 if leaves <= 64 else None
        if self.word is None:
            return
        bits = 32 if self.word is np.uint32 else 64
        every = (1 << bits) - 1
        self.leaf_value = np.zeros((n_trees, bits), dtype=np.float64)
        tables: dict[int, np.ndarray] = {}
        bins = np.arange(256)
        for t, tree in enumerate(self.trees):
            order: list[int] = []  # leaves left to right
            below: dict[int, int] = {}  # node -> the bits of the leaves under it
            stack = [(0, False)]
            while stack:
                node, done = stack.pop()
                if tree["is_leaf"][node]:
                    below[node] = 1 << len(order)
                    self.leaf_value[t, len(order)] = tree["value"][node]
                    order.append(node)
                elif done:
                    below[node] = below[int(tree["left"][node])] | below[int(tree["right"][node])]
                else:
                    stack += [(node, True), (int(tree["right"][node]), False), (int(tree["left"][node]), False)]
            for node in np.flatnonzero(tree["is_leaf"] == 0).tolist():
                feature = int(tree["feature_idx"][node])
                threshold = int(tree["bin_threshold"][node])
                right = np.where(bins == self.missing_bin, not tree["missing_go_to_left"][node], bins > threshold)
                table = tables.setdefault(feature, np.full((256, n_trees), every, dtype=self.word))
                table[right, t] &= self.word(every & ~below[int(tree["left"][node])])
        self.features = sorted(tables)
        self.bit_tables = [tables[f] for f in self.features]

    def bins(self, X: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:  # noqa: N803
        """Each value's bin (uint8, one row of bytes per row): the first edge at or above it; NaN: the missing bin.
        Of these `columns` of X alone, when given (in their order)."""
        X = np.asarray(X, dtype=np.float64)  # noqa: N806
        if X.ndim != 2 or X.shape[1] != len(self.edges):
            raise ValueError(f"{X.shape[1] if X.ndim == 2 else '?'} columns for a model of {len(self.edges)} features")
        columns = range(len(self.edges)) if columns is None else list(columns)
        out = np.empty((len(X), len(columns)), dtype=np.uint8)

        def rows(start: int, stop: int) -> None:
            for k, j in enumerate(columns):
                column = X[start:stop, j]
                out[start:stop, k] = np.where(np.isnan(column), self.missing_bin,
                                              np.searchsorted(self.edges[j], column, side="left"))

        self._spread(len(X), rows)
        return out

    def raw(self, binned: np.ndarray) -> np.ndarray:
        """The raw log-odds of binned rows: the baseline plus each tree's leaf value, added tree after tree."""
        n = len(binned)
        raw = np.zeros(n, dtype=np.float64)
        raw += self.baseline
        if not n:
            return raw
        if self.word is None:  # trees too large for a word of leaf bits: walked level by level
            for tree in self.trees:
                raw += self._walk(tree, binned)
            return raw
        n_trees = len(self.trees)
        bits = self.leaf_value.shape[1]
        offsets = np.arange(n_trees, dtype=np.int64) * bits
        flat_values = self.leaf_value.ravel()

        def rows(first: int, stop: int) -> None:
            for start in range(first, stop, BLOCK):
                block = binned[start:min(start + BLOCK, stop)]
                keep = np.full((len(block), n_trees), ~self.word(0), dtype=self.word)
                for feature, table in zip(self.features, self.bit_tables, strict=True):
                    keep &= table[block[:, feature]]
                lowest = keep & (~keep + self.word(1))  # the lowest bit left: the row's leaf
                leaf = np.frexp(lowest.astype(np.float64))[1] - 1
                values = flat_values[leaf + offsets]
                out = raw[start:start + len(block)]
                for t in range(n_trees):
                    out += values[:, t]

        self._spread(n, rows)
        return raw

    def _walk(self, tree: Mapping[str, np.ndarray], binned: np.ndarray) -> np.ndarray:
        at = np.zeros(len(binned), dtype=np.int64)
        rows = np.arange(len(binned))
        active = ~tree["is_leaf"][at].astype(bool)
        while active.any():
            r, node = rows[active], at[active]
            b = binned[r, tree["feature_idx"][node].astype(np.int64)]
            left = np.where(b == self.missing_bin, tree["missing_go_to_left"][node].astype(bool),
                            b <= tree["bin_threshold"][node])
            child = np.where(left, tree["left"][node], tree["right"][node]).astype(np.int64)
            at[r] = child
            active[r] = ~tree["is_leaf"][child].astype(bool)
        return tree["value"][at].astype(np.float64)

    def decision(self, binned: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of binned rows."""
        return self.slope * self.raw(binned) + self.intercept

    def contributions(self, binned: np.ndarray) -> tuple[np.ndarray, float]:
        raw, base = path_contributions(self.trees, self.baseline, self.missing_bin, binned, self.means)
        return self.slope * raw, self.slope * base + self.intercept

    def split_edges(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per feature, the edges some tree splits on (as `detectors.sklearn_internals.split_edges`)."""
        inner = self.nodes["is_leaf"] == 0
        out: dict[str, set[float]] = {name: set() for name in names}
        for j, threshold in zip(self.nodes["feature_idx"][inner].tolist(), self.nodes["bin_threshold"][inner].tolist(),
                                strict=True):
            edges = self.edges[j]
            if threshold < len(edges):
                out[names[j]].add(float(edges[threshold]))
        return {name: np.array(sorted(values), dtype=np.float64) for name, values in out.items()}


class Prior:
    """The rules prior: log-odds = the flag columns (NaN as 0) . coefficients + intercept."""

    def __init__(self, columns: np.ndarray, coef: np.ndarray, intercept: float):
        self.columns = np.asarray(columns, dtype=np.int64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        if self.columns.shape != self.coef.shape or self.columns.ndim != 1:
            raise ValueError("one coefficient per prior column")


def prior_bytes(values: np.ndarray) -> np.ndarray | None:
    """A prior's columns as bytes (NaN as 0), or None where a value is not a whole number from 0 to 255."""
    values = np.nan_to_num(values)
    if values.size and not (np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255):
        return None
    return values.astype(np.uint8)


class ByteRows:
    """A classifier's input kept as bytes per row, and its scores of such rows: each boosted part's bin of every
    column, then each prior's columns as they are (flag indicators and the flag count: small whole numbers). Shared by
    `LeanClassifier` and `detectors.classifier.BinnedInput`, whose `parts` ((kind, weight, part), in the blend's
    order) and `offsets` (each part's columns of the bytes) say what they hold: a boosted part bins (`bins(X,
    columns)`), scores (`decision`) and explains (`contributions`) binned rows, calibrated; a prior has `columns`,
    `coef` and `intercept`. The same operations in the same order as the classifier's own, so the same scores, bit
    for bit."""

    parts: list[tuple[str, float, Any]]
    offsets: list[np.ndarray]
    blend: bool
    n_features: int
    width: int

    def _add(self, values: list[np.ndarray], n: int) -> np.ndarray:
        if not self.blend:
            return values[0] if values else np.zeros(n)
        total = None
        for (_, weight, _), value in zip(self.parts, values, strict=True):
            value = weight * value
            total = value if total is None else total + value
        return total if total is not None else np.zeros(n)

    def _blended(self, part_of: Any, n: int) -> tuple[np.ndarray, float]:
        """The parts' contributions (`part_of(kind, part, its offsets)` -> (per row and feature, base)), weighed and
        added in the blend's order."""
        out, base = None, 0.0
        for (kind, weight, part), at in zip(self.parts, self.offsets, strict=True):
            c, b = part_of(kind, part, at)
            if not self.blend:
                return c, b
            out = weight * c if out is None else out + weight * c
            base += weight * b
        return (out if out is not None else np.zeros((n, self.n_features))), base

    def bins(self, X: np.ndarray) -> np.ndarray | None:  # noqa: N803
        """Each row's bytes (None: a prior column holds a value a byte cannot keep exactly)."""
        X = np.asarray(X, dtype=np.float64)  # noqa: N806
        out = np.empty((len(X), self.width), dtype=np.uint8)
        for (kind, _, part), at in zip(self.parts, self.offsets, strict=True):
            if kind == "boost":
                out[:, at] = part.bins(X)
            else:
                kept = prior_bytes(X[:, part.columns])
                if kept is None:
                    return None
                out[:, at] = kept
        return out

    def rebin(self, binned: np.ndarray, X: np.ndarray, columns: list[int]) -> bool:  # noqa: N803
        """These columns of `X` put into the rows' bytes again, in place (False: one cannot be kept)."""
        columns = list(columns)
        for (kind, _, part), at in zip(self.parts, self.offsets, strict=True):
            if kind == "boost":
                binned[:, at[columns]] = part.bins(X, columns)
                continue
            for j, column in enumerate(part.columns.tolist()):
                if column in columns:
                    kept = prior_bytes(X[:, column])
                    if kept is None:
                        return False
                    binned[:, at[j]] = kept
        return True

    def decision(self, binned: np.ndarray) -> np.ndarray:
        """The log-odds of rows from their bytes."""
        values = []
        for (kind, _, part), at in zip(self.parts, self.offsets, strict=True):
            if kind == "boost":
                values.append(part.decision(np.ascontiguousarray(binned[:, at])))
            else:
                values.append(np.ascontiguousarray(binned[:, at], dtype=np.float64) @ part.coef + part.intercept)
        return self._add(values, len(binned))

    def fraud_probability(self, binned: np.ndarray) -> np.ndarray:
        return sigmoid(self.decision(binned))

    def contributions_of(self, binned: np.ndarray) -> tuple[np.ndarray, float]:
        """The classifier's `contributions` of rows, from their bytes (the trees' path contributions only ever
        compare bins; the prior's columns are kept as they are)."""
        def part_of(kind: str, part: Any, at: np.ndarray) -> tuple[np.ndarray, float]:
            if kind == "boost":
                return part.contributions(np.ascontiguousarray(binned[:, at]))
            c = np.zeros((len(binned), self.n_features))
            c[:, part.columns] = binned[:, at].astype(np.float64) * part.coef
            return c, part.intercept

        return self._blended(part_of, len(binned))


class LeanClassifier(ByteRows):
    """The classifier of a `LeanModel`: the blend's parts with a weight, in the blend's order. Scores float rows
    (`decision_function`, `predict_proba`, `contributions`, as the scikit-learn classifier does) and binned rows
    (`bins`, `rebin`, `decision`, `fraud_probability`, `contributions_of`: as `detectors.classifier.BinnedInput`
    does, over the same bytes: each boosted part's bin of every column, then each prior's columns as they are)."""

    def __init__(self, n_features: int, parts: list[tuple[str, float, Any]], blend: bool,
                 shares: list[tuple[str, float]]):
        self.n_features_in_ = self.n_features = int(n_features)
        self.parts = parts
        self.blend = blend
        self._shares = shares
        self.offsets: list[np.ndarray] = []
        offset = 0
        for kind, _weight, part in parts:
            if kind == "boost" and len(part.edges) != self.n_features:
                raise ValueError("a boosted part over another number of features")
            if kind == "prior" and len(part.columns) and (part.columns.min() < 0 or
                                                          part.columns.max() >= self.n_features):
                raise ValueError("a prior column the model does not have")
            width = self.n_features if kind == "boost" else len(part.columns)
            self.offsets.append(np.arange(offset, offset + width))
            offset += width
        self.width = offset

    def use_runs(self, runs: int, at_once: Any) -> None:
        """Bin and walk large sets of rows as `runs` runs handed to `at_once` (the same results: `Booster._spread`)."""
        for kind, _, part in self.parts:
            if kind == "boost":
                part.use_runs(runs, at_once)

    # float rows, as the scikit-learn classifier scores them
    def decision_function(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        X = np.asarray(X, dtype=np.float64)  # noqa: N806
        values = []
        for kind, _, part in self.parts:
            if kind == "boost":
                values.append(part.decision(part.bins(X)))
            else:
                values.append(np.nan_to_num(X[:, part.columns]) @ part.coef + part.intercept)
        return self._add(values, len(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        fraud = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - fraud, fraud])

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:  # noqa: N803
        X = np.asarray(X, dtype=np.float64)  # noqa: N806

        def part_of(kind: str, part: Any, _at: np.ndarray) -> tuple[np.ndarray, float]:
            if kind == "boost":
                return part.contributions(part.bins(X))
            c = np.zeros(X.shape)
            c[:, part.columns] = np.nan_to_num(X[:, part.columns]) * part.coef
            return c, part.intercept

        return self._blended(part_of, len(X))

    def base_value(self) -> float:
        """The log-odds every row starts from (its contributions add to it)."""
        return self.contributions(np.zeros((1, self.n_features)))[1]

    def shares(self) -> list[dict[str, Any]]:
        """Which parts score, with their weights as shares of the total (as `BlendedClassifier.shares`)."""
        if not self.blend:
            return [{"part": "model", "weight": 1.0}]
        total = sum(w for _, w in self._shares) or 1.0
        return [{"part": name, "weight": round(w / total, 4)} for name, w in self._shares if w > 0]

    def score_edges(self, names: Sequence[str]) -> dict[str, np.ndarray | None]:
        """As `detectors.classifier.score_edges`: per feature, the split edges of the boosted parts; None where the
        prior reads it."""
        edges: dict[str, set[float]] = {name: set() for name in names}
        linear: set[str] = set()
        for kind, _, part in self.parts:
            if kind == "boost":
                for name, values in part.split_edges(names).items():
                    edges[name].update(values.tolist())
            else:
                linear.update(names[j] for j, c in zip(part.columns.tolist(), part.coef.tolist(), strict=True)
                              if c != 0)
        return {name: None if name in linear else np.array(sorted(edges[name]), dtype=np.float64) for name in names}


class BinnedRows:
    """A `LeanClassifier` seen as `detectors.classifier.BinnedInput` (the scorer's interface for binned rows)."""

    def __init__(self, classifier: LeanClassifier):
        self.classifier = classifier
        self.width = classifier.width
        self.bins, self.rebin = classifier.bins, classifier.rebin
        self.decision, self.fraud_probability = classifier.decision, classifier.fraud_probability
        self.contributions = classifier.contributions_of


class LeanFeatures:
    """The feature step of a `LeanModel` (as `OrderFeatures`: the same function works the features out)."""

    def __init__(self, names: Sequence[str], max_age_days: float):
        self.names = [str(n) for n in names]
        self.max_age_days = float(max_age_days)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.names, dtype=object)

    def transform_frame(self, X: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:  # noqa: N803
        return feature_matrix.transform_frame(X, self.names, self.max_age_days, rows)

    def transform(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.transform_frame(X).to_numpy(dtype=np.float64)


class LeanModel:
    """A scoring pipeline as numbers: `named_steps["features"]` and `named_steps["classifier"]`, as the
    scikit-learn pipeline names them; `source` says which model file it was made from (its SHA-256)."""

    def __init__(self, features: LeanFeatures, classifier: LeanClassifier, source: dict[str, Any]):
        if classifier.n_features != len(features.names):
            raise ValueError("a classifier over another number of features")
        self.features, self.classifier, self.source = features, classifier, dict(source)
        self.named_steps = {"features": features, "classifier": classifier}

    def binned(self) -> BinnedRows:
        return BinnedRows(self.classifier)

    # ---------------------------------------------------------------------------------- plain arrays and back

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as named plain arrays (what `save` writes)."""
        out: dict[str, np.ndarray] = {}
        parts = []
        for i, (kind, weight, part) in enumerate(self.classifier.parts):
            if kind == "boost":
                parts.append({"kind": kind, "weight": weight, "slope": part.slope, "intercept": part.intercept,
                              "baseline": part.baseline, "missing_bin": part.missing_bin})
                out[f"p{i}_edges"] = np.concatenate([np.zeros(0)] + part.edges)
                out[f"p{i}_edge_start"] = np.cumsum([0] + [len(e) for e in part.edges]).astype(np.int64)
                out[f"p{i}_tree_start"] = part.tree_start
                for name in NODE_FIELDS:
                    out[f"p{i}_{name}"] = part.nodes[name]
            else:
                parts.append({"kind": kind, "weight": weight, "intercept": part.intercept})
                out[f"p{i}_columns"] = part.columns
                out[f"p{i}_coef"] = part.coef
        meta = {"format": FORMAT, "features": self.features.names, "max_age_days": self.features.max_age_days,
                "blend": self.classifier.blend, "shares": [[n, w] for n, w in self.classifier._shares],
                "parts": parts, "source": self.source}
        out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        return out

    @classmethod
    def of_arrays(cls, arrays: Mapping[str, np.ndarray]) -> LeanModel:
        """The model from `arrays` (ValueError / KeyError / TypeError where they are not what `arrays` writes)."""
        meta = json.loads(np.asarray(arrays["meta"], dtype=np.uint8).tobytes().decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"lean model format {meta.get('format')!r}, this version reads {FORMAT}")
        names = [str(n) for n in meta["features"]]
        parts: list[tuple[str, float, Any]] = []
        for i, p in enumerate(meta["parts"]):
            if p["kind"] == "boost":
                edges, start = arrays[f"p{i}_edges"], arrays[f"p{i}_edge_start"]
                if len(start) != len(names) + 1:
                    raise ValueError("bin edges of another number of features")
                part: Any = Booster([edges[a:b] for a, b in zip(start[:-1].tolist(), start[1:].tolist(), strict=True)],
                                    int(p["missing_bin"]), float(p["baseline"]), float(p["slope"]),
                                    float(p["intercept"]), {name: arrays[f"p{i}_{name}"] for name in NODE_FIELDS},
                                    arrays[f"p{i}_tree_start"])
            elif p["kind"] == "prior":
                part = Prior(arrays[f"p{i}_columns"], arrays[f"p{i}_coef"], float(p["intercept"]))
            else:
                raise ValueError(f"a part of kind {p['kind']!r}")
            parts.append((str(p["kind"]), float(p["weight"]), part))
        classifier = LeanClassifier(len(names), parts, bool(meta["blend"]),
                                    [(str(n), float(w)) for n, w in meta["shares"]])
        return cls(LeanFeatures(names, float(meta["max_age_days"])), classifier, meta.get("source") or {})
