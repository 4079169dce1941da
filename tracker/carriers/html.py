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
from bs4 import BeautifulSoup, NavigableString, SoupStrainer, Tag
from bs4.builder import LXMLTreeBuilder

from tracker.carriers.base import Carrier, Page, ParseResult, parse_local_time, parse_offset, register_adapter
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


# A compound of the selectors the carrier files use: an optional tag name, then any number of classes.
_COMPOUND = re.compile(r"^([A-Za-z][A-Za-z0-9]*)?((?:\.[A-Za-z_][\w-]*)*)$")
_NOT_WS = re.compile("[^ \t\r\n\f]+")  # how soupsieve splits a class attribute


def _chain(css: str) -> list[tuple[str | None, tuple[str, ...]]] | None:
    """`table.track-list tbody tr` -> [("table", ("track-list",)), ("tbody", ()), ("tr", ())]; None for any
    other form (child or sibling combinators, attributes, ids, pseudo-classes, lists, `*`)."""
    chain = []
    for part in css.split():
        m = _COMPOUND.match(part)
        if not m or not (m.group(1) or m.group(2)):
            return None
        chain.append((m.group(1).lower() if m.group(1) else None, tuple(m.group(2).split(".")[1:])))
    return chain or None


def _has(el: Any, name: str | None, classes: tuple[str, ...]) -> bool:
    if name is not None and el.name != name:
        return False
    if classes:
        # class is kept as the page's string (multi_valued_attributes=None: cheaper to build)
        value = el.attrs.get("class")
        have = _NOT_WS.findall(value) if isinstance(value, str) else (value or ())
        return all(c in have for c in classes)
    return True


class _Selector:
    """A CSS selector. Chains of `tag.class` compounds joined by spaces (descendant combinators), the form
    every shipped carrier file uses, are matched by hand: far cheaper than soupsieve, and the same answer
    (tests compare both on the same pages). Any other selector goes to soupsieve."""

    def __init__(self, css: str):
        self.css = css
        self.chain = _chain(css)
        self.compiled = None if self.chain is not None else soupsieve.compile(css)
        # the compound the element itself must match, then the others from the nearest ancestor up
        self.name, self.classes = self.chain[-1] if self.chain else (None, ())
        self.ancestors = self.chain[-2::-1] if self.chain else []

    def matches(self, el: Any) -> bool:
        """Whether `el` matches the chain (only for hand-matched selectors)."""
        return _has(el, self.name, self.classes) and self.ancestors_match(el)

    def ancestors_match(self, el: Any) -> bool:
        """Whether `el`'s ancestors match the chain's earlier compounds, nearest first.

        Descendant combinators only, so taking the nearest ancestor matching each compound is exact."""
        for name, classes in self.ancestors:
            el = el.parent
            while el is not None and not _has(el, name, classes):
                el = el.parent
            if el is None:
                return False
        return True

    def select(self, scope: Any) -> list[Any]:
        """Every matching element below `scope`, in document order (as soupsieve's `select`)."""
        if self.compiled is not None:
            return self.compiled.select(scope)
        return [el for el in scope.descendants if el.name is not None and self.matches(el)]


class _Fields:
    """A row's field selectors; the hand-matched ones are found in one walk over the row, each element
    tried only against the fields whose last compound names its tag."""

    def __init__(self, selectors: dict[str, _Selector]):
        self.compiled = [(f, sel.compiled) for f, sel in selectors.items() if sel.compiled is not None]
        self.by_tag: dict[str | None, list[tuple[str, _Selector]]] = {}
        for f, sel in selectors.items():
            if sel.chain is not None:
                self.by_tag.setdefault(sel.chain[-1][0], []).append((f, sel))
        self.any_tag = self.by_tag.pop(None, [])  # class-only selectors: tried on every element
        self.hand_matched = sum(map(len, self.by_tag.values())) + len(self.any_tag)

    def find(self, row: Any) -> dict[str, Any]:
        """The first element below the row matching each field's selector (fields with none are left out)."""
        found = {f: compiled.select_one(row) for f, compiled in self.compiled}
        left = self.hand_matched
        by_tag, any_tag = self.by_tag, self.any_tag
        for el in row.descendants:
            if not left:
                break
            name = el.name
            if name is None:  # text
                continue
            have = None
            for group in (by_tag.get(name), any_tag):
                for f, sel in group or ():
                    if f in found:
                        continue
                    if sel.classes:
                        if have is None:  # the element's classes, split once for all its candidate fields
                            value = el.attrs.get("class")
                            have = _NOT_WS.findall(value) if isinstance(value, str) else (value or ())
                        if not all(c in have for c in sel.classes):
                            continue
                    if sel.ancestors_match(el):
                        found[f] = el
                        left -= 1
        return found


def _cell_text(el: Any) -> str:
    """The element's text with runs of white space made one space (as `get_text(" ")`, then split/join)."""
    contents = el.contents
    # the usual cell, one plain string in an ordinary tag: get_text(" ") would return that very string
    if (len(contents) == 1 and type(contents[0]) is NavigableString
            and el.interesting_string_types is Tag.MAIN_CONTENT_STRING_TYPES):
        return " ".join(contents[0].split())
    return " ".join(el.get_text(" ").split())


class _HtmlBuilder(LXMLTreeBuilder):
    """Beautiful Soup's lxml HTML tree builder, minus the namespace bookkeeping it does for every tag.

    lxml's HTML parser reports no namespaces, so for it that work only copies each tag's attributes
    twice; skipping it builds the very same tree (tests compare the two) in about a fifth less time.
    Anything namespaced still takes Beautiful Soup's own path.
    """

    def start(self, tag: Any, attrib: Any, nsmap: Any = None) -> None:
        if nsmap or len(self.nsmaps) > 1 or tag[:1] == "{":
            return super().start(tag, attrib, nsmap or {})
        self.soup.handle_starttag(tag, None, None, dict(attrib),  # type: ignore[union-attr]
                                  namespaces=self.active_namespace_prefixes[-1])
        return None

    def end(self, tag: Any) -> None:
        if len(self.nsmaps) > 1 or tag[:1] == "{":
            return super().end(tag)
        self.soup.endData()  # type: ignore[union-attr]
        self.soup.handle_endtag(tag, None)  # type: ignore[union-attr]
        return None


def make_soup(text: str, strainer: SoupStrainer | None, *, lean: bool = True) -> BeautifulSoup:
    """BeautifulSoup on lxml, restricted to `strainer`; class attributes kept as the page's strings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4 warns about odd markup; a bad page is handled by the caller
        if lean:
            return BeautifulSoup(text, builder=_HtmlBuilder(multi_valued_attributes=None), parse_only=strainer)
        return BeautifulSoup(text, "lxml", parse_only=strainer, multi_valued_attributes=None)


class _Compiled:
    """A carrier file's [html], [location] and [words] tables, checked and compiled once."""

    def __init__(self, carrier: Carrier):
        s = carrier.settings
        html: dict[str, Any] = s.get("html", {})
        # selectors compiled once per carrier, not once per row
        self.rows = _Selector(html["rows"])
        self.fields = _Fields({f: _Selector(html[f]) for f in _FIELDS if html.get(f)})
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
    # already decoded (no charset sniffing); attributes kept as strings (no splitting of every class)
    soup = make_soup(text, c.strainer)
    rows = c.rows.select(soup)
    if not rows:
        if c.not_found and _markers(text, c.not_found):
            return ParseResult("not_found")
        return ParseResult("error", error="no events and no not-found notice on the page (layout changed?)")
    result = ParseResult("ok")
    for i, row in enumerate(rows):
        cells = {field: _cell_text(el) if el is not None else ""
                 for field, el in c.fields.find(row).items()}
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
