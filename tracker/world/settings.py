"""The world's data files, parsed once per load: rebuilt when tracker.config.reload() is called."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tracker.config import load

T = TypeVar("T")

_memo: dict[str, tuple[object, Any]] = {}


def derived(name: str, build: Callable[[dict[str, Any]], T]) -> T:
    """`build(load(name))`, rebuilt only when the settings are reloaded (tracker.config.reload)."""
    raw = load(name)
    hit = _memo.get(name)
    if hit is None or hit[0] is not raw:
        hit = (raw, build(raw))
        _memo[name] = hit
    return hit[1]
