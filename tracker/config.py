"""Everything the platforms may change lives in data files; this is the one place they are loaded.

`load("rules")` reads `data/rules.toml`. A user may override any file by putting one of the same name in
the folder named by `$TRACKER_CONFIG_DIR`; its tables are merged over the defaults key by key.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from tracker.errors import BadInput

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PACKAGE_ROOT / "data"


def data_path(*parts: str) -> Path:
    return DATA_DIR.joinpath(*parts)


def model_path(name: str, *, for_writing: bool = False) -> Path:
    """A shipped model file (`classifier.skops`, `message_model.skops`).

    `$TRACKER_MODEL_DIR` names a folder of this install's own models (made again after a library upgrade, when
    data/models/ is not writable): a model is written there, and read from there when its file is there,
    else from data/models/.
    """
    override = os.environ.get("TRACKER_MODEL_DIR")
    if override:
        mine = Path(override) / name
        if for_writing or mine.exists() or mine.with_suffix(".json").exists():
            return mine
    return data_path("models", name)


def default_db_path() -> str:
    return os.environ.get("TRACKER_DB") or str(Path("data") / "tracker.db")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# Public name: the world's profiles merge their settings over the data files the same way.
merge = _merge


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}") from exc


@cache
def load(name: str) -> dict[str, Any]:
    """The settings file `data/<name>.toml`, with the user's override merged over it."""
    path = data_path(f"{name}.toml")
    settings = _read_toml(path) if path.exists() else {}
    override_dir = os.environ.get("TRACKER_CONFIG_DIR")
    if override_dir:
        override = Path(override_dir) / f"{name}.toml"
        if override.exists():
            settings = _merge(settings, _read_toml(override))
    return settings


def reload() -> None:
    """Forget cached settings (tests that write an override call this)."""
    load.cache_clear()
