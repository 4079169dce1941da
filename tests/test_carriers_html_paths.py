"""The HTML adapter's fast paths (hand-matched selectors, one-string cells, the namespace-free tree
builder) give exactly what the general paths (soupsieve, get_text, Beautiful Soup's own lxml builder) give."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import soupsieve
from bs4 import BeautifulSoup

from tracker.carriers import Page, load_carriers, parse_page
from tracker.carriers.base import Carrier
from tracker.carriers.html import _cell_text, _Selector, compiled, make_soup
from tracker.carriersite.journeys import make_journey
from tracker.carriersite.renderers import RENDERERS

NUMBERS = {"chinapost": "RR{:09d}CN", "yunexpress": "YT{:016d}"}
DESTS = [("Madrid", "28013", "ES"), ("Seoul", "04524", "KR"), ("São Paulo", "01310-100", "BR"), ("Austin", "78701", "US")]

# The same places on the page, written in forms the hand matcher leaves to soupsieve.
GENERAL_FORMS = {
    "chinapost": {"rows": "table.track-list > tbody > tr", "time": "td:is(.time)", "description": "tr > td.event",
                  "location": "td[class~=place]", "postcode": "td:is(.postcode)"},
    "yunexpress": {"rows": "div.track-list > div.track-item", "time": "span[class=track-date]",
                   "description": "div.track-info > span.track-status", "location": "span:is(.track-where)"},
}


@pytest.fixture(scope="module")
def carriers():
    return load_carriers()


def general_twin(carrier: Carrier) -> Carrier:
    settings = copy.deepcopy(carrier.settings)
    settings["html"].update(GENERAL_FORMS[carrier.name])
    return Carrier(name=carrier.name, label=carrier.label, adapter=carrier.adapter, url=carrier.url,
                   number_pattern=carrier.number_pattern, rate_per_second=carrier.rate_per_second,
                   settings=settings)


def pages(name: str, n: int = 40) -> list[tuple[str, Page]]:
    out = []
    for i in range(n):
        number = NUMBERS[name].format(i)
        start = datetime(2026, 8, 1, 3, 0, tzinfo=UTC) + timedelta(hours=7 * i)
        journey = make_journey(number, name, start, stages=3 + i % 13, dest=DESTS[i % len(DESTS)])
        content_type, body = RENDERERS[name](number, journey)
        out.append((number, Page("http://x/", 200, content_type, body, "utf-8")))
    return out


@pytest.mark.parametrize("name", ["chinapost", "yunexpress"])
def test_shipped_selectors_take_the_fast_path_and_the_general_path_gives_the_same_events(carriers, name):
    fast, general = carriers[name], general_twin(carriers[name])
    assert compiled(fast).rows.compiled is None  # hand-matched
    assert not compiled(fast).fields.compiled and compiled(fast).fields.hand_matched == len(GENERAL_FORMS[name]) - 1
    assert compiled(general).rows.compiled is not None  # soupsieve
    assert len(compiled(general).fields.compiled) == len(GENERAL_FORMS[name]) - 1
    total = 0
    for number, page in pages(name):
        a, b = parse_page(fast, page, number), parse_page(general, page, number)
        assert a.outcome == b.outcome == "ok", (a.error, b.error)
        assert a.events == b.events
        total += len(a.events)
    assert total > 100


HTML = """<html><body>
<div class="outer box"><table class="track-list wide"><tbody>
  <tr class="row"><td class="time">t1</td><td class="x  time">t2</td></tr>
  <tr><td><table class="track-list"><tbody><tr class="inner"><td class="time">t3</td></tr></tbody></table></td></tr>
</tbody></table></div>
<section><p class="note\tbig">a <b>bold</b> <!-- hidden --> word</p><span class="time">t4</span></section>
<div class="box"><div><span class="a b c">deep</span></div></div>
</body></html>"""

CHAINS = ["table.track-list tbody tr", "tr", "td.time", ".time", "TR", "div.box span.a.c", "div.outer td.time",
          ".box .a", "table.track-list table.track-list td", "section .time", "p.big", "p.note.big b",
          "div.nothing tr", "span.a.d", "table.wide tr.inner td"]


@pytest.mark.parametrize("css", CHAINS)
def test_hand_matcher_selects_what_soupsieve_selects(css):
    soup = make_soup(HTML, None)
    sel = _Selector(css)
    assert sel.compiled is None
    assert sel.select(soup) == soupsieve.select(css, soup)


@pytest.mark.parametrize("css", ["tr > td", "td:first-child", "td, th", "#main td", "[class] td", "* td", "td.-x"])
def test_other_selector_forms_go_to_soupsieve(css):
    assert _Selector(css).compiled is not None


def test_cell_text_is_get_text_with_spaces_squeezed():
    soup = make_soup(HTML + "<p class='s'>  two\n  lines </p><script>var x = 1;</script>", None)
    for el in soup.find_all(True):
        assert _cell_text(el) == " ".join(el.get_text(" ").split())


HOSTILE = [
    "<html><body><svg xmlns='http://www.w3.org/2000/svg'><rect width='1'/></svg><o:p>x</o:p>"
    "<p xml:lang='en' lang=en data-x=\"1\">é &amp; &nbsp;</p></body></html>",
    "<<<%%%>>> \ufffd ]]>{{{ not a page &&& </td></tr></table>" * 5,
    "<!DOCTYPE html><html><head><!-- c --><style>p{}</style></head><body><table><tr><td>1<td>2</table>"
    "<![CDATA[x]]><?pi data?><textarea> keep  </textarea><pre>\n pre </pre></body></html>",
    "<div>" * 300 + "x" + "</div>" * 300,
]


@pytest.mark.parametrize("name", ["chinapost", "yunexpress"])
def test_lean_tree_builder_builds_the_same_tree_as_beautiful_soups_own(carriers, name):
    strainer = compiled(carriers[name]).strainer
    texts = [p.body.decode() for _n, p in pages(name, 10)] + HOSTILE
    for text in texts:
        for parse_only in (strainer, None):
            lean, stock = make_soup(text, parse_only), make_soup(text, parse_only, lean=False)
            assert str(lean) == str(stock)
            assert [(t.name, t.attrs) for t in lean.find_all(True)] == [(t.name, t.attrs) for t in stock.find_all(True)]
    assert isinstance(make_soup(texts[0], strainer), BeautifulSoup)


def test_a_carrier_with_an_uppercase_multi_class_selector_still_reads_its_page(carriers):
    twin = general_twin(carriers["chinapost"])
    twin.settings["html"].update({"rows": "TABLE.track-list TBODY TR", "time": "TD.time", "description": "td.event",
                                  "location": "td.place", "postcode": "td.postcode"})
    assert compiled(twin).rows.compiled is None
    for number, page in pages("chinapost", 8):
        assert parse_page(twin, page, number).events == parse_page(carriers["chinapost"], page, number).events


FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%Y.%m.%dT%H:%M:%S",
           "%Y-%m-%d (%H:%M)", "%m/%d/%Y %I:%M %p", "%d %b %Y", "%Y-%m-%d %H:%M:%S%z", "%%Y %Y-%m-%d"]
TEXTS = ["2026-09-14 10:00:00", "2026-09-14 10:00", "2026-9-4 1:2:3", "2026-02-30 10:00:00", "2026-02-29 10:00",
         "2024-02-29 23:59:59", "2026-09-14 24:00:00", "2026-09-14 10:60", "2026-09-14 10:00:60", "2026-09-14 10:00:61",
         "2026-09-14  10:00:00", "2026-09-14 10:00:00 extra", "0000-01-01 00:00", "14/09/2026 10:00", "14/09/2026",
         "1/9/2026 7:05", "31/04/2026", "2026.09.14t10:00:00", "2026.09.14T10:00:00", "2026-09-14 (10:00)",
         "٢٠٢٦-٠٩-١٤ ١٠:٠٠:٠٠", "2026-13-01 10:00", "2026-00-10 10:00", "", "   ", "2026-09-14", "%Y 2026-09-14",
         "09/14/2026 10:00 PM", "14 Sep 2026", "2026-09-14 10:00:00+0800", "2026-09- 4 10:00"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_time_reading_gives_what_strptime_gives(fmt):
    from tracker.carriers.base import _format_regex, _strptime

    # the carriers' own formats take the compiled path; the others fall through to strptime itself
    assert (_format_regex(fmt) is not None) == (fmt in FORMATS[:6])
    for text in TEXTS:
        try:
            expected = datetime.strptime(text, fmt)
        except ValueError:
            with pytest.raises(ValueError):
                _strptime(text, fmt)
        else:
            assert _strptime(text, fmt) == expected, (text, fmt)


def test_cainiao_status_tables_give_what_fnmatch_gives(carriers):
    import fnmatch

    from tracker.carriers.cainiao import refine, status_for

    carrier = carriers["cainiao"]
    table = carrier.settings["statuses"]

    def reference(code):
        if code in table:
            return table[code]
        for pattern in sorted((p for p in table if "*" in p), key=len, reverse=True):
            if fnmatch.fnmatchcase(code, pattern):
                return table[pattern]
        return None

    codes = [*table, "CC_EX_START", "CC_EXX", "CC_", "PU_PICKUP_SUCCESS", "pu_pickup", "XX_MYSTERY", "", "LH_", "SC_*",
             "GTMS_SIGNED", "GTMS_SIGNED_X"]
    assert [status_for(carrier, c) for c in codes] == [reference(c) for c in codes]
    assert refine(carrier, "Parcel READY FOR PICKUP at locker", "in_transit") == "available_for_pickup"
    assert refine(carrier, "Arrived", "in_transit") == "in_transit"
