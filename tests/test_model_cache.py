"""A model file read once is kept rebuilt in the user's cache: the next load skips skops, scores bit for bit the
same, and a cache file someone else could have written is never read."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from tracker.detection import persistence, registry


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TRACKER_CACHE_DIR", str(folder))
    return folder / "models"


def _load():
    return registry.load_default().model


def test_second_load_comes_from_the_cache_and_scores_the_same(cache):
    first = _load()
    kept = list(cache.glob("*.pickle"))
    assert len(kept) == 1 and (kept[0].stat().st_mode & 0o777) == 0o600
    assert (cache.stat().st_mode & 0o777) == 0o700
    # the cached copy is what the next load returns: mark it and see the mark come back
    with open(kept[0], "rb") as fh:
        model = pickle.load(fh)
    model.cache_mark_ = "from the cache"
    with open(kept[0], "wb") as fh:
        pickle.dump(model, fh)
    second = _load()
    assert getattr(second, "cache_mark_", None) == "from the cache"
    n = len(first.named_steps["features"].get_feature_names_out())
    rows = np.random.default_rng(0).random((200, n))
    rows[:, ::3] = np.round(rows[:, ::3])
    a = first.named_steps["classifier"].predict_proba(rows)
    b = second.named_steps["classifier"].predict_proba(rows)
    assert np.array_equal(a, b)


def test_a_cache_file_others_may_write_is_ignored(cache):
    _load()
    (kept,) = cache.glob("*.pickle")
    with open(kept, "rb") as fh:
        model = pickle.load(fh)
    model.cache_mark_ = "planted"
    with open(kept, "wb") as fh:
        pickle.dump(model, fh)
    os.chmod(kept, 0o666)
    assert getattr(_load(), "cache_mark_", None) is None  # rebuilt from the skops file instead


def test_an_empty_cache_setting_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_CACHE_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert persistence.load_cache_dir() is None
    _load()
    assert not list(tmp_path.rglob("*.pickle"))
