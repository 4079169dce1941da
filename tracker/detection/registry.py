"""The model registry: which classifier scores a store, where models live, and the message model's file.

A classifier trained into a user's store is written next to it under `models/`, registered in the `models`
table (the active one wins) and verified on loading (`persistence`: SHA-256, scikit-learn version, trusted
types); the shipped default in `data/models/classifier.skops` is the fallback. A model whose files this
install cannot vouch for is refused with one line naming the command that makes it again: never scored with.
A model trained on features this version does not compute is refused too.

Beside each model file, its lean export (`detectors.lean_model`, `detectors.message_scoring`, written with it)
scores the same, bit for bit, without scikit-learn: `load_lean_model` gives it where the model file, the lean file
and their recorded SHA-256s all match and the model was made with the scikit-learn installed (read from the
package's metadata, not imported); anywhere else None, and the caller loads the model itself (`load_active_model`,
with its refusals; it writes the export of a store's model saved before lean exports existed, for the runs after
it). The shipped message model (`data/models/message_model.skops`) is loaded once per process, on first use.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from detectors.features import FEATURE_GROUPS
from detectors.rules import ModelRefused
from tracker import config
from tracker.detection import persistence
from tracker.errors import RunFailure

# data/models/, or this install's own copies in $TRACKER_MODEL_DIR (config.model_path)
DEFAULT_MODEL_PATH = config.model_path("classifier.skops")
MESSAGE_MODEL_PATH = config.model_path("message_model.skops")
KIND = "classifier"
REBUILD_DEFAULT = "python -m tracker.detection.world_training"
REBUILD_MESSAGES = "python -m tracker.detection.message_training"


@dataclass
class LoadedModel:
    model_id: str
    model: Any  # the pipeline of detectors.classifier.blend: OrderFeatures -> BlendedClassifier
    metadata: dict[str, Any]

    def scored_by(self) -> dict[str, Any]:
        """Which model scores, and how its parts are weighed (`tracker case show`, the case page)."""
        classifier = self.model.named_steps["classifier"]
        shares = classifier.shares() if hasattr(classifier, "shares") else [{"part": "model", "weight": 1.0}]
        blend = hasattr(classifier, "base_value") and getattr(classifier, "blend", True)
        return {"model_id": self.model_id, "summary": describe_blend(shares, self.metadata),
                "parts": shares, "base_log_odds": round(float(classifier.base_value()), 4) if blend else None}

    @property
    def lean(self) -> bool:
        """Whether the model is the lean export (numpy alone) rather than the scikit-learn pipeline."""
        from detectors.lean_model import LeanModel

        return isinstance(self.model, LeanModel)


def describe_blend(shares: list[dict[str, Any]], metadata: dict[str, Any]) -> str:
    """One sentence: who scores, e.g. 'the shipped model 85%, the rules prior 15%'."""
    names = {"local": f"the local model ({metadata.get('n_labels', '?')} labelled orders)",
             "shipped": "the shipped model (generated worlds)", "prior": "the rules prior"}
    return ", ".join(f"{names.get(s['part'], s['part'])} {s['weight']:.0%}" for s in shares)


def database_folder(db: sqlite_utils.Database) -> Path:
    row = db.conn.execute("PRAGMA database_list").fetchone()
    return Path(row[2]).parent if row and row[2] else Path.cwd()


def save_to_store(db: sqlite_utils.Database, model: Any, meta: dict[str, Any]) -> str:
    """Write the model next to the store, register it in `models` as the active classifier; return its id."""
    model_id = meta["id"]
    path = database_folder(db) / "models" / f"{model_id}{persistence.SUFFIX}"
    written = persistence.save_model(model, path, meta)
    with db.conn:
        db.execute("UPDATE models SET active = 0 WHERE kind = ?", [KIND])
        db.execute(
            "INSERT OR REPLACE INTO models(id, kind, created_at, path, sha256, metadata, active) VALUES (?,?,?,?,?,?,1)",
            [model_id, KIND, written["created_at"], str(path), written["sha256"], json.dumps(written, default=str)],
        )
    return model_id


def load_default() -> LoadedModel:
    """The shipped default model (RunFailure with one line when it cannot be vouched for)."""
    try:
        meta = persistence.read_metadata(DEFAULT_MODEL_PATH)
        model = persistence.load_model(DEFAULT_MODEL_PATH, metadata=meta, remedy=(
            f"make it again with '{REBUILD_DEFAULT}' (a minute or two, with a progress bar)"))
    except persistence.ModelIntegrityError as exc:
        raise RunFailure(str(exc)) from None
    return check_features(LoadedModel(_default_id(meta), model, meta))


def _default_id(meta: dict[str, Any]) -> str:
    """The shipped model's id: its metadata's, else made from its SHA-256."""
    return meta.get("id") or f"default-{str(meta.get('sha256'))[:12]}"


def _active_row(db: sqlite_utils.Database) -> tuple[str, str, str, str | None] | None:
    """The store's active classifier: id, path, SHA-256, metadata JSON (None: the shipped default scores)."""
    return db.execute(
        "SELECT id, path, sha256, metadata FROM models WHERE kind = ? AND active = 1 ORDER BY created_at DESC LIMIT 1",
        [KIND],
    ).fetchone()


def load_active_model(db: sqlite_utils.Database) -> LoadedModel | None:
    """The active classifier of this store, else the shipped default; None when neither exists.

    A file that fails its checks (SHA-256, scikit-learn version, types) is refused (RunFailure), never loaded.
    """
    row = _active_row(db)
    if row:
        model_id, path, sha, metadata = row
        meta = json.loads(metadata or "{}")
        try:
            model = persistence.load_model(path, expected_sha256=sha, metadata=meta,
                                           remedy="train it again with 'tracker train'")
        except persistence.ModelIntegrityError as exc:
            raise RunFailure(f"model {model_id}: {exc}") from None
        loaded = check_features(LoadedModel(model_id, model, meta))
        if "lean" not in meta:
            _add_lean(db, loaded, path, sha)
        return loaded
    if persistence.metadata_path(DEFAULT_MODEL_PATH).exists() or DEFAULT_MODEL_PATH.exists():
        return load_default()
    return None


def _add_lean(db: sqlite_utils.Database, loaded: LoadedModel, path: str, sha: str) -> None:
    """Write the lean export of a store's model saved before lean exports existed, and record it with the model,
    so that the next incremental run scores with it; nothing where it cannot be written (it then is not used)."""
    try:
        lean = persistence.write_lean(loaded.model, path, sha)
    except OSError:
        return
    if lean is None:
        return
    loaded.metadata["lean"] = lean
    with db.conn:
        db.execute("UPDATE models SET metadata = ? WHERE id = ? AND kind = ?",
                   [json.dumps(loaded.metadata, default=str), loaded.model_id, KIND])


# the lean export last loaded, with the files' stat when their hashes were checked
_lean_models: dict[tuple[str, str, str], tuple[Any, tuple[tuple[int, int, int], ...]]] = {}


def load_lean_model(db: sqlite_utils.Database) -> LoadedModel | None:
    """The active classifier (as `load_active_model` picks it) as its lean export, loaded without scikit-learn; None
    where it has none that this install can vouch for (see the module), or no model exists."""
    row = _active_row(db)
    if row:
        model_id, path, sha, metadata = row
        try:
            meta = json.loads(metadata or "{}")
        except ValueError:
            return None
    else:
        path = DEFAULT_MODEL_PATH
        try:
            meta = persistence.read_metadata(path)
        except persistence.ModelIntegrityError:
            return None
        sha, model_id = meta.get("sha256"), _default_id(meta)
    lean = _lean(Path(path), sha, meta)
    if lean is None:
        return None
    try:
        return check_features(LoadedModel(model_id, lean, meta))
    except RunFailure:
        return None  # refused by the model's own loading, with its message


def _lean(path: Path, sha: str | None, meta: dict[str, Any], fmt: Any = None, of_arrays: Any = None,
          cache: dict[tuple[str, str, str], tuple[Any, tuple[tuple[int, int, int], ...]]] = _lean_models) -> Any:
    """The lean export of the model file at `path` (the classifier's unless `fmt` and `of_arrays` say another), as
    the module says it is vouched for; kept in `cache` while both files stand as they were."""
    from importlib import metadata as packages

    if fmt is None:
        from detectors import lean_model

        fmt = lean_model.FORMAT
    info = meta.get("lean") or {}
    if not sha or not isinstance(info, dict) or info.get("format") != fmt or not info.get("sha256"):
        return None
    try:
        installed = packages.version("scikit-learn")
    except packages.PackageNotFoundError:
        return None
    if (meta.get("library_versions") or {}).get("scikit-learn") != installed:
        return None  # the model itself is refused then: so is its export
    lean_file = persistence.lean_path(path)
    key = (str(lean_file), sha, info["sha256"])
    try:
        # both files as they were when this process last checked them: their hashes stand (a run asks twice)
        stamps = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (path.stat(), lean_file.stat()))
        if key in cache and cache[key][1] == stamps:
            return cache[key][0]
        if persistence.sha256_file(path) != sha or persistence.sha256_file(lean_file) != info["sha256"]:
            return None
    except OSError:
        return None
    model = persistence.load_lean(lean_file, sha, of_arrays)
    if model is None:
        return None
    cache.clear()
    cache[key] = (model, stamps)
    return model


def check_features(loaded: LoadedModel) -> LoadedModel:
    """Refuse a model trained on features this version does not compute (an older or newer tracker)."""
    trained_on = list(loaded.metadata.get("features") or [])
    unknown = [f for f in trained_on if f not in FEATURE_GROUPS]
    used = list(loaded.model.named_steps["features"].get_feature_names_out())
    if unknown or (trained_on and trained_on != used):
        raise RunFailure(f"model {loaded.model_id} was trained on features of another tracker version "
                         f"({', '.join(unknown[:3]) or 'another list'}); run 'tracker train' again")
    return loaded


# ------------------------------------------------------------------------------------------- message model


class VersionRefused(RunFailure, ModelRefused):
    """The message model was made with another scikit-learn: the rules stop too (not the phrase baseline)."""


_lock = threading.Lock()
_message_model: list[Any] = []


def message_model() -> Any:
    """The shipped message model (verified like the classifier), loaded once per process."""
    with _lock:
        if not _message_model:
            try:
                _message_model.append(persistence.load_model(
                    MESSAGE_MODEL_PATH, remedy=f"make it again with '{REBUILD_MESSAGES}' (seconds)"))
            except persistence.ModelVersionMismatch as exc:
                raise VersionRefused(str(exc)) from None
            except persistence.ModelIntegrityError as exc:
                raise RunFailure(str(exc)) from None
        return _message_model[0]


def forget_message_model() -> None:
    """Load the message model anew on next use (after it was retrained)."""
    with _lock:
        _message_model.clear()
        _lean_message_models.clear()


def message_model_key() -> str:
    """Names the message model in the store's cache of pressure probabilities: a new model, new probabilities."""
    try:
        return persistence.read_metadata(MESSAGE_MODEL_PATH)["sha256"][:16]
    except persistence.ModelIntegrityError as exc:
        raise RunFailure(str(exc)) from None


_lean_message_models: dict[tuple[str, str, str], tuple[Any, tuple[tuple[int, int, int], ...]]] = {}


def lean_message_model() -> Any:
    """The shipped message model's lean export (`detectors.message_scoring`: its probabilities bit for bit, without
    scikit-learn), where this install can vouch for it as for the classifier's (see the module); else None."""
    from detectors import message_scoring

    try:
        meta = persistence.read_metadata(MESSAGE_MODEL_PATH)
    except persistence.ModelIntegrityError:
        return None
    return _lean(Path(MESSAGE_MODEL_PATH), meta.get("sha256"), meta, message_scoring.FORMAT,
                 message_scoring.LeanMessageModel.of_arrays, _lean_message_models)


def message_pressure(texts: list[str]) -> list[float]:
    """The message model's pressure probability of each text: by its lean export where there is one this install
    vouches for, else by the model itself (loading it and scikit-learn on first use), so a run without seller
    messages never pays for either. Raises when the model cannot be loaded."""
    lean = lean_message_model()
    if lean is not None:
        return lean.pressure(texts)
    from tracker.detection import preload

    preload.wait()  # scikit-learn may be being imported in its thread: imported here after it
    from detectors import message_model as model_module

    return model_module.pressure_of(message_model(), texts)
