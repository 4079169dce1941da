"""The declarative HTML adapter: a carrier file says where the events are; no code per carrier.

BeautifulSoup on lxml, restricted by a SoupStrainer to the parts of the page named in the file, so a
page's scripts, ads and navigation are never built into a tree.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from typing import Any

import soupsieve
from bs4 import BeautifulSoup, SoupStrainer

from tracker.carriers import register_adapter
from tracker.carriers.base import Carrier, Page, ParseResult, parse_local_time, parse_offset
from tracker.events import NORMALISED_STATUSES
from tracker.timeutil import to_db

_FIELDS = ("time", "description", "location", "city", "postcode", "country", "code")


def _text(page: Page) -> str:
    return page.body.decode(page.encoding or "utf-8", errors="replace")


_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


def _looks_binary(body: bytes) -> bool:
    head = body[:4096]
    controls = len(head) - len(head.translate(None, _CONTROL))
    return b"\x00" in head or controls > len(head) // 20


_SIMPLE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)?(?:\.([A-Za-z_][\w-]*))?$")


class _Selector:
    """A CSS selector; the common `tag.class` form is matched by hand, far cheaper than soupsieve."""

    def __init__(self, css: str):
        m = _SIMPLE.match(css.strip())
        self.simple = (m.group(1), m.group(2)) if m and (m.group(1) or m.group(2)) else None
        self.compiled = None if self.simple else soupsieve.compile(css)

    def matches(self, el: Any) -> bool:
        name, cls = self.simple  # type: ignore[misc]
        if name is not None and el.name != name:
            return False
        # class is kept as the page's string (multi_valued_attributes=None: cheaper to build)
        return cls is None or cls in (el.get("class") or "").split()


def _find_fields(row: Any, selectors: dict[str, _Selector]) -> dict[str, Any]:
    """The first element of the row matching each field's selector, in one walk over the row."""
    found = {f: sel.compiled.select_one(row) for f, sel in selectors.items() if sel.compiled is not None}
    simple = [(f, sel) for f, sel in selectors.items() if sel.compiled is None]
    for el in row.descendants:
        if el.name is None:  # text
            continue
        for f, sel in simple:
            if f not in found and sel.matches(el):
                found[f] = el
    return found


class _Compiled:
    """A carrier file's [html], [location] and [words] tables, checked and compiled once."""

    def __init__(self, carrier: Carrier):
        s = carrier.settings
        html: dict[str, Any] = s.get("html", {})
        # selectors compiled once per carrier, not once per row
        self.rows = soupsieve.compile(html["rows"])
        self.selectors = {f: _Selector(html[f]) for f in _FIELDS if html.get(f)}
        self.date_formats: list[str] = list(html.get("date_formats", ["%Y-%m-%d %H:%M:%S"]))
        self.tz = parse_offset(html.get("utc_offset"))
        strainer = html.get("strainer")
        self.strainer = SoupStrainer(**strainer) if strainer else None
        # a tracking page has a few hundred tags; a page with far more is hostile, and costly to build
        self.max_tags = int(html.get("max_tags", 20_000))
        # a page cut short in transit can still parse, with a half row at the end: insist on its end
        self.must_end_with = str(html.get("must_end_with", "</html>")).lower().encode()
        self.not_found = [m.lower() for m in html.get("not_found_markers", [])]
        self.captcha = [m.lower() for m in html.get("captcha_markers", [])]
        location = s.get("location", {})
        self.location = re.compile(location["pattern"]) if location.get("pattern") else None
        self.country_format = location.get("country_format", "alpha2")
        self.words: dict[str, tuple[str, str | None]] = {}
        for word, value in s.get("words", {}).items():
            if isinstance(value, dict):
                self.words[word.lower()] = (value["status"], value.get("code"))
            else:
                self.words[word.lower()] = (str(value), None)
        # longest phrases first, so "Out for delivery with courier" beats "delivery"
        self.by_length = sorted(self.words, key=len, reverse=True)

    def status_of(self, description: str) -> tuple[str, str | None] | None:
        key = " ".join(description.split()).lower()
        if key in self.words:
            return self.words[key]
        for word in self.by_length:
            if word in key:
                return self.words[word]
        return None


def compiled(carrier: Carrier) -> _Compiled:
    if "html" not in carrier.cache:
        carrier.cache["html"] = _Compiled(carrier)
    return carrier.cache["html"]


@cache
def country_code(name: str) -> str | None:
    """A country name or code as printed by a carrier -> ISO alpha-2 (None when unknown)."""
    import pycountry

    name = name.strip()
    if len(name) == 2 and name.isalpha():
        return name.upper()
    try:
        return pycountry.countries.lookup(name).alpha_2
    except LookupError:
        try:
            return pycountry.countries.search_fuzzy(name)[0].alpha_2
        except LookupError:
            return None


def _markers(text: str, markers: list[str]) -> bool:
    lowered = text.lower()
    return any(m in lowered for m in markers)


def check_html(carrier: Carrier) -> list[str]:
    """Problems of a carrier file's [html], [location] and [words] tables."""
    html = carrier.settings.get("html", {})
    problems = [f"[html] needs '{key}'" for key in ("rows", "time") if not html.get(key)]
    if problems:
        return problems
    try:
        c = compiled(carrier)
    except Exception as exc:  # a bad selector, pattern, offset or strainer
        return [f"bad [html] or [location] settings: {type(exc).__name__}: {exc}"]
    return [f"[words] {word!r}: {status!r} is not a normalised status"
            for word, (status, _code) in c.words.items() if status not in NORMALISED_STATUSES]


@register_adapter("html", check=check_html)
def parse_html(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """Events from an HTML tracking page, as the carrier's file describes it."""
    c = compiled(carrier)
    if _looks_binary(page.body):
        return ParseResult("error", error=f"binary answer ({page.content_type or 'no content type'}), not a page")
    text = _text(page)
    if c.captcha and _markers(text, c.captcha):
        return ParseResult("captcha", error="the carrier answered with a captcha page")
    if c.must_end_with and c.must_end_with not in page.body[-1024:].lower():
        return ParseResult("error", error=f"page looks truncated (no {c.must_end_with.decode()} at its end)")
    tags = page.body.count(b"<")
    if tags > c.max_tags:
        return ParseResult("error", error=f"page has {tags} tags, over the {c.max_tags} a tracking page may have")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4 warns about odd markup; a bad page is handled below
        # already decoded (no charset sniffing); attributes kept as strings (no splitting of every class)
        soup = BeautifulSoup(text, "lxml", parse_only=c.strainer, multi_valued_attributes=None)
    rows = c.rows.select(soup)
    if not rows:
        if c.not_found and _markers(text, c.not_found):
            return ParseResult("not_found")
        return ParseResult("error", error="no events and no not-found notice on the page (layout changed?)")
    result = ParseResult("ok")
    for i, row in enumerate(rows):
        cells = {field: " ".join(el.get_text(" ").split()) if el is not None else ""
                 for field, el in _find_fields(row, c.selectors).items()}
        if not cells.get("time"):
            return ParseResult("error", error=f"event row {i + 1} has no time")
        try:
            occurred = parse_local_time(cells["time"], c.date_formats, c.tz)
        except ValueError as exc:
            return ParseResult("error", error=f"event row {i + 1}: {exc}")
        description = cells.get("description", "")
        mapped = c.status_of(description)
        if mapped is None:
            status, code = "unknown", cells.get("code") or None
            result.unknown_codes.append(description[:60])
        else:
            status, code = mapped[0], cells.get("code") or mapped[1]
        location = cells.get("location") or None
        city, postcode, country = cells.get("city") or None, cells.get("postcode") or None, cells.get("country") or None
        if location and c.location:
            m = c.location.match(location)
            if m:
                parts = m.groupdict()
                city = city or (parts.get("city") or "").strip() or None
                postcode = postcode or (parts.get("postcode") or "").strip() or None
                country = country or (parts.get("country") or "").strip() or None
        if country:
            country = country_code(country) if c.country_format == "name" or len(country) != 2 else country.upper()
        result.events.append({
            "tracking_number": tracking_number,
            "occurred_at": to_db(occurred),
            "status": status,
            "description": description,
            "location": location,
            "city": city,
            "postcode": postcode,
            "country": country,
            "carrier": carrier.name,
            "raw_code": code,
        })
    return result
