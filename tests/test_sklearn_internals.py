"""The private parts of scikit-learn the classifier reads (detectors/sklearn_internals.py) are still there and
still mean what they meant. When an upgrade moves them, this fails first, naming the part."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from detectors import lean_model
from detectors import sklearn_internals as internals


@pytest.fixture(scope="module")
def booster() -> HistGradientBoostingClassifier:
    rng = np.random.RandomState(0)
    X = rng.normal(size=(4000, 5))
    X[rng.rand(4000) < 0.15, 3] = np.nan
    y = ((X[:, 0] - X[:, 1] + np.nan_to_num(X[:, 3]) + rng.normal(scale=0.7, size=4000)) > 0.5).astype(int)
    return HistGradientBoostingClassifier(max_iter=25, monotonic_cst=[1, -1, 0, 0, 0], random_state=0).fit(X, y)


def test_every_private_part_read_is_there(booster):
    internals.check(booster)  # raises InternalsChanged naming what moved
    assert set(internals.NODE_FIELDS) <= set(internals.trees(booster)[0].dtype.names)
    assert internals.openmp_threads() >= 1


def test_a_missing_part_is_named(booster, monkeypatch):
    class Moved:
        pass

    stripped = Moved()
    for name in ("_baseline_prediction", "_predictors", "n_trees_per_iteration_"):
        setattr(stripped, name, getattr(booster, name))
    with pytest.raises(internals.InternalsChanged, match="_bin_mapper"):
        internals.check(stripped)


def test_the_binned_walk_and_the_path_contributions_are_the_public_answer(booster):
    X = np.random.RandomState(1).normal(size=(2000, 5))
    X[:100, 3] = np.nan
    walk = internals.BinnedWalk(booster)
    binned = walk.bins(X)
    assert np.array_equal(walk.decision(binned), booster.decision_function(X))
    contributions, base = internals.path_contributions(booster, binned)
    np.testing.assert_allclose(contributions.sum(axis=1) + base, booster.decision_function(X), atol=1e-9)
    assert base == pytest.approx(internals.baseline(booster) + sum(
        float(lean_model.node_means(nodes)[0]) for nodes in internals.trees(booster)))


def test_bin_edges_say_where_a_score_can_change(booster):
    names = ["a", "b", "c", "d", "e"]
    edges = internals.bin_thresholds(booster, names)
    used = internals.split_edges(booster, names)
    assert set(edges) == set(names) == set(used)
    for name in names:
        assert np.all(np.diff(edges[name]) > 0) and set(used[name]) <= set(edges[name])
    rng = np.random.RandomState(2)
    X = rng.normal(size=(300, 5))
    before = booster.decision_function(X)
    # move every value of feature 0 within its interval between two split edges: the score stays
    cuts = np.r_[-np.inf, used["a"], np.inf]
    at = np.searchsorted(cuts, X[:, 0], side="left")
    lo, hi = cuts[at - 1], cuts[at]
    moved = X.copy()
    inside = np.isfinite(lo) & np.isfinite(hi)
    moved[inside, 0] = np.nextafter(hi[inside], -np.inf)  # the largest value still at most the upper edge
    np.testing.assert_array_equal(booster.decision_function(moved), before)
    # and crossing the edges does change some
    moved[:, 0] = X[:, 0] + 3
    assert not np.array_equal(booster.decision_function(moved), before)


def test_the_shipped_model_still_has_every_private_part_read():
    from tracker.detection import registry

    classifier = registry.load_default().model.named_steps["classifier"]
    boosters = [part.booster_ for _name, part in classifier.parts if hasattr(part, "booster_")]
    assert boosters, "the shipped model has no boosted part to read"
    for booster in boosters:
        internals.check(booster)


def test_no_other_module_reaches_into_scikit_learn_privately():
    """Every private scikit-learn name is read here and checked by `check`: nowhere else in the project."""
    import inspect
    import re
    from pathlib import Path

    root = Path(internals.__file__).resolve().parents[1]
    private = re.compile(r"\._(bin_mapper|baseline_prediction|predictors)\b|sklearn\.\w+(\.\w+)*\._\w+")
    own = Path(internals.__file__).resolve()
    assert private.search(own.read_text())  # the pattern still finds this module's own reads
    source = inspect.getsource(internals.check)
    for name in ("_bin_mapper", "_baseline_prediction", "_predictors", "_openmp_effective_n_threads"):
        assert name in source, f"check() no longer guards {name}"
    offenders = [f"{path.relative_to(root)}:{n}" for folder in ("detectors", "tracker", "bench")
                 for path in sorted((root / folder).rglob("*.py")) if path.resolve() != own
                 for n, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert not offenders, "private scikit-learn parts read outside detectors/sklearn_internals.py: " + ", ".join(
        offenders)

