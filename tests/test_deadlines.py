"""Deadlines: dated timer sets, calendar and working days, the dispute timeline, --due-within."""

from __future__ import annotations

import json

import pytest
from test_cases_support import add_event, add_flag, add_order, at, case_of, history

from tracker.cases import set_status
from tracker.cases.deadlines import CaseFacts, add_working_days, compute_deadlines, next_deadline
from tracker.cases.settings import load_settings, reload_settings
from tracker.cases.sync import sync_cases
from tracker.cases.timeline import update_case
from tracker.errors import BadInput
from tracker.timeutil import to_db


def _due(facts: CaseFacts) -> dict[str, str]:
    _, deadlines = compute_deadlines(facts, load_settings())
    return {d.name: to_db(d.due_at) for d in deadlines}


# --- timer sets by date ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordered", "name", "seller_days", "escalation_days"),
    [
        ("2015-06-01T00:00:00Z", "legacy", 15, 15),
        ("2016-12-31T23:59:59Z", "legacy", 15, 15),
        ("2017-01-01T00:00:00Z", "2017", 5, 7),
        ("2026-03-02T10:00:00Z", "2017", 5, 7),
    ],
)
def test_the_timer_set_is_chosen_by_the_order_date(ordered, name, seller_days, escalation_days):
    facts = CaseFacts(ordered_at=at(ordered), dispute_opened_at=at("2026-03-10T09:00:00Z"))
    timers, _ = compute_deadlines(facts, load_settings())
    assert timers.name == name
    due = _due(facts)
    assert due["seller_response"] == to_db(at("2026-03-10T09:00:00Z").replace(day=10 + seller_days))
    assert due["escalation"] == to_db(at("2026-03-10T09:00:00Z").replace(day=10 + escalation_days))
    assert "protection_end" not in due  # an open dispute freezes buyer protection


def test_an_order_before_every_timer_set_uses_the_oldest_one():
    timers, _ = compute_deadlines(CaseFacts(ordered_at=at("1999-01-01")), load_settings())
    assert timers.name == "legacy"


# --- buyer protection ------------------------------------------------------------------------------------


def test_protection_ends_promised_days_after_shipping_or_ordering():
    assert _due(
        CaseFacts(
            ordered_at=at("2026-03-02T10:00:00Z"), shipped_at=at("2026-03-04T06:00:00Z"), promised_days=30
        )
    ) == {"protection_end": "2026-04-03T06:00:00Z"}
    assert _due(CaseFacts(ordered_at=at("2026-03-02T10:00:00Z"), promised_days=30)) == {
        "protection_end": "2026-04-01T10:00:00Z"
    }
    assert _due(CaseFacts(ordered_at=at("2026-03-02T10:00:00Z"))) == {}  # no window known


def test_a_delivered_scan_shortens_protection_in_the_old_rules_only():
    old = CaseFacts(
        ordered_at=at("2016-03-02T10:00:00Z"),
        shipped_at=at("2016-03-03T00:00:00Z"),
        promised_days=60,
        delivered_at=at("2016-03-10T12:00:00Z"),
    )
    assert _due(old)["protection_end"] == "2016-03-15T12:00:00Z"  # 5 days after the scan, not May
    new = CaseFacts(
        ordered_at=at("2026-03-02T10:00:00Z"),
        shipped_at=at("2026-03-03T00:00:00Z"),
        promised_days=60,
        delivered_at=at("2026-03-10T12:00:00Z"),
    )
    assert _due(new)["protection_end"] == "2026-05-02T00:00:00Z"
    late_scan = CaseFacts(
        ordered_at=at("2016-03-02T10:00:00Z"),
        shipped_at=at("2016-03-03T00:00:00Z"),
        promised_days=10,
        delivered_at=at("2016-03-12T00:00:00Z"),
    )
    assert _due(late_scan)["protection_end"] == "2016-03-13T00:00:00Z"  # the earlier of the two


def test_confirming_receipt_leaves_15_days_to_ask_for_a_refund():
    due = _due(
        CaseFacts(
            ordered_at=at("2026-03-02"), promised_days=30, buyer_confirmed_at=at("2026-03-05T08:00:00Z")
        )
    )
    assert due == {"refund_request_end": "2026-03-20T08:00:00Z"}


# --- the complaint against an escalated dispute ----------------------------------------------------------


def test_seven_days_to_complain_after_an_escalated_dispute_closes():
    base = dict(
        ordered_at=at("2026-03-02"),
        dispute_opened_at=at("2026-03-10T09:00:00Z"),
        dispute_closed_at=at("2026-03-25T15:00:00Z"),
    )
    assert "complaint_window" not in _due(CaseFacts(**base))  # never escalated: no complaint possible
    escalated = CaseFacts(**base, dispute_escalated_at=at("2026-03-17T09:00:00Z"))
    assert _due(escalated) == {"complaint_window": "2026-04-01T15:00:00Z"}
    submitted = CaseFacts(
        **base,
        dispute_escalated_at=at("2026-03-17T09:00:00Z"),
        complaint_submitted_at=at("2026-03-27T03:00:00Z"),
    )
    assert "complaint_window" in _due(escalated) and "complaint_window" not in _due(submitted)


def test_the_decision_is_due_15_working_days_later_across_weekends():
    # Friday 10:00 Beijing; 15 working days = three full weeks → Friday 10:00 Beijing
    due = _due(CaseFacts(ordered_at=at("2026-03-02"), complaint_submitted_at=at("2026-03-06T10:00:00+08:00")))
    assert due == {"decision_due": "2026-03-27T02:00:00Z"}
    # submitted on a Saturday: counting starts Monday, so the 15th working day is still Friday the 27th
    due = _due(CaseFacts(ordered_at=at("2026-03-02"), complaint_submitted_at=at("2026-03-07T10:00:00+08:00")))
    assert due == {"decision_due": "2026-03-27T02:00:00Z"}


def test_working_days_are_counted_on_the_platform_calendar_at_a_midnight_edge():
    calendar = load_settings().calendar
    # Friday 12:30 in New York and 17:30 UTC, but already Saturday 01:30 in Beijing: a day off there
    friday_evening = at("2026-03-06T12:30:00-05:00")
    assert to_db(friday_evening) == "2026-03-06T17:30:00Z"
    assert to_db(add_working_days(friday_evening, 15, calendar)) == "2026-03-26T17:30:00Z"
    # Sunday 16:30 UTC is Monday 00:30 in Beijing: Monday is working day 0, the 15th is Monday 3 weeks on
    assert to_db(add_working_days(at("2026-03-08T16:30:00Z"), 15, calendar)) == "2026-03-29T16:30:00Z"
    # one minute earlier, Sunday 23:59 Beijing: still a day off, so the 15th working day is Friday 27th
    # (23:59 Beijing = 15:59 UTC), three days before the Monday answer above
    assert to_db(add_working_days(at("2026-03-08T15:59:00Z"), 15, calendar)) == "2026-03-27T15:59:00Z"


def test_coupons_within_5_working_days_valid_60_days():
    base = dict(
        ordered_at=at("2026-03-02"),
        complaint_submitted_at=at("2026-03-10T02:00:00Z"),
        decision_at=at("2026-04-02T02:00:00Z"),
    )  # a Thursday
    assert _due(CaseFacts(**base, outcome="rejected")) == {}
    upheld = _due(CaseFacts(**base, outcome="upheld"))
    assert upheld["coupon_due"] == "2026-04-09T02:00:00Z"  # Fri, Mon, Tue, Wed, Thu
    assert upheld["coupon_expiry"] == "2026-06-08T02:00:00Z"  # estimated from the due date
    issued = _due(CaseFacts(**base, outcome="upheld", coupon_issued_at=at("2026-04-07T09:00:00Z")))
    assert issued == {"coupon_expiry": "2026-06-06T09:00:00Z"}


def test_holidays_from_data_are_skipped(tmp_path, monkeypatch):
    (tmp_path / "cases.toml").write_text('[calendar]\nholidays = ["2026-04-06"]\n')
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path))
    reload_settings()
    try:
        due = _due(
            CaseFacts(ordered_at=at("2026-03-02"), decision_at=at("2026-04-02T02:00:00Z"), outcome="upheld")
        )
        assert due["coupon_due"] == "2026-04-10T02:00:00Z"
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        reload_settings()


def test_the_next_deadline_is_the_earliest_still_ahead():
    _, deadlines = compute_deadlines(
        CaseFacts(ordered_at=at("2026-03-02"), dispute_opened_at=at("2026-03-10")), load_settings()
    )
    assert next_deadline(deadlines, at("2026-03-11")).name == "seller_response"
    assert next_deadline(deadlines, at("2026-03-15T00:00:00Z")).name == "escalation"  # seller_response passed
    assert next_deadline(deadlines, at("2026-04-01")) is None


# --- through the store and the command line --------------------------------------------------------------


def _open_case(db, order_id="o1", **order):
    add_order(db, order_id, **order)
    add_flag(db, order_id, "tracking_reused", "high")
    sync_cases(db, {order_id}, at("2026-03-10T00:00:00Z"))
    return case_of(db, order_id)["id"]


def test_sync_stores_deadlines_from_orders_and_delivered_scans(db):
    case_id = _open_case(
        db,
        ordered_at="2016-03-02T10:00:00Z",
        shipped_at="2016-03-03T00:00:00Z",
        promised_days=60,
        tracking_number="RR123456785CN",
    )
    add_event(db, "RR123456785CN", "2016-03-08T09:00:00Z", "delivered")
    sync_cases(db, {"o1"}, at("2016-03-09T00:00:00Z"))
    case = case_of(db, "o1")
    assert (case["next_deadline_name"], case["next_deadline_at"], case["timer_set"]) == (
        "protection_end",
        "2016-03-13T09:00:00Z",
        "legacy",
    )
    rows = db.execute("SELECT name, due_at FROM case_deadlines WHERE case_id = ?", [case_id]).fetchall()
    assert rows == [("protection_end", "2016-03-13T09:00:00Z")]


def test_case_update_records_the_timeline_and_recomputes_deadlines(db, run_cli, monkeypatch):
    case_id = _open_case(db, ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=30)
    monkeypatch.setenv("TRACKER_ACTOR", "fay")
    result = run_cli(
        "case",
        "update",
        case_id,
        "--dispute-opened",
        "2026-03-10T09:00:00Z",
        "--as-of",
        "2026-03-11",
        "--note",
        "opened in the app",
    )
    assert result.exit_code == 0, result.output
    assert "next deadline seller_response at 2026-03-15T09:00:00Z" in result.output
    result = run_cli(
        "case",
        "update",
        case_id,
        "--escalated",
        "2026-03-17T09:00:00+00:00",
        "--dispute-closed",
        "2026-03-25T15:00:00Z",
        "--outcome",
        "no_refund",
        "--as-of",
        "2026-03-26",
    )
    assert result.exit_code == 0, result.output
    case = case_of(db, "o1")
    assert (case["next_deadline_name"], case["next_deadline_at"]) == (
        "complaint_window",
        "2026-04-01T15:00:00Z",
    )
    updates = [e for e in history(db, case_id) if e["kind"] == "update"]
    assert [e["actor"] for e in updates] == ["fay", "fay"]
    assert json.loads(updates[0]["data"]) == {"dispute_opened_at": [None, "2026-03-10T09:00:00Z"]}
    assert json.loads(updates[1]["data"])["outcome"] == [None, "no_refund"]
    assert updates[0]["note"] == "opened in the app"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--dispute-opened", "2026-13-01"),
            "--dispute-opened: not an ISO 8601 date or datetime ('2026-13-01')",
        ),
        (("--decision", "next week"), "--decision: not an ISO 8601 date or datetime"),
        (("--outcome", "won"), "--outcome: 'won' is not an outcome; valid: upheld, rejected"),
        (("--coupon-value", "-3"), "--coupon-value: '-3' is not a non-negative amount"),
        ((), "nothing to record"),
    ],
)
def test_case_update_bad_input_is_one_line_and_exit_2(db, run_cli, args, expected):
    case_id = _open_case(db)
    result = run_cli("case", "update", case_id, *args)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and expected in errors[0], errors
    assert [e["kind"] for e in history(db, case_id)] == ["opened"]


def test_a_timeline_running_backwards_is_refused(db):
    case_id = _open_case(db)
    update_case(db, case_id, {"dispute_opened_at": "2026-03-10"}, actor="x")
    with pytest.raises(BadInput, match="--escalated: 2026-03-09T00:00:00Z is before dispute-opened"):
        update_case(db, case_id, {"dispute_escalated_at": "2026-03-09"}, actor="x")


def test_unknown_case_for_update_and_export(db, run_cli, tmp_path):
    for args in (
        ("case", "update", "77", "--decision", "2026-03-01"),
        ("export", "77", "--out", tmp_path / "p"),
    ):
        result = run_cli(*args)
        assert result.exit_code == 2
        assert result.stderr.strip() == "tracker: error: case 77: no such case (see 'tracker cases')"


def test_due_within_lists_what_is_urgent(db, run_cli):
    soon = _open_case(db, "o1", ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=20)  # 03-23
    later = _open_case(db, "o2", ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=40)  # 04-12
    _open_case(
        db, "o3", ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=19
    )  # 03-22, dismissed
    gone = _open_case(db, "o4", ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=5)  # passed
    set_status(db, case_of(db, "o3")["id"], "dismissed", actor="x")

    def ids(*args):
        result = run_cli("cases", "--as-of", "2026-03-21T00:00:00Z", "--format", "json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.output)]

    assert ids("--due-within", "3d") == [soon]
    assert ids("--due-within", "48h") == [soon]
    assert ids("--due-within", "47h") == []
    assert ids("--due-within", "30d") == [soon, later]
    rows = json.loads(run_cli("cases", "--as-of", "2026-03-21T00:00:00Z", "--format", "json").output)
    by_id = {r["id"]: r for r in rows}
    assert (by_id[soon]["next_deadline_name"], by_id[soon]["next_deadline_at"]) == (
        "protection_end",
        "2026-03-23T00:00:00Z",
    )
    assert by_id[gone]["next_deadline_at"] is None  # its only deadline has passed


def test_passed_next_deadlines_roll_on_even_for_cases_detection_did_not_touch(db):
    case_id = _open_case(db, ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=30)
    update_case(db, case_id, {"dispute_opened_at": "2026-03-10T09:00:00Z"}, actor="x", as_of=at("2026-03-11"))
    assert case_of(db, "o1")["next_deadline_name"] == "seller_response"
    assert sync_cases(db, set(), at("2026-03-16T00:00:00Z")) == (0, 0)
    case = case_of(db, "o1")
    assert (case["next_deadline_name"], case["next_deadline_at"]) == ("escalation", "2026-03-17T09:00:00Z")
    sync_cases(db, set(), at("2026-03-18T00:00:00Z"))
    assert case_of(db, "o1")["next_deadline_at"] is None


def test_a_recorded_value_can_be_cleared_as_a_correction(db, run_cli):
    case_id = _open_case(db, ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=30)
    run_cli("case", "update", case_id, "--dispute-opened", "2026-03-10", "--escalated", "2026-03-12")
    result = run_cli(
        "case", "update", case_id, "--clear", "escalated", "--note", "typo", "--as-of", "2026-03-13"
    )
    assert result.exit_code == 0, result.output
    case = case_of(db, "o1")
    assert case["dispute_escalated_at"] is None and case["next_deadline_name"] == "seller_response"
    last = history(db, case_id)[-1]
    assert json.loads(last["data"]) == {"dispute_escalated_at": ["2026-03-12T00:00:00Z", None]}
    bad = run_cli("case", "update", case_id, "--clear", "colour")
    assert (
        bad.exit_code == 2 and "--clear 'colour': not a recorded field; valid: dispute-opened" in bad.stderr
    )


def test_julian_days_written_at_once_are_written_as_one_at_a_time():
    """`view.jd_to_texts` (a run's deadlines, at once) gives `view.jd_to_text` of each, its rounding to the second
    (half to even) included, and the same text outside the years numpy writes alike."""
    import numpy as np

    from detectors import view

    rng = np.random.default_rng(4)
    jds = np.r_[2461000 + rng.random(5000) * 400, 2461000.5, 2461000 + 0.5 / 86400, 2461000 + 1.5 / 86400,
                2461000 + 2.5 / 86400, np.nan, 2086302.5, 2086302.4, 5373483.9, 1721425.5]
    assert view.jd_to_texts(jds) == [view.jd_to_text(float(j)) for j in jds]
    assert view.jd_to_texts(np.zeros(0)) == []
