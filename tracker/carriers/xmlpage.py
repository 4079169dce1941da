"""The XML adapter (`adapter = "xml"`): XPath (or CSS) selectors from the carrier file over an XML answer,
namespaces dropped first so the file can write plain element names (USPS TrackResponse, Russian Post's
SOAP history, China EMS). Entities are never resolved and nothing is fetched from the network.

    [xml]
    rows = ["//TrackSummary", "//TrackDetail"]   # several row paths: joined, in document order
    time = ["EventDate", "EventTime"]            # a date and a time in separate elements
    description = "Event"
    city = "EventCity"
    page_number = "//TrackInfo/@ID"
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from tracker.carriers.base import Carrier, Page, ParseResult, register_adapter
from tracker.carriers.jsonpage import html_answer
from tracker.carriers.markup import MarkupRules, check_markup

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True,
                          remove_pis=True)


class XmlRules(MarkupRules):
    def __init__(self, carrier: Carrier):
        section: dict[str, Any] = carrier.settings.get("xml", {})
        super().__init__(carrier, section, css=False)
        self.captcha_bytes = [m.encode() for m in self.captcha] or [b"captcha"]


def compiled(carrier: Carrier) -> XmlRules:
    rules = carrier.cache.get("xml")
    if not isinstance(rules, XmlRules):
        rules = carrier.cache["xml"] = XmlRules(carrier)
    return rules


def check_xml(carrier: Carrier) -> list[str]:
    problems = check_markup(carrier, "xml", css=False)
    carrier.cache.pop("xml", None)
    return problems


def _drop_namespaces(root: Any) -> None:
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]
        for key in [k for k in el.attrib if k.startswith("{")]:
            el.attrib[key.split("}", 1)[1]] = el.attrib.pop(key)
    etree.cleanup_namespaces(root)


@register_adapter("xml", check=check_xml)
def parse_xml(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """Events from an XML answer, as the carrier's [xml] table describes it."""
    c = compiled(carrier)
    head = page.body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return html_answer(page, c.captcha_bytes)
    try:
        root = etree.fromstring(page.body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        return ParseResult("error", error=f"unreadable XML: {str(exc)[:200]}")
    if root is None:
        return ParseResult("error", error="empty XML answer")
    _drop_namespaces(root)
    text = " ".join(root.itertext())
    if c.captcha and c.markers(text, c.captcha):
        return ParseResult("captcha", error="the carrier answered with a captcha page")
    return c.parse(root.getroottree(), text, tracking_number)
