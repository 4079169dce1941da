"""Training, evaluating and storing the fraud classifier.

Labels come from a file (`order_id,fraud[,pattern]`, fraud as 1/0, yes/no, true/false) or from closed
cases (outcome `upheld` = fraud; status `dismissed` or outcome `rejected` = not fraud). Features come from
the feature frame (`tracker.detection.readers.feature_frame`) over the whole store (seller and buyer
aggregates use every order; no label is read to build them), over the features of the shipped model. A
model trained on local labels joins the shipped model's blend (`with_local`): its weight grows with the local
evidence (`local_weight`, data/model.toml [blend]) until it scores alone. It is stored and activated through
the registry (`tracker.detection.registry`). The shipped model itself is made from generated worlds
(`tracker.detection.world_training`; `python -m tracker.detection.world_training`).
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

from detectors.classifier import FraudClassifier, blend, fraud_probability, monotonic_cst
from detectors.features import OrderFeatures
from tracker import config
from tracker.db import get_meta
from tracker.detection import readers, registry, scoring, shipment_facts, threads
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


def local_weight(labels: pd.DataFrame) -> float:
    """How much a model fitted on these local labels weighs in the blend: m / takeover_labels, m the smaller of
    the labelled frauds and labelled honest orders; 1 (it scores alone) from takeover_labels on."""
    takeover = max(1, int(settings().get("blend", {}).get("takeover_labels", 100)))
    n_fraud = int(labels["fraud"].sum())
    return min(1.0, min(n_fraud, len(labels) - n_fraud) / takeover)


def fit_local(frame: pd.DataFrame, labels: pd.DataFrame, features: list[str], *,
              seed: int | None = None) -> FraudClassifier:
    """A classifier fitted on the labelled rows of a feature frame, over the shipped model's features."""
    data = frame.drop(columns=["fraud", "pattern"], errors="ignore").merge(labels[["order_id", "fraud"]],
                                                                          on="order_id", how="inner")
    matrix = OrderFeatures(features=tuple(features)).fit().transform(data)
    params = {**classifier_params(seed), "monotonic_cst": monotonic_cst(features)}
    with threads.limit():
        return FraudClassifier(**params).fit(matrix, data["fraud"].to_numpy(dtype=int))


def with_local(shipped: registry.LoadedModel, local: FraudClassifier | None, weight: float) -> Pipeline:
    """The scoring pipeline: the shipped blend (its model and rules prior, as weighed when it was chosen), and
    the local model with `weight` (the shipped parts share the rest); the local model alone at weight 1."""
    features = list(shipped.model.named_steps["features"].get_feature_names_out())
    shipped_blend = shipped.model.named_steps["classifier"]
    parts = [(name, part) for name, part in shipped_blend.parts]
    weights = [float(w) for w in shipped_blend.weights]
    if local is None or weight <= 0:
        return blend(features, parts, weights)
    if weight >= 1:
        return blend(features, [("local", local)], [1.0])
    return blend(features, [("local", local), *parts], [weight, *((1 - weight) * w for w in weights)])


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
             seed: int | None = None, shipped: registry.LoadedModel | None = None) -> Evaluation:
    """Train on the older labelled orders, score the newer ones: the local model alone, blended as `tracker train`
    would blend it (with the shipped model and the rules prior), the shipped model untrained, and ranking by
    flag count."""
    training = settings().get("training", {})
    k = int(k or settings().get("reviewer", {}).get("capacity", 20))
    test_fraction = float(test_fraction or training.get("test_fraction", 0.5))
    train, test = time_split(frame, labels, test_fraction)
    if train["fraud"].nunique() < 2 or test["fraud"].nunique() < 2:
        raise BadInput("labels: the time-ordered split leaves one side with a single class; label more orders")
    shipped = shipped or registry.load_default()
    features = list(shipped.model.named_steps["features"].get_feature_names_out())
    local = fit_local(train, train, features, seed=seed)
    weight = local_weight(train)
    y = test["fraud"].to_numpy(dtype=int)
    patterns = test["pattern"] if "pattern" in test.columns else None
    with threads.limit():
        matrix = OrderFeatures(features=tuple(features)).fit().transform(test)
        local_score = fraud_probability(local, matrix)
        blended = fraud_probability(with_local(shipped, local, weight).named_steps["classifier"], matrix)
        untrained = fraud_probability(shipped.model.named_steps["classifier"], matrix)
    flag_count = test["codes"].astype(object).fillna("").astype(str).map(
        lambda c: c.count(",") + 1 if c else 0).to_numpy(dtype=float)
    return Evaluation(len(train), len(test), int(y.sum()), ranking_metrics(y, local_score, k, patterns),
                      ranking_metrics(y, flag_count, k, patterns),
                      {"calibration": calibration_table(y, blended),
                       "blended": {"local_weight": round(weight, 4), **ranking_metrics(y, blended, k, patterns)},
                       "shipped": ranking_metrics(y, untrained, k, patterns),
                       "shipped_held_out": shipped.metadata.get("held_out")})


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


def model_metadata(local: FraudClassifier, labels: pd.DataFrame, source: str, as_of: datetime,
                   metrics: dict[str, Any] | None, model_id: str, shipped: registry.LoadedModel,
                   weight: float, features: list[str]) -> dict[str, Any]:
    return {
        "id": model_id,
        "kind": registry.KIND,
        "created_at": to_db(now()),
        "training_data": describe_training(labels, source, as_of),
        "n_labels": int(len(labels)),
        "n_fraud": int(labels["fraud"].sum()),
        "as_of": to_db(as_of),
        "features": features,
        "params": local.get_params(),
        "calibrated": bool(local.calibrated_),
        "blend": {"local": round(weight, 6), "shipped_model": shipped.model_id},
        "metrics": metrics or {},
    }


def new_model_id() -> str:
    return f"clf-{now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


# ----------------------------------------------------------------------------------------------- one call each

def train_from_labels(db: sqlite_utils.Database, labels: pd.DataFrame, source: str, as_of: datetime | None = None,
                      *, seed: int | None = None, with_evaluation: bool = True) -> tuple[str, dict[str, Any]]:
    """`tracker train`: fit on every label over the shipped model's features, evaluate on a time split, blend
    with the shipped model by how much local evidence there is (`local_weight`), store and activate; return
    (id, metadata)."""
    check_enough(labels, source)
    as_of = as_of or default_as_of(db)
    frame = order_frame(db, as_of)
    shipped = registry.load_default()
    metrics = None
    if with_evaluation:
        try:
            metrics = evaluate(frame, labels, seed=seed, shipped=shipped).as_dict()
        except BadInput:
            metrics = None  # too few labels on one side of the split: train anyway, without held-out figures
    features = list(shipped.model.named_steps["features"].get_feature_names_out())
    local = fit_local(frame, labels, features, seed=seed)
    weight = local_weight(labels)
    model = with_local(shipped, local, weight)
    model_id = new_model_id()
    meta = model_metadata(local, labels, source, as_of, metrics, model_id, shipped, weight, features)
    registry.save_to_store(db, model, meta)
    return model_id, meta


def format_evaluation(evaluation: Evaluation) -> list[str]:
    """The evaluation as aligned lines for the terminal: the local model, the blend `tracker train` would make,
    the shipped model untrained and the flag count on the time split; then the shipped model's figures on
    generated worlds it never saw (from its metadata)."""
    m, b = evaluation.model, evaluation.flag_count
    blended, shipped = evaluation.extra.get("blended") or {}, evaluation.extra.get("shipped") or {}
    columns = [("local model", m), (f"blend ({blended.get('local_weight', 0):.0%} local)", blended),
               ("shipped", shipped), ("flag count", b)]
    columns = [(name, figures) for name, figures in columns if figures]

    def row(label: str, key: str) -> str:
        return f"{label:34}" + "".join(f"{_fmt(figures.get(key)):>20}" for _, figures in columns)

    lines = [
        f"time-ordered split: trained on {evaluation.n_train} older labelled orders, "
        f"tested on {evaluation.n_test} newer ({evaluation.n_test_fraud} fraud)",
        f"{'':34}" + "".join(f"{name:>20}" for name, _ in columns),
        row("PR-AUC", "pr_auc"),
        row(f"precision at {m['k']}", "precision_at_k"),
        row("recall in top R", "recall_at_r"),
    ]
    for pattern in (m.get("recall_by_pattern") or {}):
        lines.append(f"{'  recall ' + pattern:34}" + "".join(
            f"{_fmt((figures.get('recall_by_pattern') or {}).get(pattern)):>20}" for _, figures in columns))
    calibration = evaluation.extra.get("calibration") or []
    if calibration:
        lines.append("calibration of the blend (score bin: mean score / observed fraud rate, n): " + "; ".join(
            f"{c['bin']}: {c['mean_score']:.2f}/{c['fraud_rate']:.2f} ({c['n']})" for c in calibration))
    lines += held_out_lines(evaluation.extra.get("shipped_held_out"))
    return lines


def held_out_lines(held_out: dict[str, Any] | None) -> list[str]:
    """The shipped model's average precision on generated worlds used neither to train nor to choose it, beside
    ranking by flag count (its metadata's `held_out`)."""
    if not held_out or not held_out.get("mean"):
        return []
    names = {"train": "settings within its training ranges", "outside": "settings outside them",
             "default": "the default settings"}
    lines = ["shipped model on generated worlds it never saw (AP model / flag count):"]
    for region in sorted(held_out["mean"], key=lambda r: list(names).index(r) if r in names else len(names)):
        mean = held_out["mean"][region]
        lines.append(f"  {mean['worlds']} worlds, {names.get(region, region)}: "
                     f"{_fmt(mean['ap_model'])} / {_fmt(mean['ap_flag_count'])}")
    return lines


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------- worlds

def world_store(folder: str | Path, n_orders: int, seed: int, as_of: datetime,
                profile: Any = None) -> tuple[sqlite_utils.Database, pd.DataFrame]:
    """A store holding a generated world (with `profile`'s settings: tracker.world.profiles; default: the
    default world), imported through the real importers and flagged by the rules.

    Returns the store and the world's labels (order_id, fraud, pattern). Used for the shipped default
    model and the benchmark.
    """
    from tracker.db import open_db
    from tracker.detection.flagging import run_rules
    from tracker.importers import import_file
    from tracker.world import profiles, write_world

    profile = profile or profiles.DEFAULT
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "imported.txt"  # a rerun in the same folder reuses the generated, imported world
    recipe = f"{n_orders} orders, seed {seed}, as of {to_db(as_of)}, settings {json.dumps(profile.settings, sort_keys=True)}"
    if not (marker.exists() and marker.read_text() == recipe and (folder / "world.db").exists()):
        write_world(folder, n_orders, seed=seed, as_of=as_of, profile=profile)
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
