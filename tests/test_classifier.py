"""The classifier as a scikit-learn estimator: contract, determinism, persistence that refuses tampering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_fixtures import AS_OF, build_store, plain_text
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from detectors.classifier import FraudClassifier, make_pipeline
from detectors.features import FEATURES, OrderFeatures
from tracker.detection import persistence, registry, shipment_facts, training
from tracker.detection.readers import feature_frame
from tracker.errors import RunFailure


@parametrize_with_checks([FraudClassifier(max_iter=3)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_init_stores_parameters_only_and_clone_keeps_them():
    model = FraudClassifier(max_iter=7, calibration="sigmoid", random_state=3)
    assert model.get_params()["max_iter"] == 7
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "booster_")
    assert clone(OrderFeatures(max_age_days=30)).get_params() == {"max_age_days": 30}


@pytest.fixture
def store_frame(db):
    labels = build_store(db, 500)
    shipment_facts.refresh(db)
    frame = feature_frame(db.conn, None, AS_OF, lambda m: m["text"].str.contains("confirm") * 0.8 + 0.1)
    return frame, labels


def test_unfitted_pipeline_refuses_to_predict(store_frame):
    frame, _ = store_frame
    with pytest.raises(NotFittedError):
        make_pipeline().predict_proba(frame)
    with pytest.raises(NotFittedError):
        OrderFeatures().transform(frame)


def test_features_are_named_and_aligned(store_frame):
    frame, labels = store_frame
    features = OrderFeatures().fit(frame)
    matrix = features.transform(frame)
    assert matrix.shape == (len(frame), len(FEATURES))
    assert list(features.get_feature_names_out()) == list(FEATURES)
    named = features.transform_frame(frame).set_index(frame["order_id"])
    fraud_fast = labels[(labels["fraud"] == 1) & (labels["pattern"] == "fast")]["order_id"]
    honest = labels[labels["fraud"] == 0]["order_id"]
    # fast fraud skips customs and arrives within days; honest parcels take over a week
    assert named.loc[named.index.isin(fraud_fast), ["n_export", "n_import"]].to_numpy().max() == 0
    assert named.loc[named.index.isin(honest), "accept_to_delivered_days"].min() > 7
    assert named.loc[named.index.isin(fraud_fast), "seller_fast_share"].min() > 0.3


def test_features_of_some_rows_are_those_rows_of_the_whole(store_frame):
    frame, _ = store_frame
    features = OrderFeatures().fit(frame)
    whole = features.transform_frame(frame)
    rows = np.flatnonzero(np.arange(len(frame)) % 3 != 1)  # a scorer's tracked orders: not a slice
    some = features.transform_frame(frame, rows)
    pd.testing.assert_frame_equal(some, whole.iloc[rows], check_exact=True)
    assert some.to_numpy().flags.f_contiguous  # still one column-major block, as the classifier reads it
    assert features.transform_frame(frame, np.zeros(0, dtype=np.int64)).shape == (0, len(FEATURES))


def test_training_is_deterministic_for_a_seed(store_frame):
    frame, labels = store_frame
    data = frame.merge(labels, on="order_id")
    first = make_pipeline(max_iter=40, random_state=5).fit(data, data["fraud"]).predict_proba(data)
    second = make_pipeline(max_iter=40, random_state=5).fit(data, data["fraud"]).predict_proba(data)
    np.testing.assert_array_equal(first, second)


def test_scores_are_probabilities_that_rank_fraud_first(store_frame):
    frame, labels = store_frame
    evaluation = training.evaluate(frame, labels, k=10)
    assert evaluation.model["pr_auc"] > 0.9
    assert evaluation.model["pr_auc"] >= evaluation.flag_count["pr_auc"]
    assert set(evaluation.model["recall_by_pattern"]) == {"fast", "reuse"}


def test_tampered_model_file_is_refused(tmp_path):
    path = tmp_path / "model.joblib"
    X = np.random.RandomState(0).normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    meta = persistence.save_model(FraudClassifier(max_iter=5).fit(X, y), path, {"kind": "test"})
    assert meta["sha256"] == persistence.sha256_file(path)
    assert persistence.load_model(path).predict_proba(X).shape == (200, 2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(persistence.ModelIntegrityError, match="does not match"):
        persistence.load_model(path)
    (tmp_path / "model.json").unlink()
    with pytest.raises(persistence.ModelIntegrityError, match="metadata missing"):
        persistence.load_model(path)


def test_store_refuses_a_tampered_active_model(db):
    labels = build_store(db, 300)
    model_id, _ = training.train_from_labels(db, labels, "test", AS_OF, with_evaluation=False)
    path = db.execute("SELECT path FROM models WHERE id = ?", [model_id]).fetchone()[0]
    with open(path, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(RunFailure, match="refusing to load"):
        registry.load_active_model(db)


def test_shipped_default_model_loads_and_matches_features():
    loaded = persistence.load_model(registry.DEFAULT_MODEL_PATH)
    meta = persistence.read_metadata(registry.DEFAULT_MODEL_PATH)
    assert meta["features"] == list(FEATURES)
    assert loaded.named_steps["classifier"].n_features_in_ == len(FEATURES)
    assert {"created_at", "training_data", "metrics", "library_versions", "sha256"} <= set(meta)


def test_whole_store_read_through_arrow_gives_the_same_frame(store_frame, db, thresholds):
    frame, _ = store_frame
    thresholds(arrow_min_orders=0)  # the child-process ADBC read, on a small store
    arrow = feature_frame(db.conn, None, AS_OF, lambda m: m["text"].str.contains("confirm") * 0.8 + 0.1)
    assert arrow.attrs["read_by"] == "child readers" and frame.attrs["read_by"] == "sql"
    pd.testing.assert_frame_equal(plain_text(arrow[frame.columns]), frame)
