"""The html adapter's two tree builders: BeautifulSoup on lxml with a SoupStrainer (the default) and lxml's own
tree (`parser = "lxml"`) read the same events from the same pages; the strainer really limits what is read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tracker.carriers import load_carriers, parse_page
from tracker.carriers.base import Page
from tracker.carriers.html import check_html
from tracker.carriersite.renderers import render_chinapost
from tracker.errors import BadInput

CARRIERS = load_carriers()


def _with_html(carrier, **changes):
    html = {**carrier.settings["html"], **changes}
    return dataclasses.replace(carrier, cache={}, settings={**carrier.settings, "html": html})


def _events(n: int) -> list[dict]:
    t0 = datetime(2026, 9, 1, 3, tzinfo=UTC)
    stages = [("SC_INBOUND_SUCCESS", "in_transit", "Shenzhen", "CN", "518000"),
              ("CC_EX_START", "in_transit", "Shenzhen", "CN", ""),
              ("GTMS_DO_ARRIVE", "in_transit", "Madrid", "ES", "28013"),
              ("GTMS_SIGNED", "delivered", "Madrid", "ES", "28013")]
    return [{"occurred_at": (t0 + timedelta(hours=29 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "raw_code": code,
             "status": status, "description": "", "city": city, "country": country, "postcode": postcode}
            for i, (code, status, city, country, postcode) in enumerate(stages[i % 4] for i in range(n))]


@pytest.mark.parametrize("n", [1, 4, 17])
def test_both_builders_read_the_same_events(n):
    content_type, body = render_chinapost("RR123456785CN", _events(n))
    page = Page("https://track.example/x", 200, content_type, body, "utf-8")
    soup = parse_page(CARRIERS["chinapost"], page, "RR123456785CN")
    own = parse_page(_with_html(CARRIERS["chinapost"], parser="lxml"), page, "RR123456785CN")
    assert soup.outcome == own.outcome == "ok"
    assert len(soup.events) == n
    assert soup.events == own.events
    assert soup.page_number == own.page_number == "RR123456785CN"


def test_the_strainer_keeps_only_its_part_of_the_page():
    _, body = render_chinapost("RR123456785CN", _events(3))
    # a decoy table of the same class outside the strained block: read without the strainer, skipped with it
    decoy = (b'<table class="track-list"><tbody><tr><td class="time">2026-01-01 00:00:00</td><td class="place">'
             b'Nowhere, XX</td><td class="postcode"></td><td class="event">Delivered</td></tr></tbody></table>')
    body = body.replace(b"<footer>", decoy + b"<footer>")
    page = Page("u", 200, "text/html", body, "utf-8")
    strained = parse_page(CARRIERS["chinapost"], page, "RR123456785CN")
    whole = parse_page(_with_html(CARRIERS["chinapost"], strainer=None), page, "RR123456785CN")
    assert len(strained.events) == 3
    assert len(whole.events) == 4


def test_xpath_needs_the_lxml_builder():
    soup = _with_html(CARRIERS["chinapost"], rows="//table[@class='track-list']/tbody/tr")
    assert any("XPath" in p for p in check_html(soup))
    assert check_html(_with_html(CARRIERS["chinapost"], rows="//table[@class='track-list']/tbody/tr",
                                 parser="lxml")) == []
    assert any("parser" in p for p in check_html(_with_html(CARRIERS["chinapost"], parser="html5")))


def test_a_carrier_file_with_an_xpath_for_beautifulsoup_is_refused(tmp_path):
    text = (tmp_path / "x.toml")
    text.write_text((CARRIERS["chinapost"].source and open(CARRIERS["chinapost"].source).read()).replace(
        'rows = "table.track-list tbody tr"', "rows = \"//table/tbody/tr\""))
    with pytest.raises(BadInput, match="XPath"):
        load_carriers([tmp_path])
