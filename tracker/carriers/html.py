"""The declarative HTML adapter (`adapter = "html"`): a carrier file says where the events are; no code per
carrier. BeautifulSoup builds the page with the lxml parser, only the part a SoupStrainer keeps (the
events' container), and CSS selectors from the file find rows and fields. `parser = "lxml"` builds lxml's
own tree instead (about three times cheaper a page; CSS or XPath selectors), for operators polling many
thousands of HTML pages an hour.

    [html]
    strainer = { name = "div", attrs = { class = "result" } }   # optional: only this part is built
    rows = "table.track-list tbody tr"
    time = "td.time"                  # or ["td.date", "td.time"]
    time_zone = "td.zone"             # optional: a zone cell ("CET", "GMT+8"); a zone inside the time text wins too
    description = "td.event"
    location = "td.place"             # optional: city, postcode, country, code
    page_number = "h2.item-number"    # optional: the number the page is about (checked against the one asked)
"""

from __future__ import annotations

import warnings
from typing import Any

import lxml.html
import soupsieve
from bs4 import BeautifulSoup, SoupStrainer

from tracker.carriers.base import Carrier, Page, ParseResult, register_adapter
from tracker.carriers.fields import FIELDS
from tracker.carriers.markup import MarkupRules, check_markup, is_xpath

_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_PARSER = lxml.html.HTMLParser(no_network=True)


def _looks_binary(body: bytes) -> bool:
    head = body[:4096]
    controls = len(head) - len(head.translate(None, _CONTROL))
    return b"\x00" in head or controls > len(head) // 20


def _parts(spec: Any) -> list[str]:
    return [str(p) for p in spec] if isinstance(spec, list) else [str(spec)]


def _text(node: Any) -> str:
    return " ".join(node.get_text(" ").split())


class HtmlRules(MarkupRules):
    def __init__(self, carrier: Carrier):
        section: dict[str, Any] = carrier.settings.get("html", {})
        super().__init__(carrier, section, css=True)
        self.parser = str(section.get("parser", "soup"))
        # a tracking page has a few hundred tags; a page with far more is hostile, and costly to build
        self.max_tags = int(section.get("max_tags", 20_000))
        # a page cut short in transit can still parse, with a half row at the end: insist on its end
        self.must_end_with = str(section.get("must_end_with", "</html>")).lower().encode()
        if self.parser == "soup":
            strainer = section.get("strainer")
            self.strainer = (SoupStrainer(strainer.get("name"), attrs=strainer.get("attrs", {}))
                             if isinstance(strainer, dict) else None)
            self.row_css = soupsieve.compile(", ".join(_parts(section["rows"])))
            self.field_css = {name: [soupsieve.compile(p) for p in _parts(section[name])]
                              for name in FIELDS if section.get(name)}
            number = section.get("page_number")
            self.number_css = soupsieve.compile(", ".join(_parts(number))) if number else None

    def build(self, text: str) -> Any:
        if self.parser == "soup":
            return BeautifulSoup(text, "lxml", parse_only=self.strainer)
        return lxml.html.document_fromstring(text, parser=_PARSER)

    def find_rows(self, root: Any) -> list[Any]:
        return self.row_css.select(root) if self.parser == "soup" else super().find_rows(root)

    def number_texts(self, root: Any) -> list[str]:
        if self.parser != "soup":
            return super().number_texts(root)
        return [_text(node) for node in self.number_css.select(root)] if self.number_css is not None else []

    def cells(self, root: Any, rows: list[Any]) -> list[dict[str, Any]]:
        if self.parser != "soup":
            return super().cells(root, rows)
        cells: list[dict[str, Any]] = []
        for row in rows:
            raw: dict[str, Any] = {}
            for name, parts in self.field_css.items():
                nodes = [css.select_one(row) for css in parts]
                if any(n is not None for n in nodes):
                    values = [_text(n) if n is not None else None for n in nodes]
                    raw[name] = values if len(parts) > 1 else values[0]
            cells.append(raw)
        return cells


def compiled(carrier: Carrier) -> HtmlRules:
    rules = carrier.cache.get("html")
    if not isinstance(rules, HtmlRules):
        rules = carrier.cache["html"] = HtmlRules(carrier)
    return rules


def check_html(carrier: Carrier) -> list[str]:
    section = carrier.settings.get("html", {})
    parser = section.get("parser", "soup")
    if parser not in ("soup", "lxml"):
        return [f"[html] parser must be 'soup' or 'lxml', not {parser!r}"]
    if parser == "soup":
        xpaths = [p for key in ("rows", "page_number", *FIELDS) if section.get(key)
                  for p in _parts(section[key]) if is_xpath(p)]
        if xpaths:
            return [f"[html] selector {xpaths[0]!r} is XPath: BeautifulSoup takes CSS (or set parser = 'lxml')"]
        strainer = section.get("strainer")
        if strainer is not None and not (isinstance(strainer, dict) and strainer.get("name")):
            return ["[html] strainer must be a table with a 'name' (and optional 'attrs')"]
    problems = check_markup(carrier, "html", css=True)
    if not problems:
        try:
            HtmlRules(carrier)
        except Exception as exc:  # a bad CSS selector
            problems = [f"bad [html] settings: {type(exc).__name__}: {exc}"]
    carrier.cache.pop("html", None)
    return problems


@register_adapter("html", check=check_html)
def parse_html(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """Events from an HTML tracking page, as the carrier's file describes it."""
    c = compiled(carrier)
    if _looks_binary(page.body):
        return ParseResult("error", error=f"binary answer ({page.content_type or 'no content type'}), not a page")
    text = page.body.decode(page.encoding or "utf-8", errors="replace")
    if c.captcha and c.markers(text, c.captcha):
        return ParseResult("captcha", error="the carrier answered with a captcha page")
    if c.must_end_with and c.must_end_with not in page.body[-1024:].lower():
        return ParseResult("error", error=f"page looks truncated (no {c.must_end_with.decode()} at its end)")
    tags = page.body.count(b"<")
    if tags > c.max_tags:
        return ParseResult("error", error=f"page has {tags} tags, over the {c.max_tags} a tracking page may have")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = c.build(text)
    except (lxml.etree.ParserError, ValueError) as exc:  # empty or unusable document
        return ParseResult("error", error=f"unreadable page: {exc}")
    return c.parse(root, text, tracking_number)
