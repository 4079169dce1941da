"""The rules' deadlines merged per order (`flagging._deadlines`): the earliest future time of any rule, exactly as a
pandas group-by gives it, without pandas' slow paths for a million order ids."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from tracker.detection.flagging import _deadlines


def _rule(series: pd.Series) -> SimpleNamespace:
    return SimpleNamespace(deadlines=lambda ctx: series)


def test_the_earliest_future_deadline_per_order_as_a_group_by_gives_it():
    rng = np.random.default_rng(7)
    ids = np.array([f"ORD-{i:05d}" for i in rng.permutation(3000)], dtype=object)
    parts = []
    for _ in range(3):  # each rule dates a random subset, some orders by several rules, some times past or missing
        pick = rng.random(len(ids)) < 0.6
        times = rng.uniform(100.0, 200.0, int(pick.sum()))
        times[rng.random(len(times)) < 0.05] = np.nan
        parts.append(pd.Series(times, index=ids[pick]))
    ctx = SimpleNamespace(as_of_jd=150.0)
    got = _deadlines([_rule(p) for p in parts] + [SimpleNamespace(deadlines=None)], ctx)

    every = pd.concat(parts)
    expected = every[every > 150.0].groupby(level=0).min()
    assert got.index.tolist() == expected.index.tolist()  # sorted by order id, as the rows are written
    assert np.array_equal(got.to_numpy(), expected.to_numpy())
    assert (got > 150.0).all() and got.index.is_unique
    assert len(got) > 1000


def test_no_future_deadline_gives_an_empty_series():
    ctx = SimpleNamespace(as_of_jd=500.0)
    got = _deadlines([_rule(pd.Series([1.0, 2.0], index=["A", "B"]))], ctx)
    assert got.empty
    assert _deadlines([_rule(pd.Series(dtype=float))], ctx).empty
