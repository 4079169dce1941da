"""The generic JSON adapter (`adapter = "json"`): a carrier file names, as JMESPath expressions, where the
events are (one list or several, joined) and where each event's fields are. No code per carrier: Cainiao,
4PX, Yanwen, YunExpress and the posts' JSON APIs are all configurations of this adapter.

    [json]
    events = ["module[0].detailList"]          # each gives a list of events
    page_number = "module[0].mailNo"           # the number the page is about (checked against the one asked)
    last_mile_number = "module[0].copyRealMailNo || module[0].realMailNo"
    not_found = ["module[0].mailNoSource == 'EXTERNAL'"]       # truthy: the carrier has no record
    no_information = ["module[0].status == 'SELLER_PREPARING'"]  # truthy: known, no scan yet

    [json.event]                               # inside each event
    time = "timeStr"                           # or ["date", "time"]: parts joined
    time_zone = "timeZone"
    description = "desc || standerdDesc"
    code = "actionCode"
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from tracker.carriers.base import Carrier, Page, ParseResult, register_adapter
from tracker.carriers.fields import FIELDS, EventMaker, check_common, numbers_in, text

Getter = Callable[[Any], Any]


def getter(expression: str) -> Getter:
    """A compiled JMESPath expression as a function. Plain field chains ("group.nodeCode"), the common
    case, are read with dict lookups (the same answer, without the interpreter's per-call cost)."""
    compiled = jmespath.compile(expression)
    keys = _field_chain(compiled.parsed)
    if keys is None:
        return compiled.search
    if len(keys) == 1:
        key = keys[0]
        return lambda doc: doc.get(key) if isinstance(doc, dict) else None

    def chain(doc: Any) -> Any:
        for key in keys:
            if not isinstance(doc, dict):
                return None
            doc = doc.get(key)
        return doc

    return chain


def _field_chain(node: dict[str, Any]) -> list[str] | None:
    if node["type"] == "field":
        return [node["value"]]
    if node["type"] == "subexpression":
        out = []
        for child in node["children"]:
            keys = _field_chain(child)
            if keys is None:
                return None
            out += keys
        return out
    return None


def _getters(spec: Any) -> Getter | list[Getter] | None:
    if spec is None or spec == "":
        return None
    if isinstance(spec, list):
        return [getter(str(s)) for s in spec]
    return getter(str(spec))


def _listify(spec: Any) -> list[str]:
    return [str(s) for s in spec] if isinstance(spec, list) else ([str(spec)] if spec else [])


class JsonRules:
    """A carrier file's [json] table compiled once: the document-level paths and the per-event fields."""

    def __init__(self, carrier: Carrier, section: dict[str, Any]):
        self.events = [getter(p) for p in _listify(section.get("events", "events"))]
        self.page_number = _getters(section.get("page_number"))
        self.last_mile_number = _getters(section.get("last_mile_number"))
        self.not_found = [getter(p) for p in _listify(section.get("not_found"))]
        self.no_information = [getter(p) for p in _listify(section.get("no_information"))]
        self.captcha_markers = [m.lower().encode() for m in section.get("captcha_markers", ["captcha", "verify", "slide"])]
        per_event = section.get("event", {})
        self.fields = {f: _getters(per_event[f]) for f in (*FIELDS, "last_mile_number") if per_event.get(f)}
        self.maker = EventMaker(carrier, section)

    def number(self, doc: Any) -> str | None:
        """The tracking number the document names (its first token that looks like one)."""
        if self.page_number is None:
            return None
        value = self.page_number(doc) if callable(self.page_number) else next(
            (v for g in self.page_number if (v := g(doc))), None)
        found = numbers_in(text(value))
        return found[0] if found else None

    def parse(self, doc: Any, tracking_number: str) -> ParseResult:
        """What a decoded JSON document says about `tracking_number`."""
        items: list[Any] = []
        for events in self.events:
            found = events(doc)
            if found is None:
                continue
            if not isinstance(found, list):
                return ParseResult("error", error="JSON answer whose event list is not a list")
            items.extend(found)
        page_number = self.number(doc)
        if not items:
            if any(_truthy(g(doc)) for g in self.no_information):
                return ParseResult("no_information", page_number=page_number)
            if any(_truthy(g(doc)) for g in self.not_found) or not self.not_found:
                return ParseResult("not_found", page_number=page_number)
            return ParseResult("error", error="no events and no not-found notice in the answer",
                               page_number=page_number)
        result = ParseResult("ok", page_number=page_number)
        last_mile = None
        if self.last_mile_number is not None:
            value = self.last_mile_number(doc) if callable(self.last_mile_number) else next(
                (v for g in self.last_mile_number if (v := g(doc))), None)
            tokens = numbers_in(text(value))
            last_mile = tokens[-1] if tokens else None  # "PostNL 3SDFC0123456789": the number, not the label
        fields = self.fields.items()
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                return ParseResult("error", error="an event in the answer is not an object")
            raw = {f: ([g(item) for g in get] if isinstance(get, list) else get(item)) for f, get in fields}
            event = self.maker.make(tracking_number, raw, result, f"event {i + 1}")
            if event is not None:
                result.events.append(event)
                handed_to = numbers_in(text(raw.get("last_mile_number")))
                last_mile = last_mile or (handed_to[-1] if handed_to else None)
        if not result.events:
            return ParseResult("error", error=f"no event with a usable time ({len(items)} dropped)",
                               page_number=page_number, notes=result.notes)
        result.last_mile_number = last_mile
        return result


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", [], {}, 0)


def rules(carrier: Carrier) -> JsonRules:
    if "json" not in carrier.cache:
        carrier.cache["json"] = JsonRules(carrier, carrier.settings.get("json", {}))
    return carrier.cache["json"]


def looks_like_html(page: Page) -> bool:
    head = page.body[:512].lstrip().lower()
    return "html" in (page.content_type or "").lower() or head.startswith(b"<")


def html_answer(page: Page, markers: list[bytes]) -> ParseResult:
    """An HTML page where JSON was expected: a captcha, or some other page (both feed the breaker)."""
    captcha = any(m in page.body[:200_000].lower() for m in markers)
    return ParseResult("captcha" if captcha else "wrong_content",
                       error="HTML where JSON was expected" + (" (a captcha page)" if captcha else ""))


def check_json(carrier: Carrier) -> list[str]:
    section = carrier.settings.get("json", {})
    if not section.get("events"):
        return ["[json] needs 'events' (JMESPath to the list of events)"]
    if not section.get("event", {}).get("time"):
        return ["[json.event] needs 'time'"]
    try:
        rules(carrier)
    except JMESPathError as exc:
        return [f"[json] has a bad JMESPath expression: {exc}"]
    return check_common(carrier, section)


@register_adapter("json", check=check_json)
def parse_json(carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
    """Events from a JSON answer, as the carrier's [json] table describes it."""
    r = rules(carrier)
    if looks_like_html(page):
        return html_answer(page, r.captcha_markers)
    doc = json.loads(page.body.decode(page.encoding or "utf-8"))
    return r.parse(doc, tracking_number)
