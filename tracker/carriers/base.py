"""What every carrier adapter shares: the carrier's settings, a fetched page, and what a page says."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tracker.errors import BadInput

BASE_URL_ENV = "TRACKER_CARRIER_BASE_URL"

# What a page can say about a number. "ok", "not_found" and "no_information" (the carrier knows the number
# but has no scan yet, e.g. Cainiao's SELLER_PREPARING) are answers from the carrier; the rest are errors
# recorded on the shipment (captcha and blocked also feed the circuit breaker; "wrong_parcel" is a page
# about another parcel than the one asked for: its events are not stored, its page is kept).
OUTCOMES = ("ok", "not_found", "no_information", "captcha", "blocked", "wrong_content", "wrong_parcel", "error")
ANSWERS = frozenset({"ok", "not_found", "no_information"})
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
    page_number: str | None = None  # the tracking number the page itself names, where it names one
    notes: list[str] = field(default_factory=list)  # what was skipped on an otherwise good page (undated rows)


_SECRET = re.compile(r"\$\{([A-Z0-9_]+)\}")


def _fill(template: str) -> str:
    """`${NAME}` replaced by the environment variable NAME (a token or key the user keeps out of files)."""
    return _SECRET.sub(lambda m: os.environ.get(m.group(1), ""), template)


@dataclass(frozen=True)
class Request:
    """One HTTP request for one page (or one batch)."""

    method: str
    url: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


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

    def accepts(self, number: str) -> bool:
        """Whether the number may be asked of this carrier: its file's pattern matches, or the number is valid in
        one of the carrier's own formats (data/tracking_numbers), which a hand-written pattern may not cover."""
        if self.number_pattern.fullmatch(number or ""):
            return True
        from detectors.tracking_numbers import validate

        v = validate(number or "")
        return v.verdict == "valid" and v.best is not None and v.best.carrier == self.name

    def url_for(self, number: str, base_url: str | None = None) -> str:
        """The tracking URL: number checked against the carrier's pattern or formats, then URL-encoded."""
        if not self.accepts(number):
            raise BadInput(f"{number!r}: not a {self.name} number (pattern {self.number_pattern.pattern})")
        url = _fill(self.url).replace("{number}", quote(number, safe=""))
        base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or None
        return rebase_url(url, base_url) if base_url else url

    def host(self, base_url: str | None = None) -> str:
        """The host requests go to; `base_url=""` gives the carrier's own host, ignoring any stand-in."""
        return urlsplit(self.url_for_host(base_url)).netloc

    def url_for_host(self, base_url: str | None = None) -> str:
        """The URL template, rebased on `base_url` (default $TRACKER_CARRIER_BASE_URL)."""
        base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or None
        return rebase_url(self.url, base_url) if base_url else self.url

    @property
    def priority(self) -> int:
        """Which carrier claims a number that several carriers' patterns match: the highest priority."""
        return int(self.settings.get("priority", 0))

    @property
    def fallback(self) -> bool:
        """An aggregator: it claims the numbers no other carrier file claims."""
        return bool(self.settings.get("fallback", False))

    def secrets(self) -> list[str]:
        """The environment variables this carrier's requests need (`${NAME}` in the url or [request])."""
        spec = self.settings.get("request", {})
        texts = [self.url, str(spec.get("body", "")), *map(str, spec.get("headers", {}).values())]
        return sorted({m for t in texts for m in _SECRET.findall(t)})

    def redact(self, text: str) -> str:
        """`text` (a URL about to be stored) with the values of this carrier's secrets put back as ${NAME}."""
        for name in self.secrets():
            value = os.environ.get(name)
            if value:
                text = text.replace(value, "${" + name + "}").replace(quote(value, safe=""), "${" + name + "}")
        return text

    def missing_secrets(self) -> list[str]:
        return [name for name in self.secrets() if not os.environ.get(name)]

    def request(self, number: str, base_url: str | None = None) -> Request:
        """How to ask for `number`: GET the URL, or what [request] says (method, body, headers)."""
        url = self.url_for(number, base_url)
        spec = self.settings.get("request", {})
        body = spec.get("body")
        data = None
        if body is not None:  # the number is pattern-checked; escaped as a JSON string's inside anyway
            data = _fill(str(body)).replace("{number}", json.dumps(number)[1:-1]).encode()
        return Request(str(spec.get("method", "GET")).upper(), url, data, self.headers())

    def headers(self) -> dict[str, str]:
        """The [request] headers, `${NAME}` replaced by the environment variable's value."""
        return {str(k): _fill(str(v)) for k, v in self.settings.get("request", {}).get("headers", {}).items()}

    def names(self) -> tuple[str, ...]:
        """Every spelling the carrier column may hold for this carrier: its name, label and aliases as written
        and as the importer stores them (`carrier_key`: lower case, letters and digits only)."""
        from detectors.tracking_numbers import carrier_key

        out = [self.name, self.label, *self.aliases]
        keys = [carrier_key(n) for n in out]
        return tuple(dict.fromkeys(out + [n.lower() for n in out] + [n.upper() for n in out] + [k for k in keys if k]))


def rebase_url(url: str, base_url: str) -> str:
    """Replace scheme and host of `url` by those of `base_url` (the local carrier site, a mirror)."""
    base = urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise BadInput(f"{BASE_URL_ENV}={base_url!r}: not an http(s) URL with a host")
    parts = urlsplit(url)
    prefix = base.path.rstrip("/")
    return urlunsplit((base.scheme, base.netloc, prefix + parts.path, parts.query, ""))


# The one registry seam of adapters: built-ins and plugins register here (`tracker.carriers` imports the
# built-in modules and the `tracker.adapters` entry points).
Parser = Callable[[Carrier, Page, str], ParseResult]
Check = Callable[[Carrier], list[str]]
# (carrier, numbers, fetch, quota) -> {number: (result, page or None)}; `fetch(Request) -> Page` is polite
BatchPoller = Callable[..., dict[str, tuple[ParseResult, Page | None]]]
_ADAPTERS: dict[str, Parser] = {}
_BATCH: dict[str, BatchPoller] = {}
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


def register_batch_adapter(kind: str, check: Check | None = None) -> Callable[[BatchPoller], BatchPoller]:
    """Register `fn(carrier, numbers, fetch, quota) -> {number: (ParseResult, Page)}` as the adapter `kind`,
    for an API that answers many numbers per request; `fetch(Request) -> Page` goes through the host's
    politeness (token bucket, retries) and `quota.take(n)` grants up to n units of the carrier's daily quota."""

    def deco(fn: BatchPoller) -> BatchPoller:
        _BATCH[kind] = fn
        _ADAPTERS.setdefault(kind, _batch_only)
        if check:
            _CHECKS[kind] = check
        return fn

    return deco


def _batch_only(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    return ParseResult("error", error=f"{carrier.name} answers numbers in batches, not one page at a time")


def batch_adapter(carrier: Carrier) -> BatchPoller | None:
    return _BATCH.get(carrier.adapter)


def adapters() -> list[str]:
    return sorted(_ADAPTERS)
