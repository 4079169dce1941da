"""Times on carrier pages: the zone written beside a time wins, then the carrier's IANA zone (daylight saving
included, via zoneinfo and tzdata), then its fixed `utc_offset`. `date_formats` are optional: without them the
usual forms are read (ISO 8601, "26 Nov 2026, 14:05", "2026/11/26 14:05", "Nov 26, 2026 2:05 PM",
"26.11.2026 14:05", epoch seconds or milliseconds). Every distinct text is read once per carrier.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# "GMT+8", "GMT+0800", "UTC+3", "UTC-03:30", "+08:00", "+08", "-0300"
_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
# a zone written after the time: an offset, GMT/UTC with or without one, Z, or a known abbreviation
_TRAILING_ZONE = re.compile(
    r"(?:(?<=\d)|\s+|\s*\()((?:UTC|GMT)\s*[+-]\s*\d{1,2}(?::?\d{2})?|(?:UTC|GMT)\b|[+-]\d{2}(?::?\d{2})?|Z|[A-Za-z]{2,5})\)?$",
    re.IGNORECASE)
_DIGITS_ONLY = re.compile(r"^\d{9,13}(?:\.\d+)?$")
_NOISE = re.compile(r"\s*,\s*|\s+at\s+|\s+", re.IGNORECASE)

# The usual forms, tried in this order when a carrier names no date_formats (and after its own when it does).
USUAL_FORMS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
    "%d %b %Y %H:%M:%S", "%d %b %Y %H:%M", "%d %B %Y %H:%M:%S", "%d %B %Y %H:%M", "%d %b %Y", "%d %B %Y",
    "%b %d %Y %I:%M %p", "%b %d %Y %I:%M:%S %p", "%B %d %Y %I:%M %p", "%B %d %Y %I:%M:%S %p",
    "%b %d %Y %I:%M%p", "%B %d %Y %I:%M%p", "%b %d %Y %H:%M", "%B %d %Y %H:%M", "%b %d %Y", "%B %d %Y",
    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y",
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d-%m-%Y",
    "%Y%m%d%H%M%S", "%Y%m%d",
)
_MONTH_FIRST = {"%d/%m/%Y %H:%M:%S": "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M": "%m/%d/%Y %H:%M",
                "%d/%m/%Y": "%m/%d/%Y", "%d-%m-%Y %H:%M:%S": "%m-%d-%Y %H:%M:%S", "%d-%m-%Y %H:%M": "%m-%d-%Y %H:%M",
                "%d-%m-%Y": "%m-%d-%Y"}


def fixed_offset(text: str) -> timezone | None:
    """'+08:00', 'GMT+8', 'GMT+0800', 'UTC-5', '+08', 'Z', 'UTC', 'GMT' -> a fixed zone; None if not one."""
    s = text.strip()
    if s.upper() in ("Z", "UTC", "GMT", "UT"):
        return UTC
    m = _OFFSET.match(s)
    if not m:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    sign = -1 if m.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


@cache
def _zone_names() -> dict[str, str]:
    """Zone abbreviations as printed on pages -> offset or IANA name (data/time_zones.toml, user-overridable)."""
    from tracker import config

    return {k.upper(): str(v) for k, v in config.load("time_zones").get("abbreviations", {}).items()}


def zone(text: str | None, extra: dict[str, str] | None = None) -> tzinfo | None:
    """The zone a text names: an IANA name ('Europe/Madrid'), a fixed offset, or an abbreviation known to
    data/time_zones.toml or to the carrier's own [zones] table (`extra`). None when it names none."""
    if not text or not text.strip():
        return None
    s = text.strip()
    found = fixed_offset(s)
    if found is not None:
        return found
    name = (extra or {}).get(s.upper()) or _zone_names().get(s.upper())
    if name:
        return zone(name) if name.upper() != s.upper() else None
    if "/" in s:
        try:
            return ZoneInfo(s)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


def carrier_zone(settings: dict[str, Any], section: dict[str, Any] | None = None) -> tzinfo:
    """The zone a carrier's times are in when the page names none: `timezone` (IANA), else `utc_offset`."""
    for where in (section or {}, settings):
        for key in ("timezone", "utc_offset"):
            if where.get(key):
                found = zone(str(where[key]))
                if found is None:
                    raise ValueError(f"'{key}' = {where[key]!r} is not an IANA zone or a UTC offset")
                return found
    return UTC


CACHED_TEXTS = 4096


class TimeReader:
    """Reads a carrier's time texts into UTC datetimes; one per carrier, caching the distinct texts it read last
    (`CACHED_TEXTS` of them: a page's events repeat a time, a shipment polled again repeats its page; a cache of
    every text a long poll met held some 40 MB, a text's time once read taking a few microseconds)."""

    def __init__(self, default_zone: tzinfo, date_formats: list[str] | None = None, *, day_first: bool = True,
                 zones: dict[str, str] | None = None, epoch: str | None = None):
        self.default_zone = default_zone
        own = list(date_formats or [])
        usual = [(_MONTH_FIRST.get(f, f) if not day_first else f) for f in USUAL_FORMS]
        self.formats = own + [f for f in usual if f not in own]
        self.zones = {k.upper(): str(v) for k, v in (zones or {}).items()}
        self.epoch = epoch  # "s" or "ms": how a bare number is read (default: by its size)
        self._cache: dict[tuple[str, str], datetime] = {}
        self._last = 0  # the format that read the previous text: a page's times share one

    def read(self, text: Any, zone_text: str | None = None) -> datetime:
        """`text` (a time, or a date and a time joined) as an aware UTC datetime. Raises ValueError."""
        if isinstance(text, int | float) and not isinstance(text, bool):
            return self._epoch(float(text))
        raw = " ".join(str(text).split()) if text is not None else ""
        if not raw:
            raise ValueError("no time")
        key = (raw, zone_text or "")
        found = self._cache.get(key)
        if found is None:
            found = self._read(raw, zone_text)
            if len(self._cache) >= CACHED_TEXTS:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _epoch(self, value: float) -> datetime:
        millis = self.epoch == "ms" or (self.epoch is None and value > 1e11)
        return datetime.fromtimestamp(value / 1000 if millis else value, UTC)

    def _read(self, raw: str, zone_text: str | None) -> datetime:
        if _DIGITS_ONLY.match(raw) and (self.epoch or len(raw.split(".")[0]) in (10, 13)):
            return self._epoch(float(raw))
        written = zone(zone_text, self.zones) if zone_text else None
        text = raw
        m = _TRAILING_ZONE.search(raw)
        if m:
            token = m.group(1)
            # a bare "-12" ends a date as often as it names a zone: an offset needs a time before it
            numeric = token[0] in "+-" and ":" not in raw[:m.start()]
            in_text = None if numeric else zone(token, self.zones)
            if in_text is not None:  # the zone written beside the time wins over everything
                written, text = in_text, raw[:m.start()].strip()
        local = self._local(text)
        if local.tzinfo is not None:  # ISO 8601 with its own offset
            return local.astimezone(UTC)
        return local.replace(tzinfo=written or self.default_zone).astimezone(UTC)

    def _local(self, text: str) -> datetime:
        if text[:4].isdigit() and len(text) >= 10 and text[4] == "-":
            try:
                return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                pass
        cleaned = _NOISE.sub(" ", text).strip()
        n = len(self.formats)
        for i in range(n):
            j = (self._last + i) % n
            try:
                found = _strptime(cleaned, self.formats[j])
            except ValueError:
                continue
            self._last = j
            return found
        raise ValueError(f"time {text[:40]!r} is in no known form (add it to date_formats)")


# Digits-only strptime directives, with the patterns CPython's _strptime uses for them: a format made of
# these and literal text is read by one compiled regex instead of strptime's per-call machinery.
_DIRECTIVES = {
    "Y": r"(?P<Y>\d\d\d\d)", "m": r"(?P<m>1[0-2]|0[1-9]|[1-9])", "d": r"(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
    "H": r"(?P<H>2[0-3]|[0-1]\d|\d)", "M": r"(?P<M>[0-5]\d|\d)", "S": r"(?P<S>6[0-1]|[0-5]\d|\d)",
}
_REGEX_CHARS = re.compile(r"([\\.^$*+?\(\){}\[\]|])")


@cache
def _format_regex(fmt: str) -> re.Pattern[str] | None:
    """`fmt` as CPython's strptime would compile it, when it uses only the directives above (else None)."""
    names = re.findall(r"%(.)", fmt)
    if not {"Y", "m", "d"} <= set(names) or any(n not in _DIRECTIVES for n in names) or len(set(names)) != len(names):
        return None
    pattern = re.sub(r"\s+", r"\\s+", _REGEX_CHARS.sub(r"\\\1", fmt))
    for name in names:
        pattern = pattern.replace("%" + name, _DIRECTIVES[name], 1)
    return re.compile(pattern, re.IGNORECASE)


def _strptime(text: str, fmt: str) -> datetime:
    """datetime.strptime(text, fmt): same answers, same ValueError cases, for the formats carriers use."""
    regex = _format_regex(fmt)
    if regex is None:
        return datetime.strptime(text, fmt)
    m = regex.match(text)
    if m is None or m.end() != len(text):  # strptime: "does not match" / "unconverted data remains"
        raise ValueError(f"time data {text!r} does not match format {fmt!r}")
    g = m.groupdict()
    return datetime(int(g["Y"]), int(g["m"]), int(g["d"]), int(g.get("H") or 0), int(g.get("M") or 0),
                    int(g.get("S") or 0))
