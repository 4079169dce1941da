"""Making the shipped model (tracker/detection/world_training.py): trained on random worlds, chosen on worlds with
other settings and seeds, reported on a third set; the same recipe makes the same model."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.features import FEATURES
from tracker.detection import world_training
from tracker.errors import BadInput

SMALL = {
    "classifier": {"max_iter": 20, "learning_rate": 0.3, "min_samples_leaf": 20},
    "default_model": {
        "as_of": "2026-11-01T00:00:00Z",
        "shipped_weights": [0.5, 1.0],
        "selection_margin": 0.0,
        "train": {"first_seed": 301, "worlds": 3, "orders": 700},
        "select": {"first_seed": 401, "worlds": 1, "orders": 600},
        "report": {"first_seed": 501, "worlds": 1, "orders": 600},
        "candidate": [{"name": "flags only", "features": [f for f in FEATURES if f.startswith(("flag_", "n_flags"))]},
                      {"name": "every feature"}],
    },
}


def _with(**changes: dict) -> dict:
    spec = {**SMALL["default_model"], **changes}
    return {**SMALL, "default_model": spec}


def test_the_recipe_reads_the_sets_and_candidates():
    r = world_training.recipe(SMALL)
    assert [s.name for s in r.train] == ["train-301-700", "train-302-700", "train-303-700"]
    assert {s.region for s in r.select} == {"train", "outside"} and {s.region for s in r.report} == {"train", "outside"}
    assert [c.name for c in r.candidates] == ["flags only", "every feature"]
    assert r.candidates[1].features == FEATURES and r.candidates[0].params["max_iter"] == 20


@pytest.mark.parametrize("changes, message", [
    ({"select": {"first_seed": 302, "worlds": 1, "orders": 600}}, "in both train and select"),
    ({"report": {"first_seed": 9001, "worlds": 1, "orders": 600}}, "bench.generalisation"),
    ({"candidate": [{"name": "x", "drop": ["carrier_code"]}]}, "unknown features"),
])
def test_a_recipe_mixing_the_sets_is_refused(changes, message):
    with pytest.raises(BadInput, match=message):
        world_training.recipe(_with(**changes))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("worlds")
    seen = []
    model, meta = world_training.build(SMALL, work, jobs=2, progress=lambda *a: seen.append(a))
    return work, model, meta, seen


def test_the_build_chooses_on_held_out_worlds_and_reports_on_others(built):
    _work, model, meta, seen = built
    assert {stage for stage, _done, _total in seen} >= {"training worlds", "selection worlds", "candidates"}
    trials = meta["selection"]["trials"]
    assert len(trials) == 4  # two candidates x two weights, each scored on the selection worlds only
    assert all(set(t["ap"]) == set(meta["worlds"]["select"]) for t in trials)
    best = max(t["mean_ap"] for t in trials)
    chosen = meta["selection"]["chosen"]
    assert next(t for t in trials if (t["candidate"], t["weight"]) == (chosen["candidate"], chosen["weight"])
                )["mean_ap"] == best  # margin 0: the best pair
    assert {w["world"] for w in meta["held_out"]["worlds"]} == set(meta["worlds"]["report"])
    classifier = model.named_steps["classifier"]
    assert [p["part"] for p in classifier.shares()][:1] == ["shipped"]
    assert list(model.named_steps["features"].get_feature_names_out()) == meta["features"]


def test_the_same_recipe_makes_the_same_model(built):
    work, model, meta, _seen = built
    again, meta_again = world_training.build(SMALL, work, jobs=1)  # the worlds come from the work folder
    assert meta_again["selection"] == meta["selection"] and meta_again["held_out"] == meta["held_out"]
    world = world_training.load_worlds(world_training.recipe(SMALL).report, work, world_training.recipe(SMALL).as_of)[0]
    X = world.columns(meta["features"])  # noqa: N806
    np.testing.assert_array_equal(again.named_steps["classifier"].predict_proba(X),
                                  model.named_steps["classifier"].predict_proba(X))


def test_the_model_made_round_trips_through_its_skops_file_bit_for_bit(built, tmp_path):
    from tracker.detection import persistence

    work, model, meta, _seen = built
    path = tmp_path / "classifier.skops"
    persistence.save_model(model, path, meta)
    again = persistence.load_model(path)  # SHA-256, scikit-learn version and types checked on the way
    world = world_training.load_worlds(world_training.recipe(SMALL).report, work, world_training.recipe(SMALL).as_of)[0]
    # the whole pipeline from the world's feature frame, as scoring calls it, and each part's contributions
    np.testing.assert_array_equal(again.predict_proba(world.frame), model.predict_proba(world.frame))
    X = world.columns(meta["features"])  # noqa: N806
    classifier, loaded = model.named_steps["classifier"], again.named_steps["classifier"]
    np.testing.assert_array_equal(loaded.decision_function(X), classifier.decision_function(X))
    (mine, base), (theirs, base_again) = classifier.contributions(X), loaded.contributions(X)
    np.testing.assert_array_equal(theirs, mine)
    assert base_again == base


def _split_points(model) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Per feature, the thresholds the pipeline's boosted parts test (`score_edges`, the prior's features left out)."""
    from detectors.classifier import score_edges

    return {name: edges for name, edges in score_edges(model).items() if edges is not None}


def test_the_shipped_models_seller_thresholds_sit_between_grid_points(built):
    """The built model and the shipped one are fitted on the seller features' grids: every threshold they test on
    a seller feature is halfway between two points of its grid (neighbours, unless the training data lacks the
    points between), so a seller's statistics moving by an order rarely cross one."""
    import json
    from pathlib import Path

    from detectors import seller_aggregates as sa
    from detectors.classifier import FraudClassifier, grids
    from tracker.detection import persistence

    root = Path(__file__).resolve().parent.parent / "data" / "models"
    meta = json.loads((root / "classifier.json").read_text())
    shipped = persistence.load_model(root / "classifier.skops", meta["sha256"], metadata=meta)
    for model in (built[1], shipped):
        names = list(model.named_steps["features"].get_feature_names_out())
        parts = [p for _, p in model.named_steps["classifier"].parts if isinstance(p, FraudClassifier)]
        assert parts and all(list(p.grids) == grids(names) for p in parts)
        points = _split_points(model)
        seller = [name for name in names if name in sa.GRID_OF and len(points.get(name, ()))]
        assert seller  # the model does split on seller features
        for name in seller:
            grid = np.asarray(sa.GRIDS[sa.GRID_OF[name]])
            halfway = ((grid[:, None] + grid[None, :]) / 2)[np.triu_indices(len(grid), 1)]  # of two points the data has
            assert np.isclose(points[name][:, None], halfway).any(axis=1).all(), name
