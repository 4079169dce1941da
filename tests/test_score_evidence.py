"""The shipped model's scores: more evidence never lowers one, its reasons add up to its log-odds (so a saturated
score still says why), and a low-severity note adds nothing. On a generated world, scored as `tracker detect`
scores it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.classifier import log_odds
from detectors.features import FEATURES, FLAG_CODES, MONOTONIC
from detectors.reasons import contributions_by_group, explain
from tracker.detection import registry, scoring, training
from tracker.timeutil import parse_time

AS_OF = parse_time("2026-11-01T00:00:00Z")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    db, labels = training.world_store(tmp_path_factory.mktemp("world"), 2000, 31, AS_OF)
    yield db, labels
    db.close()


@pytest.fixture(scope="module")
def shipped():
    return registry.load_default()


@pytest.fixture(scope="module")
def scored(world, shipped):
    db, labels = world
    frame = training.order_frame(db, AS_OF)
    names = list(shipped.model.named_steps["features"].get_feature_names_out())
    matrix = shipped.model.named_steps["features"].transform(frame)
    return frame, names, matrix


def test_reasons_add_up_to_the_log_odds_minus_the_base(scored, shipped):
    _frame, names, matrix = scored
    classifier = shipped.model.named_steps["classifier"]
    parts, base = contributions_by_group(classifier, matrix, names)
    expected = log_odds(classifier, matrix)
    np.testing.assert_allclose(parts.to_numpy().sum(axis=1), expected - base, atol=1e-8)
    assert base == pytest.approx(classifier.base_value())
    score = classifier.predict_proba(matrix)[:, 1]
    unsaturated = (score > 1e-9) & (score < 1 - 1e-9)
    np.testing.assert_allclose(np.log(score / (1 - score))[unsaturated], expected[unsaturated], atol=1e-6)


def test_saturated_scores_show_real_reasons(scored, shipped):
    frame, names, matrix = scored
    classifier = shipped.model.named_steps["classifier"]
    score = classifier.predict_proba(matrix)[:, 1]
    top = np.flatnonzero(score >= 0.999)
    assert len(top) >= 10
    features = shipped.model.named_steps["features"].transform_frame(frame)
    reasons = [json.loads(r) for r in explain(classifier, features.iloc[top], matrix[top], score[top],
                                              min_score=0.25, max_reasons=3, min_contribution=0.1)]
    assert all(r and r[0]["weight"] >= 1.0 for r in reasons)  # log-odds: not "+0.000" at a score of 1.000
    assert all(r[0]["weight"] >= r[-1]["weight"] for r in reasons)
    # different orders at 1.000 are explained differently: the reasons are theirs
    assert len({tuple(x["feature"] for x in r) for r in reasons}) > 1


@pytest.mark.parametrize("code", FLAG_CODES)
def test_adding_a_flag_never_lowers_a_score_of_any_order_of_the_world(scored, shipped, code):
    _frame, names, matrix = scored
    if f"flag_{code}" not in names:
        pytest.skip(f"the shipped model does not read flag_{code}")
    classifier = shipped.model.named_steps["classifier"]
    j, n = names.index(f"flag_{code}"), names.index("n_flags")
    without = matrix[matrix[:, j] == 0]
    with_flag = without.copy()
    with_flag[:, j] = 1
    with_flag[:, n] += 1
    assert np.all(log_odds(classifier, with_flag) >= log_odds(classifier, without) - 1e-12)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_more_of_any_evidence_never_lowers_a_score(scored, shipped, data):
    _frame, names, matrix = scored
    classifier = shipped.model.named_steps["classifier"]
    evidence = [j for j, name in enumerate(names) if MONOTONIC.get(name) == 1]
    rows = data.draw(st.lists(st.integers(0, len(matrix) - 1), min_size=1, max_size=40))
    j = data.draw(st.sampled_from(evidence))
    step = data.draw(st.floats(0.01, 5.0))
    before = matrix[rows].copy()
    before[:, j] = np.nan_to_num(before[:, j])  # a missing count is 0 evidence
    after = before.copy()
    after[:, j] += step
    if names[j].startswith("flag_"):
        after[:, names.index("n_flags")] += step
    assert np.all(log_odds(classifier, after) >= log_odds(classifier, before) - 1e-12)


def test_a_flag_in_the_store_never_lowers_any_score_there(world):
    db, labels = world
    scoring.score_orders(db, set(), AS_OF, full=True)
    before = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
    honest = labels.loc[labels["fraud"] == 0, "order_id"]
    quiet = [o for o in honest if o in before and not db.execute(
        "SELECT 1 FROM flags WHERE order_id = ? AND resolved_at IS NULL", [o]).fetchone()][:5]
    with db.conn:
        for order_id in quiet:
            db.execute("INSERT INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                       "VALUES (?, 'wrong_destination', 'high', 'test', '2026-11-01T00:00:00Z', 'test')", [order_id])
    try:
        scoring.score_orders(db, set(), AS_OF, full=True)
        after = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
        assert all(after[o] >= before[o] - 1e-12 for o in before)
        assert all(after[o] > before[o] for o in quiet)
    finally:
        with db.conn:
            db.execute("DELETE FROM flags WHERE rule_version = 'test'")


def test_a_low_severity_note_adds_nothing_to_a_score(world):
    db, labels = world
    scoring.score_orders(db, set(), AS_OF, full=True)
    before = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
    honest = [o for o in labels.loc[labels["fraud"] == 0, "order_id"] if o in before and not db.execute(
        "SELECT 1 FROM flags WHERE order_id = ? AND resolved_at IS NULL", [o]).fetchone()][:5]
    with db.conn:
        for order_id in honest:
            db.execute("INSERT INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                       "VALUES (?, 'invalid_tracking_number', 'low', 'unknown format', '2026-11-01T00:00:00Z', "
                       "'test')", [order_id])
    try:
        scoring.score_orders(db, set(), AS_OF, full=True)
        rows = {r[0]: r for r in db.execute("SELECT order_id, score, codes FROM scores").fetchall()}
        after = {o: r[1] for o, r in rows.items()}
        assert all(after[o] == before[o] for o in before)  # none moved, not even the seller's other orders
        assert all(rows[o][2] == "invalid_tracking_number" for o in honest)  # still listed among its codes
    finally:
        with db.conn:
            db.execute("DELETE FROM flags WHERE rule_version = 'test'")



def test_a_low_unknown_number_note_alone_cannot_raise_an_order_into_a_case(world):
    from tracker.cases.settings import load_settings
    from tracker.cases.sync import sync_cases

    db, labels = world
    threshold = load_settings().score_threshold
    scoring.score_orders(db, set(), AS_OF, full=True)
    # the unflagged orders without a case scored closest below the threshold: the ones a note could tip over
    closest = [r[0] for r in db.execute(
        "SELECT s.order_id FROM scores s WHERE s.score < ? AND NOT EXISTS (SELECT 1 FROM flags f WHERE "
        "f.order_id = s.order_id AND f.resolved_at IS NULL) AND NOT EXISTS (SELECT 1 FROM cases c WHERE "
        "c.order_id = s.order_id) ORDER BY s.score DESC LIMIT 10", [threshold])]
    assert len(closest) == 10
    with db.conn:
        db.conn.executemany(
            "INSERT INTO flags(order_id, code, severity, explanation, detected_at, rule_version) VALUES "
            "(?, 'invalid_tracking_number', 'low', 'unknown format', '2026-11-01T00:00:00Z', 'test')",
            [(o,) for o in closest])
    try:
        scoring.score_orders(db, set(), AS_OF, full=True)
        sync_cases(db, set(closest), AS_OF)
        marks = ",".join("?" * len(closest))
        assert db.execute(f"SELECT max(score) FROM scores WHERE order_id IN ({marks})", closest).fetchone()[0] \
            < threshold
        assert db.execute(f"SELECT count(*) FROM cases WHERE order_id IN ({marks})", closest).fetchone()[0] == 0
    finally:
        with db.conn:
            db.execute("DELETE FROM flags WHERE rule_version = 'test'")


def test_the_shipped_model_reads_only_features_this_version_computes(shipped):
    assert set(shipped.model.named_steps["features"].get_feature_names_out()) <= set(FEATURES)


def test_a_value_moving_between_two_score_edges_leaves_the_score(scored, shipped):
    from detectors.classifier import score_edges

    _frame, names, matrix = scored
    classifier = shipped.model.named_steps["classifier"]
    edges = score_edges(shipped.model)
    assert set(edges) == set(names)
    assert any(e is None for e in edges.values())  # the rules prior reads the flags: any change counts
    before = log_odds(classifier, matrix)
    moved = matrix.copy()
    for j, name in enumerate(names):
        if edges[name] is None:
            continue
        cuts = np.r_[-np.inf, edges[name], np.inf]
        values = matrix[:, j]
        at = np.searchsorted(cuts, values, side="left")  # values[i] in (cuts[at-1], cuts[at]]
        known = ~np.isnan(values)
        lo, hi = cuts[np.clip(at - 1, 0, None)], cuts[np.clip(at, None, len(cuts) - 1)]
        inside = known & np.isfinite(lo) & np.isfinite(hi)
        moved[inside, j] = hi[inside]  # the top of its interval: no edge crossed
    np.testing.assert_array_equal(log_odds(classifier, moved), before)


@pytest.mark.parametrize("seed", [8001, 8002])
def test_the_shipped_model_beats_the_flag_count_on_a_world_outside_its_training_ranges(tmp_path, seed):
    from sklearn.metrics import average_precision_score

    from tracker.world import profiles

    profile = profiles.sample(seed, "outside")
    assert profile.outside  # some settings beyond what any training world had
    meta = registry.load_default().metadata
    assert not any(name.endswith(f"-{seed}-3000") for names in meta["worlds"].values() for name in names)
    db, labels = training.world_store(tmp_path, 3000, seed, AS_OF, profile=profile)
    scoring.score_orders(db, set(), AS_OF, full=True)
    score = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
    flags = dict(db.execute("SELECT order_id, count(*) FROM flags WHERE resolved_at IS NULL GROUP BY order_id"))
    y = labels["fraud"].to_numpy()
    ap_model = average_precision_score(y, labels["order_id"].map(score).fillna(0.0))
    ap_flags = average_precision_score(y, labels["order_id"].map(flags).fillna(0).astype(float))
    db.close()
    assert ap_model >= 0.9 and ap_model >= ap_flags + 0.03, (ap_model, ap_flags)


def test_an_incremental_run_reads_the_typical_transit_the_full_run_kept(world, monkeypatch):
    from tracker.detection import readers

    db, labels = world
    scoring.score_orders(db, set(), AS_OF, full=True)
    kept = json.loads(db.execute("SELECT value FROM meta WHERE key = 'typical_transit'").fetchone()[0])
    assert kept == pytest.approx(readers.typical_transit(db.conn))  # what a scan of the store finds
    full = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
    some = set(labels["order_id"].iloc[::97]) & set(full)
    monkeypatch.setattr(readers, "typical_transit", lambda conn: pytest.fail("the store was scanned again"))
    with db.conn:
        db.execute("DELETE FROM scores WHERE order_id IN (SELECT value FROM json_each(?))", [json.dumps(list(some))])
    scoring.score_orders(db, some, AS_OF)
    again = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
    assert all(again[o] == full[o] for o in some)
