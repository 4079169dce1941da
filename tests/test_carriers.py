"""Carriers as data: the three built-in carriers parse the local site's pages back into the journey."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tracker.carriers import Page, load_carriers, parse_page, rebase_url, resolve
from tracker.carriersite.journeys import make_journey
from tracker.carriersite.renderers import RENDERERS
from tracker.errors import BadInput

START = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
NUMBERS = {"cainiao": "LP00123456789012", "chinapost": "RR123456785CN", "yunexpress": "YT1234567890123456"}


def page_for(carrier: str, events: list[dict]) -> Page:
    content_type, body = RENDERERS[carrier](NUMBERS[carrier], events)
    return Page(url="http://x/", status=200, content_type=content_type, body=body, encoding="utf-8")


@pytest.fixture(scope="module")
def carriers():
    return load_carriers()


@pytest.mark.parametrize("name", ["cainiao", "chinapost", "yunexpress"])
def test_each_carrier_reads_back_its_own_page(carriers, name):
    journey = make_journey(NUMBERS[name], name, START, dest=("Seoul", "04524", "KR"))
    result = parse_page(carriers[name], page_for(name, journey), NUMBERS[name])
    assert result.outcome == "ok", result.error
    got = sorted(result.events, key=lambda e: e["occurred_at"])
    assert [e["status"] for e in got] == [e["status"] for e in journey]
    assert [e["raw_code"] for e in got] == [e["raw_code"] for e in journey]
    assert [(e["city"], e["postcode"], e["country"]) for e in got] == [
        (e["city"], e["postcode"], e["country"]) for e in journey
    ]
    if name == "yunexpress":  # its pages show minutes only; our journeys start on the minute
        assert "South Korea" in got[-1]["location"]
    assert [e["occurred_at"] for e in got] == [e["occurred_at"] for e in journey]
    assert all(e["carrier"] == name and e["description"] for e in got)


def test_html_carriers_use_their_own_words(carriers):
    journey = make_journey(NUMBERS["yunexpress"], "yunexpress", START)
    events = parse_page(carriers["yunexpress"], page_for("yunexpress", journey), NUMBERS["yunexpress"]).events
    words = {e["description"] for e in events}
    assert {"Delivered to recipient", "Arrived at the local delivery center"} <= words
    journey = make_journey(NUMBERS["chinapost"], "chinapost", START)
    events = parse_page(carriers["chinapost"], page_for("chinapost", journey), NUMBERS["chinapost"]).events
    assert {"Delivered", "Arrival at delivery office"} <= {e["description"] for e in events}


def test_cainiao_unknown_code_is_kept_raw_and_reported(carriers):
    journey = make_journey(NUMBERS["cainiao"], "cainiao", START, codes=["GWMS_ACCEPT", "XX_MYSTERY_SCAN"])
    result = parse_page(carriers["cainiao"], page_for("cainiao", journey), NUMBERS["cainiao"])
    by_code = {e["raw_code"]: e["status"] for e in result.events}
    assert by_code == {"GWMS_ACCEPT": "info_received", "XX_MYSTERY_SCAN": "unknown"}
    assert result.unknown_codes == ["XX_MYSTERY_SCAN"]


def test_cainiao_prefix_codes_and_last_mile_number(carriers):
    journey = make_journey(NUMBERS["cainiao"], "cainiao", START, last_mile_number="CX123456789ES")
    result = parse_page(carriers["cainiao"], page_for("cainiao", journey), NUMBERS["cainiao"])
    assert result.last_mile_number == "CX123456789ES"
    signed = [e for e in result.events if e["raw_code"] == "GTMS_SIGNED"][0]
    assert json.loads(signed["extra"]) == {"last_mile_number": "CX123456789ES"}
    assert {e["status"] for e in result.events if e["raw_code"].startswith(("SC_", "CC_EX_", "LH_"))} == {
        "in_transit"
    }


@pytest.mark.parametrize("name", ["cainiao", "chinapost", "yunexpress"])
def test_not_found_pages(carriers, name):
    assert parse_page(carriers[name], page_for(name, []), NUMBERS[name]).outcome == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>" + b"<div>" * 50_000 + b"</div>" * 50_000 + b"</html>",  # deeply nested
        b"\x00\x01\x02binary\xff\xfe" * 1000,  # binary
        "<html><body><table class='track-list'>ünïcödé</table></body></html>".encode(
            "utf-16"
        ),  # wrong encoding
        b"<<<%%%>>> ]]>{{{ not a page &&& </td></tr></table>" * 50,  # garbage
        b"",  # empty
    ],
)
@pytest.mark.parametrize("name", ["cainiao", "chinapost", "yunexpress"])
def test_hostile_pages_become_errors_not_crashes(carriers, name, body):
    page = Page(
        url="http://x/", status=200, content_type="text/html; charset=utf-8", body=body, encoding="utf-8"
    )
    result = parse_page(carriers[name], page, NUMBERS[name])
    assert result.outcome in ("error", "wrong_content") and result.error
    assert result.events == []


def test_cainiao_html_instead_of_json_trips_the_breaker_outcome(carriers):
    page = Page("http://x/", 200, "text/html", b"<html><body>Please slide to verify</body></html>")
    assert parse_page(carriers["cainiao"], page, NUMBERS["cainiao"]).outcome == "captcha"
    page = Page("http://x/", 200, "text/html", b"<html><body>Maintenance</body></html>")
    assert parse_page(carriers["cainiao"], page, NUMBERS["cainiao"]).outcome == "wrong_content"


def test_html_captcha_page(carriers):
    page = Page("http://x/", 200, "text/html", b"<html><body><h3>Verify you are human</h3></body></html>")
    assert parse_page(carriers["yunexpress"], page, NUMBERS["yunexpress"]).outcome == "captcha"


def test_number_is_checked_and_encoded_before_it_enters_a_url(carriers, tmp_path):
    with pytest.raises(BadInput):
        carriers["chinapost"].url_for("RR123456785CN/../../admin")
    with pytest.raises(BadInput):
        carriers["cainiao"].url_for("LP1&mailNos=evil")
    (tmp_path / "loose.toml").write_text(
        'name = "loose"\nadapter = "html"\nurl = "https://loose.example/t/{number}"\n'
        "number_pattern = '^.+$'\nrate_per_second = 1\n[html]\nrows = 'tr'\ntime = 'td'\n"
    )
    loose = load_carriers([tmp_path])["loose"]
    assert loose.url_for("A/B?c=d#e") == "https://loose.example/t/A%2FB%3Fc%3Dd%23e"


def test_base_url_replaces_scheme_and_host_only(carriers, monkeypatch):
    assert rebase_url("https://a.example/x/y?n=1", "http://127.0.0.1:9") == "http://127.0.0.1:9/x/y?n=1"
    monkeypatch.setenv("TRACKER_CARRIER_BASE_URL", "http://127.0.0.1:8123")
    assert (
        carriers["chinapost"].url_for("RR123456785CN") == "http://127.0.0.1:8123/track?number=RR123456785CN"
    )
    with pytest.raises(BadInput):
        rebase_url("https://a.example/x", "ftp://elsewhere")


def test_aliases_resolve(carriers):
    assert resolve(carriers, "China Post").name == "chinapost"
    assert resolve(carriers, "YUN-EXPRESS").name == "yunexpress"
    assert resolve(carriers, "pigeon") is None


def test_a_bad_carrier_file_is_one_clear_line(tmp_path):
    (tmp_path / "bad.toml").write_text(
        'name = "bad"\nadapter = "telepathy"\nurl = "https://x/{number}"\n'
        "number_pattern = '^X$'\nrate_per_second = 1\n"
    )
    with pytest.raises(BadInput, match="unknown adapter 'telepathy'"):
        load_carriers([tmp_path])
    (tmp_path / "bad.toml").write_text('name = "bad"\n')
    with pytest.raises(BadInput, match="missing 'adapter'"):
        load_carriers([tmp_path])
    (tmp_path / "bad.toml").write_text(
        'name = "bad"\nadapter = "html"\nurl = "file:///etc/{number}"\n'
        "number_pattern = '^X$'\nrate_per_second = 1\n"
    )
    with pytest.raises(BadInput, match="must be http"):
        load_carriers([tmp_path])
    (tmp_path / "bad.toml").write_text('name = "bad"\nadapter = "html"\nurl = "https://x/{number}"\n'
                                       "number_pattern = '^X$'\nrate_per_second = 1\n[html]\nrows = 'tr'\n"
                                       "time = 'td'\n[words]\nGone = 'teleported'\n")
    with pytest.raises(BadInput, match="'teleported' is not a normalised status"):
        load_carriers([tmp_path])


def test_carriers_command_lists_files_including_a_user_one(run_cli, tmp_path, monkeypatch):
    (tmp_path / "acmepost.toml").write_text(
        'name = "acmepost"\nlabel = "Acme Post"\nadapter = "html"\nurl = "https://acme.example/p/{number}"\n'
        "number_pattern = '^AC\\d{6}$'\nrate_per_second = 2\n[html]\nrows = 'tr'\ntime = 'td'\n"
    )
    monkeypatch.setenv("TRACKER_CARRIERS_DIR", str(tmp_path))
    result = run_cli("carriers", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert {"cainiao", "chinapost", "yunexpress", "acmepost"} <= set(rows)
    assert rows["acmepost"]["rate_per_second"] == 2.0
    assert rows["cainiao"]["adapter"] == "json"
