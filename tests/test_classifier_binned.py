"""Scoring walks the trees over binned values (`binned_decision_function`): the same numbers as scikit-learn's
own `decision_function`, bit for bit, whatever the values look like; and its reasons add up to them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from detectors import classifier
from detectors.classifier import FraudClassifier, binned_decision_function


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(rows, 6))
    X[:, 1] = rng.randint(0, 4, rows)  # few distinct values: thresholds fall on the data itself
    X[rng.rand(rows) < 0.2, 2] = np.nan  # a feature with missing values
    y = ((X[:, 0] + np.nan_to_num(X[:, 2]) + (X[:, 1] == 2) + rng.normal(scale=0.5, size=rows)) > 0.8).astype(int)
    return X, y


@pytest.fixture(scope="module")
def booster() -> HistGradientBoostingClassifier:
    X, y = _data(3000, 0)
    return HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, random_state=0).fit(X, y)


def test_binned_equals_decision_function_on_awkward_values(booster):
    X, _ = _data(5000, 1)
    X[:50, 0] = np.inf
    X[50:100, 0] = -np.inf
    X[100:150, 3] = 1e12  # far outside anything seen in training
    X[150:200, 4] = np.nan  # missing where training never had a missing value
    X[200:260, 1] = booster._bin_mapper.bin_thresholds_[1][0]  # exactly on a threshold
    expected = booster.decision_function(X)
    assert np.array_equal(binned_decision_function(booster, X), expected)
    assert np.array_equal(binned_decision_function(booster, np.asfortranarray(X)), expected)


def test_the_public_call_answers_when_the_private_parts_are_missing(booster, monkeypatch):
    X, _ = _data(200, 2)
    expected = booster.decision_function(X)
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    monkeypatch.delattr(TreePredictor, "predict_binned")
    assert np.array_equal(binned_decision_function(booster, X), expected)


def test_fraud_classifier_scores_through_the_binned_walk(monkeypatch):
    X, y = _data(3000, 3)
    model = FraudClassifier(max_iter=30, random_state=0).fit(X, y)
    probability = model.predict_proba(X)[:, 1]
    from detectors import classifier

    monkeypatch.setattr(classifier, "binned_decision_function", lambda booster, X: booster.decision_function(X))
    assert np.array_equal(model.predict_proba(X)[:, 1], probability)
    assert 0.0 < probability.min() < probability.max() < 1.0


def test_a_read_only_matrix_is_binned_as_it_is_and_scores_the_same(booster, monkeypatch):
    X, _ = _data(2000, 4)
    expected = booster.decision_function(X)
    frozen = np.asfortranarray(X)
    frozen.flags.writeable = False  # as pandas hands out a frame's block under copy-on-write
    copies = []
    real_copy = np.ndarray.copy

    class Spy(np.ndarray):
        def copy(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            copies.append(self.shape)
            return real_copy(self, *args, **kwargs)

    watched = frozen.view(Spy)
    watched.flags.writeable = False
    assert np.array_equal(binned_decision_function(booster, watched), expected)
    assert copies == []  # no 0.2-second copy of a million-row matrix


def test_contributions_add_up_to_the_log_odds_of_every_row():
    X, y = _data(3000, 5)
    model = FraudClassifier(max_iter=30, random_state=0).fit(X, y)
    rows = X[:500].copy()
    rows[:100, 2] = np.nan
    contributions, base = model.contributions(rows)
    assert contributions.shape == rows.shape
    np.testing.assert_allclose(contributions.sum(axis=1) + base, model.decision_function(rows), atol=1e-9)
    # a column the model never splits on gets nothing
    unused = [j for j in range(rows.shape[1]) if not any(
        (nodes["feature_idx"][nodes["is_leaf"] == 0] == j).any()
        for nodes in classifier.sklearn_internals.trees(model.booster_))]
    assert all(np.all(contributions[:, j] == 0) for j in unused)


def test_contributions_from_the_bytes_are_the_classifiers_bit_for_bit():
    """Incremental scoring explains an order from its stored bytes (`BinnedInput.contributions`): the same
    numbers as the classifier's own contributions of the row, for a plain booster and for a blend with the rules
    prior (whose columns are kept as they are)."""
    from detectors.classifier import BlendedClassifier, RulesPrior, binned_input

    X, y = _data(3000, 7)
    X[:, 1] = np.clip(X[:, 1], 0, 3)  # the prior's column: small whole numbers, as flags are
    rows = X[:400].copy()
    rows[:50, 2] = np.nan
    boost = FraudClassifier(max_iter=20, random_state=0).fit(X, y)
    prior = RulesPrior(columns=[1]).fit(X, y)
    for model in (boost, BlendedClassifier.of([("boost", boost), ("prior", prior)], [0.7, 0.3])):
        walk = binned_input(model)
        binned = walk.bins(rows)
        got, got_base = walk.contributions(binned)
        want, want_base = model.contributions(rows)
        assert np.array_equal(got, want) and got_base == want_base
        assert np.array_equal(walk.decision(binned), model.decision_function(rows))
