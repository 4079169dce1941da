"""Model files that cannot be swapped behind our back, and that say when this install cannot vouch for them.

A model is written with skops (`skops.io`: scikit-learn objects rebuilt from their state, no pickle; reading
one runs no code of the file's choosing) next to a metadata JSON holding its SHA-256 and the library versions
it was made with. Loading checks, in order:

1. the SHA-256 against the one recorded at training (in the sidecar `<name>.json` for shipped models, in the
   `models` table for models trained into a user's database, which passes `expected_sha256`);
2. the scikit-learn version it was made with against this one: a model made by another version may load and
   still score differently (trees, binning and calibration are that version's), so it is refused
   (`ModelVersionMismatch`, one line naming both versions and the command that makes it again);
3. that every type the file names is one we trust: scikit-learn's, numpy's and this project's estimators.

Beside the model file, `<name>.lean.npz` holds its lean export (`detectors.lean_model`: the same scores from plain
numpy arrays, no scikit-learn), recorded in the metadata with its own SHA-256; `tracker.detection.registry` scores
a run with it where it matches the model, and loads the model itself where it does not.

A file written by an older tracker as a pickle (`.joblib`) is refused the same way: it would run code when read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import zipfile
from pathlib import Path
from typing import Any

SUFFIX = ".skops"
# type-name prefixes a model file may name (skops lists the ones it does not trust by default)
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "detectors.", "builtins.", "collections.")


class ModelIntegrityError(Exception):
    """A model file is missing, unreadable or does not match the SHA-256 recorded at training."""


class ModelVersionMismatch(ModelIntegrityError):
    """A model was made with another scikit-learn than this one: its scores cannot be vouched for."""

    def __init__(self, message: str, made_with: str, running: str):
        super().__init__(message)
        self.made_with = made_with
        self.running = running


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
    import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "skops": skops.__version__,
    }


def save_model(model: Any, path: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write the model (skops) and its metadata JSON (with the file's SHA-256); return the metadata written."""
    import skops.io as sio

    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"{path}: a model file ends in {SUFFIX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED)
    tmp.replace(path)
    meta = dict(metadata)
    meta["file"] = path.name
    meta["format"] = "skops"
    meta["sha256"] = sha256_file(path)
    meta["library_versions"] = library_versions()
    return _with_lean(model, path, meta)


def lean_path(model_path: str | Path) -> Path:
    """Where a model file's lean export lives: beside it, `<name>.lean.npz`."""
    from detectors.lean_model import SUFFIX

    return Path(model_path).with_suffix(SUFFIX)


def save_lean(lean: Any, path: str | Path) -> str:
    """Write a `detectors.lean_model.LeanModel` to `path` as plain arrays (atomically; no pickle); return the
    file's SHA-256."""
    import numpy as np

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, allow_pickle=False, **lean.arrays())
    tmp.replace(path)
    return sha256_file(path)


def load_lean(path: str | Path, model_sha256: str, of_arrays: Any = None) -> Any:
    """The lean export at `path` of the model file whose SHA-256 is `model_sha256`, read by `of_arrays` (the
    classifier's `LeanModel.of_arrays` unless given); None where there is none, it was made from another file, or it
    is not what this version writes (the caller then scores with scikit-learn)."""
    import numpy as np

    if of_arrays is None:
        from detectors.lean_model import LeanModel

        of_arrays = LeanModel.of_arrays
    try:
        with np.load(path, allow_pickle=False) as data:
            model = of_arrays({name: data[name] for name in data.files})
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        return None
    if not model_sha256 or model.source.get("model_sha256") != model_sha256:
        return None
    return model


def write_lean(model: Any, path: str | Path, sha256: str) -> dict[str, Any] | None:
    """Write the lean export of a scoring pipeline or of the message model beside its model file
    (`detectors.lean_model`, `detectors.message_scoring`: plain arrays, no pickle, naming the model file's SHA-256)
    and return what the metadata records of it (file, SHA-256, format); None, and no lean file left there, for a
    model the lean export cannot hold (it is then scored with scikit-learn alone)."""
    from detectors import lean_model, message_model, message_scoring
    from detectors.classifier import lean_export

    target = lean_path(path)
    source = {"model_sha256": sha256, "model_file": Path(path).name}
    lean, fmt = lean_export(model, source), lean_model.FORMAT
    if lean is None:
        lean, fmt = message_model.lean_export(model, source), message_scoring.FORMAT
    if lean is None:
        target.unlink(missing_ok=True)
        return None
    return {"file": target.name, "sha256": save_lean(lean, target), "format": fmt}


def export_lean(path: str | Path) -> dict[str, Any]:
    """Write the lean export of a model file already saved (verified as `load_model` does) and record it in its
    metadata JSON; return the metadata."""
    meta = read_metadata(path)
    return _with_lean(load_model(path, metadata=meta), path, meta)


def _with_lean(model: Any, path: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the model's lean export beside it, record it in its metadata (none where it cannot be made) and write
    the metadata JSON; return the metadata."""
    lean = write_lean(model, path, meta["sha256"])
    if lean is None:
        meta.pop("lean", None)
    else:
        meta["lean"] = lean
    metadata_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    meta_file = metadata_path(path)
    try:
        return json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise ModelIntegrityError(f"{meta_file}: model metadata missing; cannot verify {Path(path).name}") from None
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"{meta_file}: model metadata is not valid JSON ({exc})") from None


def check_versions(path: str | Path, metadata: dict[str, Any], remedy: str) -> None:
    """Refuse a model made with another scikit-learn than this one (ModelVersionMismatch, one line)."""
    import sklearn

    made_with = (metadata.get("library_versions") or {}).get("scikit-learn")
    if made_with != sklearn.__version__:
        raise ModelVersionMismatch(
            f"{Path(path).name} was made with scikit-learn {made_with or 'of an unknown version'}, this is "
            f"{sklearn.__version__}: its scores cannot be vouched for; {remedy}",
            str(made_with), sklearn.__version__)


def load_model(path: str | Path, expected_sha256: str | None = None, *, metadata: dict[str, Any] | None = None,
               remedy: str = "train it again") -> Any:
    """Load a model after checking its SHA-256, the scikit-learn it was made with and the types it names. A file
    read once is kept rebuilt in this user's cache (`load_cache_dir`), under its SHA-256 and the library versions:
    skops must import every estimator scikit-learn has to know which types to trust (about a second), and a
    `tracker detect` that rescores a few orders should not pay that each time."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ModelIntegrityError(f"{path}: a pickled model from an older tracker (it would run code when read); "
                                  f"refusing it: {remedy}")
    if not path.exists():
        raise ModelIntegrityError(f"{path}: model file not found")
    metadata = read_metadata(path) if metadata is None else metadata
    expected = expected_sha256 or metadata.get("sha256")
    if not expected:
        raise ModelIntegrityError(f"{path}: no SHA-256 recorded for this model; refusing to load it")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: SHA-256 {actual[:12]}… does not match the {expected[:12]}… recorded at training; "
            "the file was changed or replaced, refusing to load it (retrain with 'tracker train')"
        )
    check_versions(path, metadata, remedy)
    cached = _cache_file(actual)
    model = _read_cache(cached)
    if model is not None:
        return model
    model = _load_skops(path, remedy)
    _write_cache(cached, model)
    return model


def load_cache_dir() -> Path | None:
    """Where rebuilt models are kept: $TRACKER_CACHE_DIR, else $XDG_CACHE_HOME/tracker or ~/.cache/tracker;
    None (no cache) when it is set to an empty value."""
    import os

    configured = os.environ.get("TRACKER_CACHE_DIR")
    if configured is not None:
        return Path(configured) / "models" if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracker" / "models"


def _cache_file(sha256: str) -> Path | None:
    import platform

    import numpy
    import sklearn

    folder = load_cache_dir()
    if folder is None:
        return None
    key = f"{sha256}-sklearn{sklearn.__version__}-numpy{numpy.__version__}-py{platform.python_version()}"
    return folder / f"{key}.pickle"


def _read_cache(cached: Path | None) -> Any:
    """The rebuilt model kept for this file, if this user wrote it (a file others may write is ignored)."""
    import os
    import pickle
    import stat

    if cached is None:
        return None
    try:
        info = cached.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        folder = cached.parent.lstat()
        if folder.st_uid != os.getuid() or folder.st_mode & 0o022:
            return None
        with open(cached, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - written by this user from a verified skops file (see docstring)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        return None


def _write_cache(cached: Path | None, model: Any) -> None:
    """Keep the rebuilt model for the next run (0600 in a 0700 folder; atomically); a cache that cannot be
    written is no cache."""
    import os
    import pickle
    import tempfile

    if cached is None:
        return
    try:
        cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".model-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.chmod(tmp, 0o600)
            os.replace(tmp, cached)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return


def _load_skops(path: Path, remedy: str) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
        foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if foreign:
            raise ModelIntegrityError(f"{path}: names types this tracker does not trust ({', '.join(foreign)})")
        return sio.load(path, trusted=untrusted)
    except ModelIntegrityError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file skops cannot rebuild: one line, not a traceback
        raise ModelIntegrityError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); {remedy}") from None
