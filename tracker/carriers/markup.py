"""Rows and fields of a marked-up page (HTML or XML), found with lxml: the machinery the `html` and `xml`
adapters share. Selectors are CSS (translated to XPath once, by cssselect) or XPath when they start with
"/", "./" or "(". A field may list several selectors whose texts are joined (a date and a time in
separate elements: `time = ["td.date", "td.time"]`).

Fields are found per page, not per row: one XPath per field over all rows at once, each hit then given
to the row it is in (the first hit per row wins). That keeps a page's cost near a bare lxml parse.
"""

from __future__ import annotations

from typing import Any

from cssselect import HTMLTranslator
from lxml import etree

from tracker.carriers.base import Carrier, ParseResult
from tracker.carriers.fields import FIELDS, EventMaker, check_common, normalise_number, numbers_in

_CSS = HTMLTranslator()


def is_xpath(selector: str) -> bool:
    return selector.startswith(("/", "./", "(", "descendant", "ancestor", "@"))


def to_xpath(selector: str, *, css: bool) -> str:
    """A selector as an XPath relative to its context ('descendant::…' for CSS)."""
    if is_xpath(selector) or not css:
        return selector
    return _CSS.css_to_xpath(selector, prefix="descendant::")


def _joined(xpaths: list[str]) -> str:
    return " | ".join(f"({x})" for x in xpaths) if len(xpaths) > 1 else xpaths[0]


def node_text(node: Any) -> str:
    """An element's text (its descendants' strings joined by spaces) or an attribute's value, on one line."""
    if isinstance(node, str):  # an attribute or text() result
        return " ".join(node.split())
    return " ".join(" ".join(node.itertext()).split())


class MarkupRules:
    """A carrier file's [html] or [xml] table, compiled once."""

    def __init__(self, carrier: Carrier, section: dict[str, Any], *, css: bool):
        rows = section["rows"]
        self.row_xpaths = [to_xpath(r, css=css) for r in (rows if isinstance(rows, list) else [rows])]
        self.rows = etree.XPath(_joined([f"//{x[len('descendant::'):]}" if x.startswith("descendant::") else x
                                         for x in self.row_xpaths]))
        # per field: one XPath per part, relative to the rows; parts are joined (date + time)
        self.fields: dict[str, list[etree.XPath]] = {}
        for name in FIELDS:
            spec = section.get(name)
            if not spec:
                continue
            parts = spec if isinstance(spec, list) else [spec]
            self.fields[name] = [self._over_rows(to_xpath(str(p), css=css)) for p in parts]
        number = section.get("page_number")
        self.page_number = etree.XPath(_joined([_absolute(to_xpath(str(p), css=css)) for p in (
            number if isinstance(number, list) else [number])])) if number else None
        self.not_found = [m.lower() for m in section.get("not_found_markers", [])]
        self.no_information = [m.lower() for m in section.get("no_information_markers", [])]
        self.captcha = [m.lower() for m in section.get("captcha_markers", [])]
        self.maker = EventMaker(carrier, section)
        self.carrier = carrier

    def _over_rows(self, field: str) -> etree.XPath:
        """The field's elements under every row at once: '(rows)/field'."""
        field = field[2:] if field.startswith("./") else field
        rows = _joined([f"//{x[len('descendant::'):]}" if x.startswith("descendant::") else x
                        for x in self.row_xpaths])
        return etree.XPath(f"({rows})/{field}")

    def markers(self, text: str, which: list[str]) -> bool:
        lowered = text.lower()
        return any(m in lowered for m in which)

    def number_texts(self, root: Any) -> list[str]:
        """The texts of the elements naming the page's own tracking number."""
        return [node_text(node) for node in self.page_number(root)] if self.page_number is not None else []

    def number(self, root: Any, tracking_number: str) -> str | None:
        """The tracking number the page names: the asked one if it is among its tokens, else the first."""
        texts = self.number_texts(root)
        if not texts:
            return None
        tokens = [t for part in texts for t in numbers_in(part)]
        if normalise_number(tracking_number) in tokens:
            return normalise_number(tracking_number)
        pattern = self.carrier.number_pattern
        return next((t for t in tokens if pattern.fullmatch(t)), tokens[0] if tokens else None)

    def find_rows(self, root: Any) -> list[Any]:
        return self.rows(root)

    def cells(self, root: Any, rows: list[Any]) -> list[dict[str, Any]]:
        """Per row, its fields' texts (a list of texts for a field of several parts)."""
        index = {row: i for i, row in enumerate(rows)}
        cells: list[dict[str, Any]] = [{} for _ in rows]
        for name, parts in self.fields.items():
            found: list[list[str | None]] = [[None] * len(parts) for _ in rows]
            for p, xpath in enumerate(parts):
                for node in xpath(root):
                    i = _row_of(node, index)
                    if i is not None and found[i][p] is None:
                        found[i][p] = node_text(node)
            for i, values in enumerate(found):
                if any(v is not None for v in values):
                    cells[i][name] = values if len(parts) > 1 else values[0]
        return cells

    def parse(self, root: Any, text: str, tracking_number: str) -> ParseResult:
        """Events from a parsed page (`text` is the page's text, for the markers)."""
        rows = self.find_rows(root)
        page_number = self.number(root, tracking_number)
        if not rows:
            if self.no_information and self.markers(text, self.no_information):
                return ParseResult("no_information", page_number=page_number)
            if self.not_found and self.markers(text, self.not_found):
                return ParseResult("not_found", page_number=page_number)
            return ParseResult("error", error="no events and no not-found notice on the page (layout changed?)",
                               page_number=page_number)
        cells = self.cells(root, rows)
        result = ParseResult("ok", page_number=page_number)
        for i, raw in enumerate(cells):
            event = self.maker.make(tracking_number, raw, result, f"event row {i + 1}")
            if event is not None:
                result.events.append(event)
        if not result.events:
            return ParseResult("error", error=f"no event row with a usable time ({len(rows)} dropped)",
                               page_number=page_number, notes=result.notes)
        return result


def _absolute(xpath: str) -> str:
    return f"//{xpath[len('descendant::'):]}" if xpath.startswith("descendant::") else xpath


def _row_of(node: Any, index: dict[Any, int]) -> int | None:
    if isinstance(node, str):  # an attribute or text(): its element
        node = getattr(node, "getparent", lambda: None)()
        if node is None:
            return None
    i = index.get(node)
    if i is not None:
        return i
    for parent in node.iterancestors():
        i = index.get(parent)
        if i is not None:
            return i
    return None


def check_markup(carrier: Carrier, table: str, *, css: bool) -> list[str]:
    """Problems of a carrier file's [html] or [xml] table."""
    section = carrier.settings.get(table, {})
    problems = [f"[{table}] needs '{key}'" for key in ("rows", "time") if not section.get(key)]
    if problems:
        return problems
    try:
        carrier.cache[table] = MarkupRules(carrier, section, css=css)
    except Exception as exc:  # a bad selector, pattern, zone
        return [f"bad [{table}] settings: {type(exc).__name__}: {exc}"]
    return check_common(carrier, section)
