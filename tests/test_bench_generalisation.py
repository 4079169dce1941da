"""The generalisation harness: its ranking figures, and one small run through the real command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from bench.generalisation import main, measure, precision_at


def test_precision_at_k_takes_tied_orders_in_random_order():
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.9, 0.5, 0.5, 0.0])
    assert precision_at(y, s, 1) == pytest.approx(0.5)  # one of two tied, half of them fraud
    assert precision_at(y, s, 2) == pytest.approx(0.5)
    assert precision_at(y, s, 3) == pytest.approx((1 + 0.5) / 3)
    assert precision_at(y, s, 5) == pytest.approx(2 / 5)
    assert precision_at(y, s, 50) == pytest.approx(2 / 5)  # k beyond the world: every order
    # brute force: the mean over every order of the tied pair at the cut-off
    assert precision_at(y, np.array([3.0, 2.0, 2.0, 1.0, 0.0]), 2) == pytest.approx((1 + 0.5) / 2)


def test_measure_counts_active_flags_and_scores_missing_orders_zero():
    labels = [{"order_id": i, "fraud": f} for i, f in (("a", "1"), ("b", "0"), ("c", "1"), ("d", "0"))]
    scores = [{"order_id": "a", "score": 0.9}, {"order_id": "b", "score": 0.8}, {"order_id": "d", "score": 0.1}]
    flags = [
        {"order_id": "c", "severity": "high"},
        {"order_id": "c", "severity": "low"},
        {"order_id": "b", "severity": "low"},
        {"order_id": "a", "severity": "high"},
    ]
    m = measure(labels, scores, flags, k=2)
    y = [1, 0, 1, 0]
    assert m["orders"] == 4 and m["fraud"] == 2 and m["scored"] == 3 and m["flagged"] == 3
    assert m["ap_model"] == pytest.approx(average_precision_score(y, [0.9, 0.8, 0.0, 0.1]))
    assert m["ap_flags"] == pytest.approx(average_precision_score(y, [1, 1, 2, 0]))
    # a tied at one flag with b: a's high severity puts it first
    assert m["ap_flags_severity"] == pytest.approx(1.0)
    assert m["p_at_k_flags"] == pytest.approx((1 + 0.5) / 2)
    assert m["p_at_r_model"] == pytest.approx(0.5)


@pytest.mark.slow
def test_one_small_world_through_the_command_line(tmp_path):
    out = tmp_path / "g.json"
    results = main(["--worlds", "0", "--outside", "1", "--orders", "400", "--jobs", "1", "--out", str(out),
                    "--workdir", str(tmp_path / "work")])
    saved = json.loads(out.read_text())
    assert saved["summary"] == results["summary"]
    assert [w["region"] for w in saved["worlds"]] == ["outside"]
    for world in saved["worlds"]:
        assert world["orders"] == 400 and 0 < world["fraud"] < 400
        assert world["scored"] > 300 and world["flagged"] > 0
        for key in ("ap_model", "ap_flags", "p_at_k_model", "p_at_r_flags"):
            assert 0.0 <= world[key] <= 1.0, key
    assert saved["worlds"][0]["outside_knobs"]
    assert (tmp_path / "work" / "outside-9001" / "world" / "profile.json").exists()
