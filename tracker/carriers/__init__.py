"""Carriers as data: each file in data/carriers/ names an adapter and configures it.

One registry seam: `register_adapter("html")` on a parse function (`register_batch_adapter` for an API that
answers many numbers per request, like 17TRACK's). Built-ins register below, through the same door as
anyone else's; other packages register theirs through the `tracker.adapters` entry-point group, loaded when
this package is imported (as Datasette finds its plugins). `load_carriers()` reads every carrier file (the
defaults, then the folder $TRACKER_CONFIG_DIR/carriers, then $TRACKER_CARRIERS_DIR; a later file of the
same name wins).
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import entry_points
from pathlib import Path

from tracker.carrier_files import carrier_dirs, carrier_files, read_settings
from tracker.carriers.base import (  # noqa: F401 - the adapters' registry lives in base, beside what they share
    _ADAPTERS,
    _BATCH,
    _CHECKS,
    ANSWERS,
    BASE_URL_ENV,
    BREAKER_OUTCOMES,
    OUTCOMES,
    Carrier,
    Page,
    ParseResult,
    Request,
    adapters,
    batch_adapter,
    rebase_url,
    register_adapter,
    register_batch_adapter,
)
from tracker.errors import BadInput

__all__ = [
    "ANSWERS", "BASE_URL_ENV", "BREAKER_OUTCOMES", "OUTCOMES", "Carrier", "Page", "ParseResult", "Request",
    "batch_adapter", "carrier_dirs", "claimant", "load_carriers", "number_patterns", "parse_page", "rebase_url", "register_adapter",
    "register_batch_adapter", "resolve",
]

log = logging.getLogger("tracker.carriers")

PLUGIN_GROUP = "tracker.adapters"


def load_plugins() -> list[str]:
    """Import the adapters other packages declare in the `tracker.adapters` entry-point group.

    An entry point names a parse function (registered under the entry point's name) or a module that
    registers its own adapters on import. A plugin that fails to load is logged and skipped: a carrier
    file that names its adapter then fails to load with "unknown adapter"."""
    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # someone else's broken package must not stop the poller
            log.warning("adapter plugin %s (%s) failed to load: %s: %s", ep.name, ep.value, type(exc).__name__, exc)
            continue
        if callable(obj) and ep.name not in _ADAPTERS:
            register_adapter(ep.name, check=getattr(obj, "check", None))(obj)
        loaded.append(ep.name)
    return loaded


def parse_page(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """What the page says; a hostile page becomes an "error" result, never an exception."""
    try:
        return _ADAPTERS[carrier.adapter](carrier, page, tracking_number)
    except RecursionError:
        return ParseResult("error", error="page too deeply nested to parse")
    except Exception as exc:  # a page we cannot read is a recorded error on the shipment, not a crash
        return ParseResult("error", error=f"unreadable page: {type(exc).__name__}: {str(exc)[:200]}")


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
    # the number goes in the URL, or in a POST body ([request] body), or in a batch API's body
    in_body = "{number}" in str(settings.get("request", {}).get("body", "")) or settings["adapter"] in _BATCH
    if not url.startswith(("http://", "https://")) or ("{number}" not in url and not in_body):
        raise BadInput(f"{where}: 'url' must be http(s) and contain {{number}} (or [request] body must)")
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
    carriers = {}
    for path in carrier_files(dirs).values():
        settings = read_settings(path)
        carrier = carrier_from_settings(settings, str(path))
        carriers[carrier.name] = carrier
    return carriers


def claimant(carriers: dict[str, Carrier], number: str) -> Carrier | None:
    """The carrier a number belongs to when the order names none: the carrier of the number's own format
    (data/tracking_numbers) when it has a file; else the highest-priority carrier file whose number_pattern
    matches it; else the aggregator (a `fallback = true` file) when one is configured."""
    from detectors.tracking_numbers import guess_carrier

    own = carriers.get(guess_carrier(number) or "")
    if own is not None and not own.fallback:
        return own
    matching = [c for c in carriers.values() if not c.fallback and c.number_pattern.fullmatch(number)]
    if matching:
        return max(matching, key=lambda c: (c.priority, -sorted(carriers).index(c.name)))
    fallbacks = [c for c in carriers.values() if c.fallback and c.number_pattern.fullmatch(number)]
    return fallbacks[0] if fallbacks else None


def resolve(carriers: dict[str, Carrier], name: str | None) -> Carrier | None:
    """The carrier a name or alias means, compared as the importer stores names (`carrier_key`)."""
    from detectors.tracking_numbers import carrier_key

    if not name:
        return None
    if name in carriers:
        return carriers[name]
    key = carrier_key(name)
    for carrier in carriers.values():
        if key and any(carrier_key(n) == key for n in (carrier.name, carrier.label, *carrier.aliases)):
            return carrier
    return None


def number_patterns(carriers: dict[str, Carrier] | None = None) -> dict[str, str]:
    """Carrier name -> its file's `number_pattern`: handed to the number validation (detectors stay pure),
    so a number matching a configured carrier's pattern is recognised by that carrier. An aggregator (a
    `fallback` file) takes any number and so recognises none."""
    registry = carriers if carriers is not None else load_carriers()
    return {c.name: c.number_pattern.pattern for c in sorted(registry.values(), key=lambda c: c.name)
            if not c.fallback}


# Built-in adapters register themselves on import; other packages' adapters come through the entry points.
from tracker.carriers import aggregator as _aggregator  # noqa: E402, F401
from tracker.carriers import html as _html  # noqa: E402, F401
from tracker.carriers import jsonpage as _jsonpage  # noqa: E402, F401
from tracker.carriers import xmlpage as _xmlpage  # noqa: E402, F401

load_plugins()
