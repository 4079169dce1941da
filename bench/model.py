"""Benchmark of the classifier on the generated world: `tracker train` and scoring every order, against the floor.

`run(n_orders, workdir)` copies the store the detect area left (the world imported and detected) and times, as a
user runs them (subprocesses):

- train: `tracker train --labels FILE` with the world's labels of the older half of the orders (by ordered_at):
  the feature frame, the held-out evaluation `tracker train` prints, and the fit;
- score: the scoring stage of the `tracker detect --full` that follows (every order scored with the new model,
  reasons, the seller books);
- floor: fit and predict of the same estimator (`FraudClassifier` with data/model.toml's parameters) on a
  prepared matrix: the features of the labelled orders (fit) and of every order (predict), built beforehand.

Quality: PR-AUC and precision at k of the stored scores on the newer half, against ranking the same orders by
their number of active flags and by the shipped model untrained (the scores the detected store held before
`tracker train`); how many orders score 0.999 or more, and how many of those lack a reason of at least 1 log-odds
(none should). Run alone: `python -m bench.model 50000`.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench import store

ROOT = Path(__file__).resolve().parent.parent


def _labels(n_orders: int, root: Path, path: Path) -> tuple[list[str], list[int], list[str], list[int]]:
    """The world's labels split by time: the older half (written to `path` for `tracker train`) and the newer."""
    import sqlite3

    with open(store.world_files(n_orders, root) / "labels.csv", newline="") as fh:
        labels = {r["order_id"]: int(r["fraud"]) for r in csv.DictReader(fh)}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    ordered = sorted(conn.execute("SELECT ordered_at, order_id FROM orders").fetchall())
    conn.close()
    ids = [o for _, o in ordered if o in labels]
    half = len(ids) // 2
    older, newer = ids[:half], ids[half:]
    return older, [labels[o] for o in older], newer, [labels[o] for o in newer]


def _floor(path: Path, older: list[str], y: list[int]) -> dict:
    """Fit and predict of the estimator alone, on matrices built beforehand (not timed)."""
    from detectors.classifier import FraudClassifier, make_pipeline
    from tracker.db import open_db
    from tracker.detection import readers, scoring, training
    from tracker.timeutil import parse_time

    db = open_db(path)
    frame = readers.feature_frame(db.conn, None, parse_time(store.AS_OF), scoring.message_scorer(db))
    db.close()
    features = make_pipeline().named_steps["features"].fit(frame)
    everything = features.transform(frame)
    at = {o: i for i, o in enumerate(frame["order_id"].to_numpy(dtype=object))}
    rows = np.array([at[o] for o in older if o in at])
    labelled, target = everything[rows], np.asarray(y)[[i for i, o in enumerate(older) if o in at]]
    from tracker.detection import threads

    estimator = FraudClassifier(**training.classifier_params())
    started, cpu = time.perf_counter(), time.process_time()
    with threads.limit():  # the thread policy `tracker train` and scoring follow
        estimator.fit(labelled, target)
        fit_s = time.perf_counter() - started
        estimator.predict_proba(everything)
    return {"fit_s": fit_s, "s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


def run(n_orders: int, workdir: Path) -> dict:
    from sklearn.metrics import average_precision_score

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = store.shared(workdir, n_orders)
    path = store.copy_store(store.store(n_orders, root, store.DETECTED), workdir / "model.db")
    older, y_older, newer, y_newer = _labels(n_orders, root, path)
    labels = workdir / "labels-older.csv"
    with open(labels, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("order_id", "fraud"))
        out.writerows(zip(older, y_older, strict=True))
    floor = _floor(path, older, y_older)
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    shipped = dict(conn.execute("SELECT order_id, score FROM scores").fetchall())  # the shipped model's, untrained
    conn.close()
    train = store.command(path, "train", "--labels", str(labels), "--as-of", store.AS_OF)
    detect = store.command(path, "detect", "--full", "--as-of", store.AS_OF)

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    # saturated scores (0.999 and up): each should still say what put it there, in log-odds
    saturated = [json.loads(r) for (r,) in conn.execute("SELECT reasons FROM scores WHERE score >= 0.999")]
    unexplained = sum(1 for reasons in saturated if not reasons or reasons[0]["weight"] < 1.0)
    score = dict(conn.execute("SELECT order_id, score FROM scores").fetchall())
    flags = dict(conn.execute("SELECT order_id, count(*) FROM flags WHERE resolved_at IS NULL GROUP BY order_id"))
    conn.close()
    y = np.asarray(y_newer)
    by_model = np.array([score.get(o, 0.0) for o in newer])
    by_shipped = np.array([shipped.get(o, 0.0) for o in newer])
    by_flags = np.array([float(flags.get(o, 0)) for o in newer], dtype=float)
    k = 20

    def precision_at_k(s: np.ndarray) -> float:
        return float(y[np.argsort(-s, kind="stable")[:k]].mean())

    store.remove_store(path)
    return {
        "orders": n_orders,
        "train_labels": len(older),
        "train_s": round(train["s"], 2),
        "train_cpu_s": round(train["cpu_s"], 2),
        "train_peak_mb": round(train["peak_mb"], 1),
        "score_s": round(detect["stages"].get("scoring", float("nan")), 2),
        "floor_s": round(floor["s"], 2),
        "floor_fit_s": round(floor["fit_s"], 2),
        "train_over_floor": round(train["s"] / floor["s"], 2),
        "pr_auc": round(float(average_precision_score(y, by_model)), 4),
        "pr_auc_flag_count": round(float(average_precision_score(y, by_flags)), 4),
        "precision_at_k": round(precision_at_k(by_model), 3),
        "precision_at_k_flag_count": round(precision_at_k(by_flags), 3),
        "k": k,
        "test_frauds": int(y.sum()),
        "pr_auc_shipped_untrained": round(float(average_precision_score(y, by_shipped)), 4),
        "saturated_orders": len(saturated),
        "saturated_without_a_reason_of_1_log_odds": unexplained,
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(json.dumps(run(n, ROOT / "bench" / "out" / "model" / str(n)), indent=2))
