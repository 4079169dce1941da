"""Benchmark of the classifier: train on the older half of a generated world's labels, score every order.

`run(n_orders, workdir)` generates a world (tracker.world), imports it with the real importers, runs the
rules (which store every number's shipment facts: part of `setup_s`), then times:

- train: `tracker.detection.training.train_from_labels` on the labels of the older half of the orders (by
  ordered_at): the feature frame (orders joined to their stored facts, seller/buyer context, message
  pressure) plus the fit;
- score: `tracker.detection.scoring.score_orders(full=True)`: every order with a tracking number, with reasons,
  written to `scores`;
- baseline: one bare `SELECT count(*), max(occurred_at) FROM tracking_events GROUP BY tracking_number`
  (the floor any per-order feature pass over the events pays).

Quality: PR-AUC and precision at k of the stored scores on the newer half, against ranking the same
orders by their number of active flags and by the shipped model untrained; how many orders score 0.999 or
more, and how many of those lack a reason of at least 1 log-odds (none should). Run alone:
`python -m bench.model 50000`.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

SEED = 20260917


def run(n_orders: int, workdir: Path) -> dict:
    from tracker.detection import scoring, training
    from tracker.timeutil import parse_time

    as_of = parse_time("2026-11-01T00:00:00Z")
    workdir = Path(workdir) / f"model-{n_orders}"
    started = time.perf_counter()
    db, labels = training.world_store(workdir, n_orders, SEED, as_of)
    setup_s = time.perf_counter() - started

    t0 = time.perf_counter()
    db.execute("SELECT count(*), max(occurred_at) FROM tracking_events GROUP BY tracking_number").fetchall()
    baseline_s = time.perf_counter() - t0

    ordered = dict(db.execute("SELECT order_id, ordered_at FROM orders").fetchall())
    labels = labels.assign(ordered_at=labels["order_id"].map(ordered)).sort_values(["ordered_at", "order_id"])
    half = len(labels) // 2
    older, newer = labels.iloc[:half], labels.iloc[half:]

    t0 = time.perf_counter()
    model_id, _meta = training.train_from_labels(db, older[["order_id", "fraud"]], "bench", as_of,
                                                 with_evaluation=False)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    scored = scoring.score_orders(db, set(), as_of, full=True)
    score_s = time.perf_counter() - t0

    # saturated scores (0.999 and up): each should still say what put it there, in log-odds
    saturated = [json.loads(r) for (r,) in db.execute("SELECT reasons FROM scores WHERE score >= 0.999").fetchall()]
    unexplained = sum(1 for reasons in saturated if not reasons or reasons[0]["weight"] < 1.0)

    score = dict(db.execute("SELECT order_id, score FROM scores").fetchall())
    flag_count = dict(db.execute(
        "SELECT order_id, count(*) FROM flags WHERE resolved_at IS NULL GROUP BY order_id").fetchall())
    y = newer["fraud"].to_numpy(dtype=int)
    model_score = newer["order_id"].map(score).fillna(0.0).to_numpy()
    count_score = newer["order_id"].map(flag_count).fillna(0).to_numpy(dtype=float)
    k = int(training.settings().get("reviewer", {}).get("capacity", 20))

    def precision_at_k(s: np.ndarray) -> float:
        return float(y[np.argsort(-s, kind="stable")[:k]].mean())

    pr_model = float(average_precision_score(y, model_score))
    pr_flags = float(average_precision_score(y, count_score))
    # the shipped model, untrained on this world, on the same newer half (not timed)
    from detectors.features import has_text
    from tracker.detection import registry

    frame = training.order_frame(db, as_of)
    frame = frame[frame["order_id"].isin(set(newer["order_id"]))]
    shipped = registry.load_default().model
    tracked = has_text(frame["tracking_number"])
    shipped_score = dict(zip(frame["order_id"][tracked], shipped.predict_proba(frame[tracked])[:, 1], strict=True))
    pr_shipped = float(average_precision_score(y, newer["order_id"].map(shipped_score).fillna(0.0).to_numpy()))
    db.close()
    return {
        "orders": n_orders,
        "train_labels": int(len(older)),
        "scored": len(scored),
        "setup_s": round(setup_s, 1),
        "train_s": round(train_s, 2),
        "score_s": round(score_s, 2),
        "baseline_groupby_s": round(baseline_s, 2),
        "train_vs_baseline": round(train_s / max(baseline_s, 1e-9), 1),
        "score_vs_baseline": round(score_s / max(baseline_s, 1e-9), 1),
        "pr_auc": round(pr_model, 4),
        "pr_auc_flag_count": round(pr_flags, 4),
        "precision_at_k": round(precision_at_k(model_score), 3),
        "precision_at_k_flag_count": round(precision_at_k(count_score), 3),
        "k": k,
        "test_frauds": int(y.sum()),
        "pr_auc_shipped_untrained": round(pr_shipped, 4),
        "saturated_orders": len(saturated),
        "saturated_without_a_reason_of_1_log_odds": unexplained,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_id": model_id,
    }


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(n, Path(tmp)), indent=2))
