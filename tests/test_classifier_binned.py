"""Scoring walks the trees over binned values (`binned_decision_function`): the same numbers as scikit-learn's
own `decision_function`, bit for bit, whatever the values look like."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

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
