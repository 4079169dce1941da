"""The poller against the local carrier site over real HTTP: storage, re-polls, scheduling, options."""

from __future__ import annotations

import hashlib
import zlib
from datetime import timedelta

import pytest
from test_poll_support import (
    NOW,
    START,
    add_journeys,
    add_shipments,
    carrier_site,
    count,
    journeys,
    number,
    run_poll,
    shipment,
)

from tracker.carriersite.journeys import make_journey
from tracker.errors import BadInput
from tracker.poll.runner import polling_settings
from tracker.poll.schedule import next_poll
from tracker.timeutil import from_db, to_db


@pytest.fixture
def site():
    yield from carrier_site()


def test_poll_stores_events_snapshots_and_a_log_row_per_fetch(db, site):
    site.journeys = journeys(1)
    add_journeys(db, site.journeys)
    add_shipments(db, {"LP99999999999999": "cainiao"})  # the carrier has never heard of it
    summary = run_poll(db, site)
    assert summary.polled == 4 and summary.outcomes["ok"] == 3 and summary.outcomes["not_found"] == 1
    assert (
        summary.events_added == 45 == count(db, "SELECT count(*) FROM tracking_events WHERE source = 'poll'")
    )
    assert count(db, "SELECT count(*) FROM poll_log") == 4
    assert count(db, "SELECT count(*) FROM poll_log WHERE http_status = 200 AND duration_ms >= 0") == 4
    # every event points at the raw page it came from, kept compressed under the SHA-256 of the raw body
    for sha, body in db.conn.execute("SELECT sha256, body FROM page_snapshots"):
        assert hashlib.sha256(zlib.decompress(body)).hexdigest() == sha
    assert (
        count(
            db,
            "SELECT count(*) FROM tracking_events e LEFT JOIN page_snapshots p "
            "ON p.sha256 = e.snapshot_sha256 WHERE p.sha256 IS NULL",
        )
        == 0
    )
    for tn in site.journeys:
        s = shipment(db, tn)
        assert s["state"] == "delivered" and s["last_status"] == "delivered"
        assert s["last_event_at"] == site.journeys[tn][-1]["occurred_at"]
    assert "4 of 4" in summary.line() and "45 new events" in summary.line()
    # the site saw our User-Agent
    assert all(r.user_agent.startswith("tracker/") for r in site.requests)


def test_repoll_of_the_same_pages_adds_no_duplicate_events(db, site):
    site.journeys = journeys(2, stages=8)
    add_journeys(db, site.journeys)
    first = run_poll(db, site)
    later = NOW + timedelta(hours=13)
    site.as_of = later
    second = run_poll(db, site, as_of=later)
    assert first.events_added == 48 and second.polled == 6 and second.events_added == 0
    assert count(db, "SELECT count(*) FROM tracking_events") == 48
    assert count(db, "SELECT count(*) FROM page_snapshots") == 6  # same pages: stored once


def test_new_scans_arrive_as_the_clock_moves_and_mark_orders_changed(db, site):
    tn = number("chinapost", 7)
    site.journeys = {tn: make_journey(tn, "chinapost", START, stages=15, gap=timedelta(hours=12))}
    with db.conn:
        db.conn.execute(
            "INSERT INTO orders (order_id, buyer_id, seller_id, ordered_at, dest_country, tracking_number, seq) "
            "VALUES ('o1', 'b', 's', '2026-09-01', 'ES', ?, 0)",
            [tn],
        )
    add_shipments(db, {tn: "chinapost"})
    site.as_of = START + timedelta(hours=30)  # three scans so far
    run_poll(db, site, as_of=site.as_of)
    assert count(db, "SELECT count(*) FROM tracking_events") == 3
    assert count(db, "SELECT seq FROM orders WHERE order_id = 'o1'") > 0
    seq = count(db, "SELECT seq FROM orders WHERE order_id = 'o1'")
    site.as_of = START + timedelta(days=8)
    run_poll(db, site, as_of=site.as_of)
    assert count(db, "SELECT count(*) FROM tracking_events") == 15
    assert shipment(db, tn)["last_status"] == "delivered"
    assert count(db, "SELECT seq FROM orders WHERE order_id = 'o1'") > seq
    assert count(db, "SELECT count(*) FROM page_snapshots WHERE tracking_number = ?", [tn]) == 2


def test_delivered_gets_one_confirmation_poll_then_stops(db, site):
    site.journeys = journeys(1)
    add_journeys(db, site.journeys)
    run_poll(db, site)
    tn = number("yunexpress", 1)
    assert shipment(db, tn)["next_poll_at"] == to_db(NOW + timedelta(hours=24))
    assert run_poll(db, site, as_of=NOW + timedelta(hours=23)).polled == 0
    assert run_poll(db, site, as_of=NOW + timedelta(hours=25)).polled == 3
    assert shipment(db, tn)["state"] == "done" and shipment(db, tn)["next_poll_at"] is None
    assert run_poll(db, site, as_of=NOW + timedelta(days=30)).polled == 0


def test_out_for_delivery_is_polled_sooner_than_in_transit(db, site):
    ofd, transit = number("cainiao", 1), number("cainiao", 2)
    site.journeys = {
        ofd: make_journey(ofd, "cainiao", START, stages=14),
        transit: make_journey(transit, "cainiao", START, stages=6),
    }
    add_journeys(db, site.journeys)
    run_poll(db, site)
    wait_ofd = from_db(shipment(db, ofd)["next_poll_at"]) - NOW
    wait_transit = from_db(shipment(db, transit)["next_poll_at"]) - NOW
    assert shipment(db, ofd)["last_status"] == "out_for_delivery"
    assert timedelta(hours=2) <= wait_ofd <= timedelta(hours=4)
    assert timedelta(hours=6) <= wait_transit <= timedelta(hours=12)


def test_not_found_only_after_repeated_answers_over_the_grace_period(db, site):
    tn = "LP99999999999999"
    add_shipments(db, {tn: "cainiao"}, next_poll_at=to_db(NOW))
    t = NOW
    for _ in range(3):  # three answers within a day: still just "not yet"
        run_poll(db, site, as_of=t)
        t += timedelta(hours=12)
    s = shipment(db, tn)
    assert s["not_found_count"] == 3 and s["state"] == "pending" and s["last_status"] is None
    run_poll(db, site, as_of=NOW + timedelta(days=6))
    s = shipment(db, tn)
    assert s["state"] == "not_found" and s["last_status"] == "not_found"
    assert from_db(s["next_poll_at"]) - (NOW + timedelta(days=6)) == timedelta(hours=12)


def test_fetch_errors_never_count_as_not_found(db, site):
    tn = number("chinapost", 3)
    add_shipments(db, {tn: "chinapost"}, next_poll_at=to_db(NOW))
    site.set_fault("500", carrier="chinapost")
    for i in range(3):
        run_poll(db, site, as_of=NOW + timedelta(days=3 * i))
    s = shipment(db, tn)
    assert s["not_found_count"] == 0 and s["last_status"] is None
    assert s["consecutive_failures"] == 3 and "HTTP 500" in s["last_error"]


def test_stale_and_retired_shipments():
    cfg = polling_settings()
    base = {"tracking_number": "X", "state": "tracking", "first_seen_at": to_db(NOW - timedelta(days=100))}
    stale = next_poll(
        {**base, "last_event_at": to_db(NOW - timedelta(days=31))},
        "ok",
        NOW,
        cfg,
        latest_status="in_transit",
        latest_event_at=to_db(NOW - timedelta(days=31)),
    )
    assert stale["state"] == "stale" and from_db(stale["next_poll_at"]) - NOW >= timedelta(hours=24)
    retired = next_poll(
        {**base, "last_event_at": to_db(NOW - timedelta(days=91))},
        "ok",
        NOW,
        cfg,
        latest_status="in_transit",
        latest_event_at=to_db(NOW - timedelta(days=91)),
    )
    assert retired["state"] == "retired" and retired["next_poll_at"] is None
    never_found = next_poll({**base, "not_found_count": 40}, "not_found", NOW, cfg)
    assert never_found["state"] == "retired"


def test_retired_shipments_are_not_polled(db, site):
    site.journeys = journeys(1, stages=3, start=NOW - timedelta(days=120))
    add_journeys(db, site.journeys)
    run_poll(db, site)
    assert {shipment(db, tn)["state"] for tn in site.journeys} == {"retired"}
    assert run_poll(db, site, as_of=NOW + timedelta(days=5)).polled == 0


def test_limit_and_carrier_options(db, site):
    site.journeys = journeys(3, stages=5)
    add_journeys(db, site.journeys)
    only = run_poll(db, site, carrier="YunExpress")
    assert only.polled == 3
    assert count(db, "SELECT count(*) FROM poll_log WHERE carrier = 'yunexpress'") == 3
    assert run_poll(db, site, limit=2).polled == 2
    assert count(db, "SELECT count(*) FROM poll_log") == 5
    with pytest.raises(BadInput, match="no such carrier"):
        run_poll(db, site, carrier="pigeon-post")


def test_poll_creates_shipments_for_orders_without_one(db, site):
    site.journeys = journeys(1, stages=4)
    with db.conn:
        db.conn.executemany(
            "INSERT INTO orders (order_id, buyer_id, seller_id, ordered_at, dest_country, tracking_number, carrier) "
            "VALUES (?, 'b', 's', '2026-09-01', 'ES', ?, ?)",
            [
                (f"o{i}", tn, None if i == 0 else ev[0]["carrier"])
                for i, (tn, ev) in enumerate(site.journeys.items())
            ],
        )
    summary = run_poll(db, site)
    assert summary.shipments_created == 3 and summary.polled == 3 and summary.outcomes["ok"] == 3
    assert shipment(db, number("cainiao", 1))["carrier"] == "cainiao"  # guessed from the number


def test_unconfigured_carriers_are_reported_not_polled(db, site, monkeypatch):
    monkeypatch.delenv("TRACKER_17TRACK_TOKEN", raising=False)
    add_shipments(db, {"1Z999AA10123456784": "ups", "1Z-NO_SUCH?": "pigeon"})
    summary = run_poll(db, site)
    # no carrier file for UPS: the number waits for the aggregator, which has no token here
    assert summary.polled == 0 and summary.no_adapter == {"pigeon": 1}
    assert "not polled, no carrier configured: 1 pigeon" in summary.line()
    assert "17track skipped: 1 due shipments not polled, no API token (set TRACKER_17TRACK_TOKEN)" in summary.line()


def test_a_run_stops_taking_work_at_its_time_budget(db, site):
    site.journeys = journeys(2, stages=3)
    add_journeys(db, site.journeys)
    summary = run_poll(db, site, settings={"run": {"max_run_minutes": 0}})
    assert summary.stopped_early and summary.polled == 0 and "time budget" in summary.line()
    assert run_poll(db, site).polled == 6  # the rest stayed due


def test_progress_is_reported_per_batch(db, site):
    site.journeys = journeys(2, stages=3)
    add_journeys(db, site.journeys)
    seen = []
    run_poll(db, site, progress=lambda done, due: seen.append((done, due)))
    assert seen and seen[-1] == (6, 6)
