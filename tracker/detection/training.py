"""Training, evaluating and storing the fraud classifier.

Labels come from a file (`order_id,fraud[,pattern]`, fraud as 1/0, yes/no, true/false) or from closed
cases (outcome `upheld` = fraud; status `dismissed` or outcome `rejected` = not fraud). Features come from
the feature frame (`tracker.detection.readers.feature_frame`) over the whole store (seller and buyer
aggregates use every order; no label is read to build them). A trained model is stored and activated
through the registry (`tracker.detection.registry`).
"""

from __future__ import annotations

import csv
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline

from detectors.classifier import make_pipeline
from detectors.features import FEATURES
from tracker import config
from tracker.db import get_meta
from tracker.detection import persistence, readers, registry, scoring, shipment_facts, threads
from tracker.errors import BadInput
from tracker.plan import plan_for
from tracker.timeutil import now, to_db

TRUE_WORDS = {"1": 1, "yes": 1, "y": 1, "true": 1, "fraud": 1, "0": 0, "no": 0, "n": 0, "false": 0}
MAX_ERRORS = 20


def settings() -> dict[str, Any]:
    return config.load("model")


def classifier_params(seed: int | None = None) -> dict[str, Any]:
    params = dict(settings().get("classifier", {}))
    params["random_state"] = int(seed if seed is not None else settings().get("training", {}).get("seed", 0))
    return params


# ----------------------------------------------------------------------------------------------- labels

def read_labels_file(path: str | Path, db: sqlite_utils.Database | None = None) -> pd.DataFrame:
    """The labels file as order_id, fraud (0/1)[, pattern]; every bad line -> BadInput with its line number.

    With `db`, order ids the store does not hold are errors too.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the labels file ({exc.strerror or exc})") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in ("order_id", "fraud") if c not in columns]
        if missing:
            raise BadInput(f"{path}: line 1: missing column {', '.join(repr(m) for m in missing)} "
                           f"(the labels file needs order_id and fraud; found {', '.join(columns) or 'nothing'})")
        reader.fieldnames = columns
        rows: list[tuple[int, str, int, str]] = []
        errors: list[tuple[int, str]] = []
        seen: dict[str, tuple[int, int]] = {}
        for row in reader:
            line = reader.line_num
            order_id = (row.get("order_id") or "").strip()
            raw = (row.get("fraud") or "").strip()
            if not order_id:
                errors.append((line, "order_id is empty"))
                continue
            value = TRUE_WORDS.get(raw.lower())
            if value is None:
                errors.append((line, f"fraud {raw!r} for order {order_id} is not 1/0, yes/no or true/false"))
                continue
            if order_id in seen and seen[order_id][1] != value:
                errors.append((line, f"order {order_id} is labelled again, differently from line {seen[order_id][0]}"))
                continue
            seen.setdefault(order_id, (line, value))
            rows.append((line, order_id, value, (row.get("pattern") or "").strip()))
    labels = pd.DataFrame(rows, columns=["line", "order_id", "fraud", "pattern"]).drop_duplicates("order_id")
    if db is not None and len(labels):
        known = _known_order_ids(db, labels["order_id"])
        for line, order_id in labels.loc[~labels["order_id"].isin(known), ["line", "order_id"]].itertuples(index=False):
            errors.append((line, f"order {order_id} is not in the database"))
    if errors:
        errors.sort(key=lambda e: e[0])
        shown = [f"{path}: line {line}: {reason}" for line, reason in errors[:MAX_ERRORS]]
        more = len(errors) - MAX_ERRORS
        raise BadInput(shown + ([f"{path}: … and {more} more bad lines"] if more > 0 else []))
    if "pattern" not in columns:
        labels = labels.drop(columns="pattern")
    return labels.drop(columns="line").reset_index(drop=True)


def _known_order_ids(db: sqlite_utils.Database, order_ids: pd.Series) -> set[str]:
    from tracker.detection.store import as_json

    return {r[0] for r in db.conn.execute(
        "SELECT o.order_id FROM json_each(?) j CROSS JOIN orders o ON o.order_id = j.value",
        [as_json(order_ids.tolist())])}


def labels_from_cases(db: sqlite_utils.Database) -> pd.DataFrame:
    """Closed cases as labels: outcome upheld = fraud; dismissed, or outcome rejected = not fraud."""
    rows = db.execute(
        """SELECT order_id, CASE WHEN outcome = 'upheld' THEN 1 ELSE 0 END FROM cases
           WHERE outcome = 'upheld' OR outcome = 'rejected' OR status = 'dismissed'"""
    ).fetchall()
    return pd.DataFrame(rows, columns=["order_id", "fraud"])


def check_enough(labels: pd.DataFrame, source: str) -> None:
    training = settings().get("training", {})
    min_labels = int(training.get("min_labels", 30))
    min_per_class = int(training.get("min_per_class", 5))
    n_fraud = int(labels["fraud"].sum()) if len(labels) else 0
    n_ok = len(labels) - n_fraud
    if len(labels) < min_labels or min(n_fraud, n_ok) < min_per_class:
        raise BadInput(
            f"{source}: too few labels to train: {len(labels)} labelled orders ({n_fraud} fraud, {n_ok} not); "
            f"need at least {min_labels}, with {min_per_class} of each (data/model.toml [training])"
        )


# ----------------------------------------------------------------------------------------------- training

def default_as_of(db: sqlite_utils.Database) -> datetime:
    """Train at the 'now' the store was last scored at, so ages mean what they will mean when scoring."""
    from tracker.timeutil import from_db

    recorded = get_meta(db, "scores_as_of")
    return from_db(recorded) if recorded else now()


def order_frame(db: sqlite_utils.Database, as_of: datetime) -> pd.DataFrame:
    """Every order's feature frame as of `as_of` (seller messages scored through the store's cache)."""
    plan = plan_for(db.conn)
    shipment_facts.refresh(db, plan)
    return readers.feature_frame(db.conn, None, as_of, scoring.message_scorer(db, plan), plan=plan)


def fit(frame: pd.DataFrame, labels: pd.DataFrame, *, seed: int | None = None) -> Pipeline:
    """Fit the pipeline on the labelled rows of a feature frame."""
    data = frame.merge(labels[["order_id", "fraud"]], on="order_id", how="inner")
    model = make_pipeline(**classifier_params(seed))
    with threads.limit():
        return model.fit(data, data["fraud"].to_numpy(dtype=int))


def ranking_metrics(y: np.ndarray, score: np.ndarray, k: int, patterns: pd.Series | None = None) -> dict[str, Any]:
    """PR-AUC, precision in the top k, and recall per fraud pattern in the top R (R = number of frauds)."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    order = np.argsort(-score, kind="stable")
    out: dict[str, Any] = {
        "pr_auc": round(float(average_precision_score(y, score)), 4) if 0 < y.sum() < len(y) else None,
        "precision_at_k": round(float(y[order[:k]].mean()), 4) if len(y) else None,
        "k": k,
    }
    n_fraud = int(y.sum())
    top = np.zeros(len(y), dtype=bool)
    top[order[:n_fraud]] = True
    out["recall_at_r"] = round(float(top[y == 1].mean()), 4) if n_fraud else None
    if patterns is not None:
        per: dict[str, float] = {}
        pats = patterns.fillna("").astype(str).to_numpy()
        for pattern in sorted(set(pats[y == 1])):
            mask = (y == 1) & (pats == pattern)
            per[pattern or "(none)"] = round(float(top[mask].mean()), 4)
        out["recall_by_pattern"] = per
    return out


def time_split(frame: pd.DataFrame, labels: pd.DataFrame, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled orders sorted by ordered_at: the oldest part trains, the newest is held out."""
    data = frame.merge(labels, on="order_id", how="inner").sort_values(["ordered_jd", "order_id"], kind="stable")
    cut = int(round(len(data) * (1 - test_fraction)))
    return data.iloc[:cut], data.iloc[cut:]


@dataclass
class Evaluation:
    n_train: int
    n_test: int
    n_test_fraud: int
    model: dict[str, Any]
    flag_count: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"n_train": self.n_train, "n_test": self.n_test, "n_test_fraud": self.n_test_fraud,
                "model": self.model, "flag_count": self.flag_count, **self.extra}


def evaluate(frame: pd.DataFrame, labels: pd.DataFrame, *, k: int | None = None, test_fraction: float | None = None,
             seed: int | None = None) -> Evaluation:
    """Train on the older labelled orders, score the newer ones; the same figures for ranking by flag count."""
    training = settings().get("training", {})
    k = int(k or settings().get("reviewer", {}).get("capacity", 20))
    test_fraction = float(test_fraction or training.get("test_fraction", 0.5))
    train, test = time_split(frame, labels, test_fraction)
    if train["fraud"].nunique() < 2 or test["fraud"].nunique() < 2:
        raise BadInput("labels: the time-ordered split leaves one side with a single class; label more orders")
    with threads.limit():
        model = make_pipeline(**classifier_params(seed)).fit(train, train["fraud"].to_numpy(dtype=int))
        score = model.predict_proba(test)[:, 1]
    y = test["fraud"].to_numpy(dtype=int)
    patterns = test["pattern"] if "pattern" in test.columns else None
    flag_count = test[[c for c in test.columns if c.startswith("flag_")]].sum(axis=1).to_numpy(dtype=float)
    return Evaluation(len(train), len(test), int(y.sum()), ranking_metrics(y, score, k, patterns),
                      ranking_metrics(y, flag_count, k, patterns),
                      {"calibration": calibration_table(y, score)})


def calibration_table(y: np.ndarray, score: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Mean score against observed fraud rate per score bin: 0.8 should mean about 80%."""
    edges = np.linspace(0, 1, bins + 1)
    table = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (score >= lo) & ((score < hi) if hi < 1 else (score <= hi))
        if mask.sum():
            table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(mask.sum()),
                          "mean_score": round(float(score[mask].mean()), 3),
                          "fraud_rate": round(float(y[mask].mean()), 3)})
    return table


# ----------------------------------------------------------------------------------------------- storage

def describe_training(labels: pd.DataFrame, source: str, as_of: datetime) -> str:
    return f"{source}: {len(labels)} labelled orders ({int(labels['fraud'].sum())} fraud), features as of {to_db(as_of)}"


def model_metadata(model: Pipeline, labels: pd.DataFrame, source: str, as_of: datetime,
                   metrics: dict[str, Any] | None, model_id: str) -> dict[str, Any]:
    classifier = model.named_steps["classifier"]
    return {
        "id": model_id,
        "kind": registry.KIND,
        "created_at": to_db(now()),
        "training_data": describe_training(labels, source, as_of),
        "n_labels": int(len(labels)),
        "n_fraud": int(labels["fraud"].sum()),
        "as_of": to_db(as_of),
        "features": list(FEATURES),
        "params": classifier.get_params(),
        "calibrated": classifier.calibrator_ is not None,
        "metrics": metrics or {},
    }


def new_model_id() -> str:
    return f"clf-{now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


# ----------------------------------------------------------------------------------------------- one call each

def train_from_labels(db: sqlite_utils.Database, labels: pd.DataFrame, source: str, as_of: datetime | None = None,
                      *, seed: int | None = None, with_evaluation: bool = True) -> tuple[str, dict[str, Any]]:
    """`tracker train`: fit on every label, evaluate on a time split, store and activate; return (id, metadata)."""
    check_enough(labels, source)
    as_of = as_of or default_as_of(db)
    frame = order_frame(db, as_of)
    metrics = None
    if with_evaluation:
        try:
            metrics = evaluate(frame, labels, seed=seed).as_dict()
        except BadInput:
            metrics = None  # too few labels on one side of the split: train anyway, without held-out figures
    model = fit(frame, labels, seed=seed)
    model_id = new_model_id()
    meta = model_metadata(model, labels, source, as_of, metrics, model_id)
    registry.save_to_store(db, model, meta)
    return model_id, meta


def format_evaluation(evaluation: Evaluation) -> list[str]:
    """The evaluation as aligned lines for the terminal."""
    m, b = evaluation.model, evaluation.flag_count
    lines = [
        f"time-ordered split: trained on {evaluation.n_train} older labelled orders, "
        f"tested on {evaluation.n_test} newer ({evaluation.n_test_fraud} fraud)",
        f"{'':24}{'classifier':>12}{'flag count':>12}",
        f"{'PR-AUC':24}{_fmt(m['pr_auc']):>12}{_fmt(b['pr_auc']):>12}",
        f"{'precision at ' + str(m['k']):24}{_fmt(m['precision_at_k']):>12}{_fmt(b['precision_at_k']):>12}",
        f"{'recall in top R':24}{_fmt(m['recall_at_r']):>12}{_fmt(b['recall_at_r']):>12}",
    ]
    for pattern, recall in (m.get("recall_by_pattern") or {}).items():
        lines.append(f"{'  recall ' + pattern:24}{_fmt(recall):>12}{_fmt(b['recall_by_pattern'].get(pattern)):>12}")
    calibration = evaluation.extra.get("calibration") or []
    if calibration:
        lines.append("calibration (score bin: mean score / observed fraud rate, n): " + "; ".join(
            f"{c['bin']}: {c['mean_score']:.2f}/{c['fraud_rate']:.2f} ({c['n']})" for c in calibration))
    return lines


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------- worlds

def world_store(folder: str | Path, n_orders: int, seed: int, as_of: datetime) -> tuple[sqlite_utils.Database, pd.DataFrame]:
    """A store holding a generated world, imported through the real importers and flagged by the rules.

    Returns the store and the world's labels (order_id, fraud, pattern). Used for the shipped default
    model and the benchmark.
    """
    from tracker.db import open_db
    from tracker.detection.flagging import run_rules
    from tracker.importers import import_file
    from tracker.world import write_world

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "imported.txt"  # a rerun in the same folder reuses the generated, imported world
    recipe = f"{n_orders} orders, seed {seed}, as of {to_db(as_of)}"
    if not (marker.exists() and marker.read_text() == recipe and (folder / "world.db").exists()):
        write_world(folder, n_orders, seed=seed, as_of=as_of)
        (folder / "world.db").unlink(missing_ok=True)
        db = open_db(folder / "world.db")
        for kind in ("orders", "events", "messages"):
            import_file(db, kind, folder / f"{kind}.csv")
        marker.write_text(recipe)
    else:
        db = open_db(folder / "world.db")
    run_rules(db, as_of, full=True)
    labels = pd.read_csv(folder / "labels.csv", dtype={"order_id": str, "pattern": str}, keep_default_na=False)
    labels["fraud"] = labels["fraud"].astype(int)
    return db, labels


def train_default(n_orders: int | None = None, seed: int | None = None, folder: str | Path | None = None) -> dict[str, Any]:
    """Train the shipped default model on a generated world; write data/models/classifier.joblib + .json."""
    import tempfile

    from tracker.timeutil import parse_time

    spec = settings().get("default_model", {})
    n_orders = int(n_orders or spec.get("orders", 100_000))
    seed = int(seed if seed is not None else spec.get("seed", 7))
    as_of = parse_time(spec.get("as_of", "2026-11-01T00:00:00Z"))
    with tempfile.TemporaryDirectory() as tmp:
        db, labels = world_store(folder or tmp, n_orders, seed, as_of)
        frame = order_frame(db, as_of)
        metrics = evaluate(frame, labels[["order_id", "fraud", "pattern"]], seed=0).as_dict()
        model = fit(frame, labels, seed=0)
        db.close()
    source = f"generated world: {n_orders} orders, seed {seed}, as of {to_db(as_of)} (tracker.world)"
    meta = model_metadata(model, labels, source, as_of, metrics, "")
    meta["id"] = None  # set from the file's digest below: the id changes whenever the model does
    written = persistence.save_model(model, registry.DEFAULT_MODEL_PATH, meta)
    written["id"] = f"default-{written['sha256'][:12]}"
    persistence.metadata_path(registry.DEFAULT_MODEL_PATH).write_text(json.dumps(written, indent=2, sort_keys=True, default=str) + "\n")
    return written


if __name__ == "__main__":  # python -m tracker.detection.training [N_ORDERS [SEED [WORK_FOLDER]]]: the default model
    import sys

    # through the package, so pickles name this module's classes, not __main__'s
    from tracker.detection import training

    args = sys.argv[1:]
    result = training.train_default(int(args[0]) if args else None, int(args[1]) if len(args) > 1 else None,
                                    args[2] if len(args) > 2 else None)
    print(json.dumps({k: result[k] for k in ("id", "training_data", "metrics", "sha256")}, indent=2, default=str))
