"""The one door through which detectors read files: the project's shipped, read-only reference data under
data/ (tracking-number formats, place vocabulary), with the user's override folder ($TRACKER_CONFIG_DIR) for
settings files. Nothing here writes, and nothing touches a store, a process or a temporary file; the rest of
detectors/ opens no file at all (tests/test_architecture.py holds both)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def data_file(*parts: str) -> Path:
    return DATA_DIR.joinpath(*parts)


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def files(folder: Path, pattern: str) -> list[Path]:
    """The files of a data folder matching a glob pattern, in name order."""
    return sorted(folder.glob(pattern))


def settings_with_override(name: str) -> dict[str, Any]:
    """data/<name>.toml with $TRACKER_CONFIG_DIR/<name>.toml over it, table by table (as tracker.config does)."""
    settings: dict[str, Any] = {}
    override = os.environ.get("TRACKER_CONFIG_DIR")
    for path in (data_file(f"{name}.toml"), *([Path(override) / f"{name}.toml"] if override else [])):
        if path.is_file():
            for key, value in read_toml(path).items():
                settings[key] = {**settings.get(key, {}), **value} if isinstance(value, dict) else value
    return settings
