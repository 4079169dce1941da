"""The model registry: which classifier scores a store, where models live, and the message model's file.

A classifier trained into a user's store is written next to it under `models/`, registered in the `models`
table (the active one wins) and verified by SHA-256 on loading; the shipped default in
`data/models/classifier.joblib` is the fallback. A model trained on another feature list is refused. The
shipped message model (`data/models/message_model.joblib`) is loaded once per process, on first use.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from detectors.features import FEATURES
from tracker import config
from tracker.detection import persistence
from tracker.errors import RunFailure

DEFAULT_MODEL_PATH = config.data_path("models", "classifier.joblib")
MESSAGE_MODEL_PATH = config.data_path("models", "message_model.joblib")
KIND = "classifier"


@dataclass
class LoadedModel:
    model_id: str
    model: Any  # the pipeline of detectors.classifier.make_pipeline
    metadata: dict[str, Any]


def database_folder(db: sqlite_utils.Database) -> Path:
    row = db.conn.execute("PRAGMA database_list").fetchone()
    return Path(row[2]).parent if row and row[2] else Path.cwd()


def save_to_store(db: sqlite_utils.Database, model: Any, meta: dict[str, Any]) -> str:
    """Write the model next to the store, register it in `models` as the active classifier; return its id."""
    model_id = meta["id"]
    path = database_folder(db) / "models" / f"{model_id}.joblib"
    written = persistence.save_model(model, path, meta)
    with db.conn:
        db.execute("UPDATE models SET active = 0 WHERE kind = ?", [KIND])
        db.execute(
            "INSERT OR REPLACE INTO models(id, kind, created_at, path, sha256, metadata, active) VALUES (?,?,?,?,?,?,1)",
            [model_id, KIND, written["created_at"], str(path), written["sha256"], json.dumps(written, default=str)],
        )
    return model_id


def load_active_model(db: sqlite_utils.Database) -> LoadedModel | None:
    """The active classifier of this store, else the shipped default; None when neither exists.

    A file whose SHA-256 differs from the one recorded at training is refused (RunFailure), never loaded.
    """
    row = db.execute(
        "SELECT id, path, sha256, metadata FROM models WHERE kind = ? AND active = 1 ORDER BY created_at DESC LIMIT 1",
        [KIND],
    ).fetchone()
    try:
        if row:
            model_id, path, sha, metadata = row
            return check_features(LoadedModel(model_id, persistence.load_model(path, expected_sha256=sha),
                                              json.loads(metadata or "{}")))
        if DEFAULT_MODEL_PATH.exists():
            meta = persistence.read_metadata(DEFAULT_MODEL_PATH)
            model = persistence.load_model(DEFAULT_MODEL_PATH)
            return check_features(LoadedModel(meta.get("id") or f"default-{meta['sha256'][:12]}", model, meta))
    except persistence.ModelIntegrityError as exc:
        raise RunFailure(str(exc)) from None
    return None


def check_features(loaded: LoadedModel) -> LoadedModel:
    """Refuse a model trained on another feature list (an older or newer tracker): scores would be noise."""
    trained_on = loaded.metadata.get("features")
    if trained_on is not None and list(trained_on) != list(FEATURES):
        raise RunFailure(f"model {loaded.model_id} was trained on the features of another tracker version "
                         f"({len(trained_on)} features, this one computes {len(FEATURES)}); run 'tracker train' again")
    return loaded


# ------------------------------------------------------------------------------------------- message model

_lock = threading.Lock()
_message_model: list[Any] = []


def message_model() -> Any:
    """The shipped message model (verified by its SHA-256), loaded once per process."""
    with _lock:
        if not _message_model:
            _message_model.append(persistence.load_model(MESSAGE_MODEL_PATH))
        return _message_model[0]


def forget_message_model() -> None:
    """Load the message model anew on next use (after it was retrained)."""
    with _lock:
        _message_model.clear()


def message_model_key() -> str:
    """Names the message model in the store's cache of pressure probabilities: a new model, new probabilities."""
    return persistence.read_metadata(MESSAGE_MODEL_PATH)["sha256"][:16]


def message_pressure(texts: list[str]) -> list[float]:
    """The message model's pressure probability of each text; loads the model (and scikit-learn) on first use,
    so a run without seller messages never pays for it. Raises when it cannot be loaded."""
    from detectors import message_model as model_module

    return model_module.pressure_of(message_model(), texts)
