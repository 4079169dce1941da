"""The Cainiao-style JSON adapter: `detail.json` answers with an `actionCode` per event.

The actionCode -> status map is the carrier file's [statuses] table (DOMAIN.md section 3). A code the map
does not know is kept raw with status "unknown" and logged, never dropped.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from tracker.carriers.base import Carrier, Page, ParseResult, parse_local_time, parse_offset, register_adapter
from tracker.events import NORMALISED_STATUSES
from tracker.timeutil import to_db

log = logging.getLogger("tracker.carriers.cainiao")


def dig(doc: Any, path: str | None) -> Any:
    """Follow a dotted path ("module.0.detailList") through dicts and lists; None when it breaks."""
    if not path:
        return doc
    for part in path.split("."):
        if isinstance(doc, list) and part.isdigit():
            doc = doc[int(part)] if int(part) < len(doc) else None
        elif isinstance(doc, dict):
            doc = doc.get(part)
        else:
            return None
    return doc


def _tables(carrier: Carrier) -> tuple[dict[str, str], list[tuple[Any, str]], list[tuple[str, str]]]:
    """The [statuses] and [descriptions] tables, ordered and compiled once per carrier, not once per event."""
    if "cainiao" not in carrier.cache:
        table: dict[str, str] = carrier.settings.get("statuses", {})
        # longest pattern first: "CC_EX_*" before "CC_*"; fnmatchcase's own translation, compiled once
        patterns = [(re.compile(fnmatch.translate(p)).match, table[p])
                    for p in sorted((p for p in table if "*" in p), key=len, reverse=True)]
        phrases: dict[str, str] = carrier.settings.get("descriptions", {})
        ordered = [(phrase.lower(), phrases[phrase]) for phrase in sorted(phrases, key=len, reverse=True)]
        carrier.cache["cainiao"] = (table, patterns, ordered)
    return carrier.cache["cainiao"]


def status_for(carrier: Carrier, code: str) -> str | None:
    table, patterns, _phrases = _tables(carrier)
    if code in table:
        return table[code]
    for match, status in patterns:
        if match(code):
            return status
    return None


def refine(carrier: Carrier, description: str | None, status: str) -> str:
    """The status the event's text gives, where a [descriptions] phrase says more than the code."""
    text = (description or "").lower()
    for phrase, refined in _tables(carrier)[2]:
        if phrase in text:
            return refined
    return status


def _occurred_at(item: dict[str, Any]) -> str:
    time_str = item.get("timeStr") or (item.get("time") if isinstance(item.get("time"), str) else None)
    if time_str:
        tz = parse_offset(item.get("timeZone"))
        return to_db(parse_local_time(str(time_str), ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"], tz))
    stamp = item.get("time")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return to_db(datetime.fromtimestamp(stamp / 1000, UTC))
    raise ValueError("event has no time")


def _text(value: Any) -> str | None:
    return " ".join(str(value).split()) if value not in (None, "") else None


def check_cainiao(carrier: Carrier) -> list[str]:
    tables = [("statuses", carrier.settings.get("statuses", {})), ("descriptions", carrier.settings.get("descriptions", {}))]
    return [f"[{name}] {key!r}: {status!r} is not a normalised status"
            for name, table in tables for key, status in table.items() if status not in NORMALISED_STATUSES]


@register_adapter("cainiao_json", check=check_cainiao)
def parse_cainiao(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """Events from a Cainiao-style detail.json answer."""
    cfg: dict[str, Any] = carrier.settings.get("json", {})
    head = page.body[:512].lstrip().lower()
    if "html" in (page.content_type or "").lower() or head.startswith(b"<"):
        captcha = any(m.encode() in page.body[:200_000].lower() for m in ("captcha", "verify", "slide"))
        return ParseResult(
            "captcha" if captcha else "wrong_content",
            error="HTML where JSON was expected" + (" (a captcha page)" if captcha else ""),
        )
    doc = json.loads(page.body.decode(page.encoding or "utf-8"))
    module = dig(doc, cfg.get("module", "module.0"))
    if not isinstance(module, dict):
        return ParseResult("error", error="JSON answer without the expected 'module'")
    items = dig(module, cfg.get("events", "detailList")) or []
    if not isinstance(items, list):
        return ParseResult("error", error="JSON answer whose event list is not a list")
    markers = {m.upper() for m in cfg.get("not_found_markers", [])}
    if not items:
        flags = {str(module.get(k, "")).upper() for k in ("mailNoSource", "status")}
        if flags & markers or not markers:
            return ParseResult("not_found")
        return ParseResult("error", error="no events and no not-found notice in the answer")
    result = ParseResult("ok")
    last_mile = _text(dig(module, cfg.get("last_mile_number", "realMailNo")))
    for item in items:
        if not isinstance(item, dict):
            return ParseResult("error", error="an event in the answer is not an object")
        code = _text(item.get("actionCode")) or ""
        status = status_for(carrier, code) if code else None
        if status is None:
            status = "unknown"
            result.unknown_codes.append(code or "(none)")
            log.info("%s: unknown actionCode %r on %s kept raw as 'unknown'", carrier.name, code, tracking_number)
        description = _text(item.get("desc")) or _text(item.get("standerdDesc"))
        if status != "unknown":
            status = refine(carrier, description, status)
        city, postcode, country = _text(item.get("city")), _text(item.get("postCode")), _text(item.get("country"))
        location = _text(item.get("location")) or (", ".join(p for p in (city, country) if p) or None)
        extra = None
        if item.get("realMailNo"):
            last_mile = _text(item["realMailNo"])
            extra = json.dumps({"last_mile_number": last_mile})
        result.events.append({
            "tracking_number": tracking_number,
            "occurred_at": _occurred_at(item),
            "status": status,
            "description": description,
            "location": location,
            "city": city,
            "postcode": postcode,
            "country": country.upper() if country and len(country) == 2 else country,
            "carrier": carrier.name,
            "raw_code": code or None,
            "extra": extra,
        })
    result.last_mile_number = last_mile
    return result
