"""What every carrier adapter shares: the carrier's settings, a fetched page, and what a page says."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tracker.errors import BadInput

BASE_URL_ENV = "TRACKER_CARRIER_BASE_URL"

# What a page can say about a number. Only "ok" and "not_found" are answers from the carrier;
# the rest are errors recorded on the shipment (captcha and blocked also feed the circuit breaker).
OUTCOMES = ("ok", "not_found", "captcha", "blocked", "wrong_content", "error")
BREAKER_OUTCOMES = frozenset({"captcha", "blocked", "wrong_content"})


@dataclass
class Page:
    """One fetched answer, body already capped in size."""

    url: str
    status: int
    content_type: str
    body: bytes
    encoding: str | None = None


@dataclass
class ParseResult:
    outcome: str  # one of OUTCOMES
    events: list[dict[str, Any]] = field(default_factory=list)
    last_mile_number: str | None = None
    error: str | None = None
    unknown_codes: list[str] = field(default_factory=list)


@dataclass
class Carrier:
    """A carrier as configured by its file in data/carriers/."""

    name: str
    label: str
    adapter: str
    url: str
    number_pattern: re.Pattern[str]
    rate_per_second: float
    burst: int = 1
    aliases: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # adapters' compiled settings

    def url_for(self, number: str, base_url: str | None = None) -> str:
        """The tracking URL: number checked against the carrier's pattern, then URL-encoded."""
        if not self.number_pattern.fullmatch(number or ""):
            raise BadInput(f"{number!r}: not a {self.name} number (pattern {self.number_pattern.pattern})")
        url = self.url.replace("{number}", quote(number, safe=""))
        base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or None
        return rebase_url(url, base_url) if base_url else url

    def host(self, base_url: str | None = None) -> str:
        """The host requests go to; `base_url=""` gives the carrier's own host, ignoring any stand-in."""
        return urlsplit(self.url_for_host(base_url)).netloc

    def url_for_host(self, base_url: str | None = None) -> str:
        """The URL template, rebased on `base_url` (default $TRACKER_CARRIER_BASE_URL)."""
        base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or None
        return rebase_url(self.url, base_url) if base_url else self.url

    def names(self) -> tuple[str, ...]:
        """Every spelling the carrier column may hold for this carrier."""
        out = [self.name, *self.aliases]
        return tuple(dict.fromkeys(out + [n.lower() for n in out] + [n.upper() for n in out]))


def rebase_url(url: str, base_url: str) -> str:
    """Replace scheme and host of `url` by those of `base_url` (the local carrier site, a mirror)."""
    base = urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise BadInput(f"{BASE_URL_ENV}={base_url!r}: not an http(s) URL with a host")
    parts = urlsplit(url)
    prefix = base.path.rstrip("/")
    return urlunsplit((base.scheme, base.netloc, prefix + parts.path, parts.query, ""))


_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def parse_offset(text: str | None) -> timezone:
    """'+08:00', 'GMT+8', 'UTC-5', 'Z' -> a fixed time zone (UTC when empty)."""
    if not text or text.strip().upper() in ("Z", "UTC", "GMT"):
        return UTC
    m = _OFFSET.match(text.strip())
    if not m:
        raise ValueError(f"not a UTC offset: {text!r}")
    sign = -1 if m.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))


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


def parse_local_time(text: str, formats: list[str], tz: timezone) -> datetime:
    text = " ".join(text.split())
    for fmt in formats:
        try:
            return _strptime(text, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise ValueError(f"time {text[:40]!r} matches none of {formats}")


# The one registry seam of adapters (`tracker.carriers` loads the built-in ones, which register here).
Parser = Callable[[Carrier, Page, str], ParseResult]
Check = Callable[[Carrier], list[str]]
_ADAPTERS: dict[str, Parser] = {}
_CHECKS: dict[str, Check] = {}


def register_adapter(kind: str, check: Check | None = None) -> Callable[[Parser], Parser]:
    """Register `fn(carrier, page, tracking_number) -> ParseResult` as the adapter named `kind`.

    `check(carrier)` returns the problems of a carrier file's adapter settings (found when it is loaded).
    """

    def deco(fn: Parser) -> Parser:
        _ADAPTERS[kind] = fn
        if check:
            _CHECKS[kind] = check
        return fn

    return deco


def adapters() -> list[str]:
    return sorted(_ADAPTERS)
