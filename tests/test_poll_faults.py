"""Every misbehaviour of the local carrier site becomes a recorded outcome on the shipment, never a crash."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from test_poll_support import (
    FAST,
    NOW,
    add_journeys,
    carrier_site,
    count,
    journeys,
    number,
    run_poll,
    shipment,
)

from tracker.timeutil import from_db

CN, CP, YT = number("cainiao", 1), number("chinapost", 1), number("yunexpress", 1)


@pytest.fixture
def site():
    yield from carrier_site()


@pytest.fixture
def world(db, site):
    site.journeys = journeys(1, stages=10)
    add_journeys(db, site.journeys)
    return site


def log_rows(db, tn):
    cur = db.conn.execute(
        "SELECT outcome, http_status, error, events_added FROM poll_log WHERE tracking_number = ? "
        "ORDER BY id",
        [tn],
    )
    return [dict(zip(("outcome", "http_status", "error", "events_added"), r, strict=True)) for r in cur]


def requests_for(site, tn):
    return [r for r in site.requests if r.number == tn]


def test_429_with_retry_after_is_retried_after_the_wait(db, world):
    world.set_fault("429", number=CP, times=1, retry_after=1)
    summary = run_poll(db, world)
    seen = requests_for(world, CP)
    assert [r.status for r in seen] == [429, 200]
    assert seen[1].at - seen[0].at >= 0.9  # Retry-After: 1 was honoured
    assert summary.outcomes["ok"] == 3 and log_rows(db, CP)[0]["events_added"] == 10


def test_persistent_429_reschedules_no_sooner_than_retry_after(db, world):
    world.set_fault("429", number=CP, retry_after=1)
    run_poll(db, world)
    row = log_rows(db, CP)[0]
    assert row["outcome"] == "error" and row["http_status"] == 429
    s = shipment(db, CP)
    assert s["consecutive_failures"] == 1 and from_db(s["next_poll_at"]) > NOW
    assert len(requests_for(world, CP)) == 2  # the first try and one retry, no more


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_errors_are_retried_then_recorded(db, world, status):
    world.set_fault(status, number=YT, times=1)
    run_poll(db, world)
    assert [r.status for r in requests_for(world, YT)] == [int(status), 200]
    assert log_rows(db, YT)[0]["outcome"] == "ok"
    world.set_fault(status, number=YT)
    run_poll(db, world, as_of=NOW + timedelta(days=2))
    assert log_rows(db, YT)[-1]["outcome"] == "error" and log_rows(db, YT)[-1]["http_status"] == int(status)


def test_slow_answer_within_the_timeout_is_fine(db, world):
    world.set_fault("slow", number=CN, delay=0.2)
    run_poll(db, world)
    assert log_rows(db, CN)[0]["outcome"] == "ok"


def test_timeout_is_an_error_not_a_hang(db, world):
    world.set_fault("timeout", number=CN, delay=2.0)
    t0 = time.monotonic()
    run_poll(db, world)
    assert time.monotonic() - t0 < 15
    row = log_rows(db, CN)[0]
    assert row["outcome"] == "error" and "timed out" in row["error"]
    assert shipment(db, CN)["not_found_count"] == 0


def test_captcha_opens_the_breaker_which_is_reported_and_persisted(db, site):
    site.journeys = journeys(4, stages=5)
    add_journeys(db, site.journeys)
    site.set_fault("captcha", carrier="cainiao")
    summary = run_poll(db, site)
    assert summary.breakers_opened == ["cainiao"]
    assert summary.outcomes["captcha"] == 2 and summary.skipped_breaker["cainiao"] == 2  # threshold 2
    assert "circuit breaker opened for cainiao" in summary.line()
    assert (
        count(db, "SELECT count(*) FROM poll_log WHERE error LIKE '%circuit breaker opened for cainiao%'")
        == 1
    )
    assert summary.outcomes["ok"] == 8  # the other carriers carry on
    # the next run within the cooldown leaves the carrier alone
    site.clear_faults()
    again = run_poll(db, site, as_of=NOW + timedelta(hours=1))
    assert again.skipped_breaker["cainiao"] == 4
    assert len([r for r in site.requests if r.carrier == "cainiao"]) == 2  # only the two that tripped it
    # after the cooldown it is tried again
    later = run_poll(db, site, as_of=NOW + timedelta(hours=7))
    assert later.outcomes["ok"] >= 4 and not later.skipped_breaker


def test_403_is_blocked_and_feeds_the_breaker(db, world):
    world.set_fault("403", carrier="chinapost")
    run_poll(db, world)
    assert log_rows(db, CP)[0]["outcome"] == "blocked"
    assert len(requests_for(world, CP)) == 1  # a 4xx other than 429 is never retried


def test_html_where_json_was_expected(db, world):
    world.set_fault("html_for_json", carrier="cainiao")
    run_poll(db, world)
    assert log_rows(db, CN)[0]["outcome"] == "wrong_content"


@pytest.mark.parametrize("fault", ["garbage", "binary", "deep", "wrong_encoding", "cut"])
def test_hostile_answers_are_recorded_errors(db, world, fault):
    world.set_fault(fault, number=CP)
    summary = run_poll(db, world)
    row = log_rows(db, CP)[0]
    assert row["outcome"] == "error" and row["error"] and row["events_added"] == 0
    assert shipment(db, CP)["last_error"] and shipment(db, CP)["not_found_count"] == 0
    assert summary.outcomes["ok"] == 2  # the others were polled as usual


def test_truncated_page_is_an_error_and_the_next_poll_completes(db, world):
    world.set_fault("truncated", number=CP, times=1)
    run_poll(db, world)
    assert "truncated" in log_rows(db, CP)[0]["error"]
    assert count(db, "SELECT count(*) FROM tracking_events WHERE tracking_number = ?", [CP]) == 0
    run_poll(db, world, as_of=NOW + timedelta(days=1))
    assert count(db, "SELECT count(*) FROM tracking_events WHERE tracking_number = ?", [CP]) == 10


def test_not_found_page_counts_but_does_not_condemn(db, world):
    world.set_fault("not_found", number=YT)
    run_poll(db, world)
    s = shipment(db, YT)
    assert log_rows(db, YT)[0]["outcome"] == "not_found"
    assert s["not_found_count"] == 1 and s["last_status"] is None and s["state"] == "pending"


def test_redirect_within_the_host_is_followed(db, world):
    world.set_fault("redirect", number=CP, times=1)
    run_poll(db, world)
    assert log_rows(db, CP)[0]["outcome"] == "ok"
    assert [r.status for r in requests_for(world, CP)] == [302, 200]


def test_redirect_to_another_host_is_refused(db, world):
    world.set_fault("redirect_offhost", number=CP, location="http://127.0.0.2:9/steal")
    run_poll(db, world)
    row = log_rows(db, CP)[0]
    assert row["outcome"] == "error" and "another host" in row["error"]


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_50_mb_answer_is_cut_off_at_the_size_cap(db, world, declare_length):
    world.set_fault("huge", number=CP, declare_length=declare_length)
    t0 = time.monotonic()
    run_poll(db, world)
    assert time.monotonic() - t0 < 20
    row = log_rows(db, CP)[0]
    assert row["outcome"] == "error" and "cap" in row["error"]


def test_a_number_outside_the_carrier_pattern_never_reaches_a_url(db, site):
    add_journeys(db, {})
    with db.conn:
        db.conn.execute(
            "INSERT INTO shipments (tracking_number, carrier, next_poll_at) "
            "VALUES ('RR1/../../admin', 'chinapost', '2026-09-01T00:00:00Z')"
        )
    summary = run_poll(db, site)
    assert summary.outcomes["invalid_number"] == 1 and not site.requests
    row = shipment(db, "RR1/../../admin")
    assert "not a chinapost number" in row["last_error"]
    # no fetch can ever succeed: it is not due again, rather than retried with backoff for 90 days
    assert row["state"] == "invalid" and row["next_poll_at"] is None
    assert run_poll(db, site).due == 0


def test_unknown_cainiao_codes_are_logged_in_the_poll_log(db, site):
    from tracker.carriersite.journeys import make_journey

    site.journeys = {
        CN: make_journey(CN, "cainiao", NOW - timedelta(days=3), codes=["GWMS_ACCEPT", "ZZ_NEW_CODE"])
    }
    add_journeys(db, site.journeys)
    summary = run_poll(db, site)
    assert summary.unknown_codes == {"ZZ_NEW_CODE": 1}
    assert "ZZ_NEW_CODE" in log_rows(db, CN)[0]["error"]
    assert (
        count(
            db, "SELECT count(*) FROM tracking_events WHERE raw_code = 'ZZ_NEW_CODE' AND status = 'unknown'"
        )
        == 1
    )


def test_connection_refused_is_a_carrier_bad_day_not_a_failed_run(db, site):
    add_journeys(db, journeys(1, stages=3))
    port = site.port
    site.stop()
    summary = run_poll(db, site, settings={**FAST, "http": {**FAST["http"], "retries": 0}})
    assert summary.polled == 3 and summary.outcomes["error"] == 3
    assert port == site.port
