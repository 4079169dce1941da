"""The local carrier site: loopback only, routes by path, faults by number or carrier, and the world's
journeys served and read back by the poller unchanged."""

from __future__ import annotations

import collections
import time

import pytest
import requests

from tracker.carriersite import CarrierSite
from tracker.carriersite.journeys import make_journey
from tracker.db import open_db
from tracker.poll import poll
from tracker.timeutil import parse_time

AS_OF = parse_time("2026-09-20T12:00:00Z")


def test_serves_each_carrier_by_path_and_only_up_to_its_clock():
    tn = "RR123456785CN"
    journey = make_journey(tn, "chinapost", parse_time("2026-09-10T00:00:00Z"))  # one scan every 14 h
    with CarrierSite({tn: journey}, as_of=parse_time("2026-09-11T00:00:00Z")) as site:
        assert site.base_url.startswith("http://127.0.0.1:")
        page = requests.get(f"{site.base_url}/track?number={tn}", timeout=5)
        assert page.status_code == 200 and page.text.count('<td class="time">') == 2
        site.as_of = AS_OF
        assert (
            requests.get(f"{site.base_url}/track?number={tn}", timeout=5).text.count('<td class="time">')
            == 15
        )
        # the same number asked of another carrier is unknown there
        other = requests.post(f"{site.base_url}/Track/Query", json={"NumberList": [tn]}, timeout=5)
        assert other.json()["ResultList"][0]["TrackInfo"] is None
        assert requests.get(f"{site.base_url}/nowhere", timeout=5).status_code == 404


def test_faults_by_number_beat_faults_by_carrier_and_wear_off():
    with CarrierSite({}, as_of=AS_OF) as site:
        site.set_fault("503", carrier="chinapost")
        site.set_fault("429", number="RR000000002CN", times=1)
        url = f"{site.base_url}/track?number="
        assert requests.get(url + "RR000000001CN", timeout=5).status_code == 503
        assert requests.get(url + "RR000000002CN", timeout=5).status_code == 429
        assert requests.get(url + "RR000000002CN", timeout=5).status_code == 503
        site.clear_faults()
        assert requests.get(url + "RR000000002CN", timeout=5).status_code == 200
        with pytest.raises(ValueError):
            site.set_fault("meteor")


def test_a_request_is_recorded_before_its_answer_can_be_read():
    """Whoever has read an answer finds its request in `site.requests` with that answer's status: the record is
    made as the status line goes out, not after the body (a test counting requests right after a poll once found
    the last one missing)."""
    class SlowToRecord(list):  # the site's list of requests, each record taking a while to land
        def append(self, record: object) -> None:
            time.sleep(0.05)
            super().append(record)

    with CarrierSite({}, as_of=AS_OF) as site, requests.Session() as session:
        site.requests = SlowToRecord()
        site.set_fault("429", number="RR000000002CN")
        for i in range(20):
            number = "RR000000002CN" if i % 2 else "RR000000001CN"
            answer = session.get(f"{site.base_url}/track?number={number}", timeout=5)
            assert len(site.requests) == i + 1
            assert (site.requests[-1].number, site.requests[-1].status) == (number, answer.status_code)


def test_the_generated_world_round_trips_through_the_site(tmp_path):
    world = pytest.importorskip("tracker.world")
    w = world.generate(150, seed=5)
    journeys = w.journeys()
    db = open_db(tmp_path / "t.db")
    with db.conn:
        db.conn.executemany(
            "INSERT OR IGNORE INTO shipments (tracking_number, carrier, next_poll_at) VALUES (?, ?, '2000-01-01T00:00:00Z')",
            [(o["tracking_number"], o["carrier"]) for o in w.orders if o["tracking_number"] and o["carrier"]],
        )
    with CarrierSite(journeys, as_of=w.as_of) as site:
        summary = poll(db, w.as_of, base_url=site.base_url, ignore_rate_limits=True)
    assert summary.outcomes["ok"] > 50
    polled_ok = {r[0] for r in db.conn.execute("SELECT tracking_number FROM poll_log WHERE outcome = 'ok'")}
    missing = collections.Counter()
    for tn in polled_ok:
        got = {(at[:16], status) for at, status in db.conn.execute(  # YunExpress shows minutes only
            "SELECT occurred_at, status FROM tracking_events WHERE tracking_number = ?", [tn])}
        for e in journeys[tn]:
            if (e["occurred_at"][:16], e["status"]) not in got:
                missing[(e["carrier"], e["raw_code"], e["status"])] += 1
    assert not missing
