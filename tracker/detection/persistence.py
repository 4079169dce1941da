"""Model files that cannot be swapped behind our back: joblib plus a metadata JSON holding its SHA-256.

joblib (pickle) runs code when loaded, so a model file is trusted only if its SHA-256 matches the one
recorded when it was trained: in the sidecar `<name>.json` (shipped models) or in the `models` table
(models trained into a user's database, which passes `expected_sha256`).
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import joblib


class ModelIntegrityError(Exception):
    """A model file is missing, unreadable or does not match the SHA-256 recorded at training."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


def save_model(model: Any, path: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write the model and its metadata JSON (with the file's SHA-256); return the metadata written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    joblib.dump(model, tmp, compress=3)
    tmp.replace(path)
    meta = dict(metadata)
    meta["file"] = path.name
    meta["sha256"] = sha256_file(path)
    meta.setdefault("library_versions", library_versions())
    metadata_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    meta_file = metadata_path(path)
    try:
        return json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise ModelIntegrityError(f"{meta_file}: model metadata missing; cannot verify {Path(path).name}") from None
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"{meta_file}: model metadata is not valid JSON ({exc})") from None


def load_model(path: str | Path, expected_sha256: str | None = None) -> Any:
    """Load a model after checking its SHA-256 against the recorded one; refuse it otherwise."""
    path = Path(path)
    if not path.exists():
        raise ModelIntegrityError(f"{path}: model file not found")
    expected = expected_sha256 or read_metadata(path).get("sha256")
    if not expected:
        raise ModelIntegrityError(f"{path}: no SHA-256 recorded for this model; refusing to load it")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: SHA-256 {actual[:12]}… does not match the {expected[:12]}… recorded at training; "
            "the file was changed or replaced, refusing to load it (retrain with 'tracker train')"
        )
    return joblib.load(path)
