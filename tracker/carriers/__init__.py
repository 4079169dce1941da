"""Carriers as data: each file in data/carriers/ names an adapter and configures it.

One registry seam: `register_adapter("html")` on a parse function. Built-ins register below, through the
same door as anyone else's. `load_carriers()` reads every carrier file (the defaults, then the folder
$TRACKER_CONFIG_DIR/carriers, then $TRACKER_CARRIERS_DIR; a later file of the same name wins).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from tracker.carriers.base import (  # noqa: F401 - the adapters' registry lives in base, with what they share
    _ADAPTERS,
    _CHECKS,
    BASE_URL_ENV,
    BREAKER_OUTCOMES,
    OUTCOMES,
    Carrier,
    Check,
    Page,
    Parser,
    ParseResult,
    adapters,
    rebase_url,
    register_adapter,
)
from tracker.config import data_path
from tracker.errors import BadInput

__all__ = [
    "BASE_URL_ENV", "BREAKER_OUTCOMES", "OUTCOMES", "Carrier", "Page", "ParseResult",
    "carrier_dirs", "load_carriers", "parse_page", "rebase_url", "register_adapter", "resolve",
]

def parse_page(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """What the page says; a hostile page becomes an "error" result, never an exception."""
    try:
        return _ADAPTERS[carrier.adapter](carrier, page, tracking_number)
    except RecursionError:
        return ParseResult("error", error="page too deeply nested to parse")
    except Exception as exc:  # a page we cannot read is a recorded error on the shipment, not a crash
        return ParseResult("error", error=f"unreadable page: {type(exc).__name__}: {str(exc)[:200]}")


def carrier_dirs() -> list[Path]:
    dirs = [data_path("carriers")]
    if os.environ.get("TRACKER_CONFIG_DIR"):
        dirs.append(Path(os.environ["TRACKER_CONFIG_DIR"]) / "carriers")
    if os.environ.get("TRACKER_CARRIERS_DIR"):
        dirs.append(Path(os.environ["TRACKER_CARRIERS_DIR"]))
    return dirs


def carrier_from_settings(settings: dict, source: str = "") -> Carrier:
    """Build and check one carrier from its file's settings; bad settings are one line each."""
    where = source or settings.get("name", "carrier")
    problems = []
    for key in ("name", "adapter", "url", "number_pattern", "rate_per_second"):
        if key not in settings:
            problems.append(f"{where}: missing '{key}'")
    if problems:
        raise BadInput(problems)
    if settings["adapter"] not in _ADAPTERS:
        raise BadInput(f"{where}: unknown adapter {settings['adapter']!r} (known: {', '.join(adapters())})")
    url = str(settings["url"])
    if not url.startswith(("http://", "https://")) or "{number}" not in url:
        raise BadInput(f"{where}: 'url' must be http(s) and contain {{number}}")
    try:
        pattern = re.compile(settings["number_pattern"])
    except re.error as exc:
        raise BadInput(f"{where}: 'number_pattern' is not a regular expression ({exc})") from exc
    rate = float(settings["rate_per_second"])
    if rate <= 0:
        raise BadInput(f"{where}: 'rate_per_second' must be positive")
    carrier = Carrier(
        name=str(settings["name"]),
        label=str(settings.get("label", settings["name"])),
        adapter=str(settings["adapter"]),
        url=url,
        number_pattern=pattern,
        rate_per_second=rate,
        burst=max(1, int(settings.get("burst", 1))),
        aliases=tuple(settings.get("aliases", ())),
        settings=settings,
        source=source,
    )
    check = _CHECKS.get(carrier.adapter)
    problems = [f"{where}: {p}" for p in check(carrier)] if check else []
    if problems:
        raise BadInput(problems)
    return carrier


def load_carriers(dirs: list[Path] | None = None) -> dict[str, Carrier]:
    """Every configured carrier by name (files read afresh: a file written a moment ago counts)."""
    files: dict[str, Path] = {}
    for folder in dirs if dirs is not None else carrier_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                files[path.stem] = path
    carriers = {}
    for path in files.values():
        try:
            settings = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path}: not valid TOML: {exc}") from exc
        carrier = carrier_from_settings(settings, str(path))
        carriers[carrier.name] = carrier
    return carriers


def resolve(carriers: dict[str, Carrier], name: str | None) -> Carrier | None:
    """The carrier a name or alias means, ignoring case and punctuation."""
    if not name:
        return None
    if name in carriers:
        return carriers[name]
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for carrier in carriers.values():
        if any(re.sub(r"[^a-z0-9]", "", n.lower()) == key for n in (carrier.name, *carrier.aliases)):
            return carrier
    return None


# Built-in adapters register themselves on import.
from tracker.carriers import cainiao as _cainiao  # noqa: E402, F401
from tracker.carriers import html as _html  # noqa: E402, F401
