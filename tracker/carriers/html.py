"""The declarative HTML adapter (`adapter = "html"`): a carrier file says where the events are; no code per
carrier. lxml's HTML parser builds the page; CSS selectors (or XPath) from the file find rows and fields.

    [html]
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

from tracker.carriers import register_adapter
from tracker.carriers.base import Carrier, Page, ParseResult
from tracker.carriers.markup import MarkupRules, check_markup

_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_PARSER = lxml.html.HTMLParser(no_network=True)


def _looks_binary(body: bytes) -> bool:
    head = body[:4096]
    controls = len(head) - len(head.translate(None, _CONTROL))
    return b"\x00" in head or controls > len(head) // 20


class HtmlRules(MarkupRules):
    def __init__(self, carrier: Carrier):
        section: dict[str, Any] = carrier.settings.get("html", {})
        super().__init__(carrier, section, css=True)
        # a tracking page has a few hundred tags; a page with far more is hostile, and costly to build
        self.max_tags = int(section.get("max_tags", 20_000))
        # a page cut short in transit can still parse, with a half row at the end: insist on its end
        self.must_end_with = str(section.get("must_end_with", "</html>")).lower().encode()


def compiled(carrier: Carrier) -> HtmlRules:
    rules = carrier.cache.get("html")
    if not isinstance(rules, HtmlRules):
        rules = carrier.cache["html"] = HtmlRules(carrier)
    return rules


def check_html(carrier: Carrier) -> list[str]:
    problems = check_markup(carrier, "html", css=True)
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
            root = lxml.html.document_fromstring(text, parser=_PARSER)
    except (lxml.etree.ParserError, ValueError) as exc:  # empty or unusable document
        return ParseResult("error", error=f"unreadable page: {exc}")
    return c.parse(root, text, tracking_number)
