"""Carrier text -> normalised status, from the keyword map in data/statuses.toml.

Importers call it for events whose status column is empty; the poller's HTML carriers may use it as the
fallback for text their adapter does not know. Matching is data, so a new carrier phrase is a line in the
TOML file (or in the user's override), not a code change.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from tracker import config
from tracker.errors import BadInput
from tracker.events import NORMALISED_STATUSES

_Rules = tuple[tuple[str, re.Pattern[str]], ...]


def _compile(rules: list[dict], where: str) -> _Rules:
    compiled = []
    for i, rule in enumerate(rules):
        status = rule.get("status")
        if status not in NORMALISED_STATUSES:
            raise BadInput(f"statuses.toml: {where} rule {i + 1}: status {status!r} is not a normalised status")
        patterns = rule.get("patterns") or []
        try:
            # one alternation per rule: a rule is a single regex search, whatever its number of phrases
            regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        except re.error as exc:
            raise BadInput(f"statuses.toml: {where} rule {i + 1} ({status}): bad pattern: {exc}") from exc
        if patterns:
            compiled.append((status, regex))
    return tuple(compiled)


@cache
def _rules(carrier: str | None) -> _Rules:
    settings = config.load("statuses")
    base = _compile(settings.get("rules", []), "rules")
    if carrier:
        own = settings.get("carriers", {}).get(carrier)
        if own:
            return _compile(own, f"carriers.{carrier}") + base
    return base


@cache
def _codes() -> dict[str, str]:
    codes = {str(k).upper(): v for k, v in config.load("statuses").get("codes", {}).items()}
    bad = sorted(k for k, v in codes.items() if v not in NORMALISED_STATUSES)
    if bad:
        raise BadInput(f"statuses.toml: [codes] {', '.join(bad)}: not a normalised status")
    return codes


@lru_cache(maxsize=65536)  # carriers repeat a few hundred phrases; the cache makes imports cheap
def status_from_text(text: str | None, carrier: str | None = None) -> str:
    """The normalised status a carrier's description means; 'unknown' when no rule matches."""
    if not text:
        return "unknown"
    for status, regex in _rules(carrier or None):
        if regex.search(text):
            return status
    return "unknown"


def status_from_code(code: str | None) -> str:
    """The normalised status a carrier event code (e.g. Cainiao's GTMS_SIGNED) means; 'unknown' if unmapped."""
    if not code:
        return "unknown"
    return _codes().get(code.strip().upper(), "unknown")


def derive_status(description: str | None, raw_code: str | None = None, carrier: str | None = None) -> str:
    """Status from the text, falling back to the carrier's code when the text is no help."""
    status = status_from_text(description, carrier)
    if status == "unknown":
        status = status_from_code(raw_code)
    return status


def clear_cache() -> None:
    """Forget compiled rules (tests that change the config call this after config.reload())."""
    _rules.cache_clear()
    _codes.cache_clear()
    status_from_text.cache_clear()
