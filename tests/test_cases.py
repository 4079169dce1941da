"""Cases from detection, statuses and transitions, the My Reports listing, the audit trail."""

from __future__ import annotations

import json

import pytest
from test_cases_support import add_event, add_flag, add_order, add_score, at, case_of, history

from tracker.cases import load_settings, set_status
from tracker.cases.sync import sync_cases
from tracker.errors import BadInput

AS_OF = at("2026-03-20T12:00:00Z")


def _sync(db, *order_ids, as_of=AS_OF):
    return sync_cases(db, set(order_ids), as_of)


# --- opening cases ---------------------------------------------------------------------------------------


def test_a_high_flag_opens_a_trade_rules_case_with_its_reason(db):
    add_order(db, "o1", tracking_number="LP00112233445566")
    add_flag(db, "o1", "wrong_destination", "high", "Delivered in Munich, DE; the order goes to Berlin, DE.")
    assert _sync(db, "o1") == (1, 0)
    case = case_of(db, "o1")
    assert (case["status"], case["category"], case["reason"], case["flag_codes"]) == (
        "new",
        "trade_rules",
        "false_shipment",
        "wrong_destination",
    )
    events = history(db, case["id"])
    assert [(e["kind"], e["actor"], e["to_status"]) for e in events] == [("opened", "detector", "new")]


def test_low_flags_alone_and_low_scores_open_nothing(db):
    add_order(db, "o1")
    add_flag(db, "o1", "no_tracking_progress", "medium")
    add_order(db, "o2")
    add_score(db, "o2", 0.69)
    add_order(db, "o3")
    add_flag(
        db, "o3", "wrong_destination", "high", resolved_at="2026-03-15T00:00:00Z"
    )  # resolved: not active
    assert _sync(db, "o1", "o2", "o3") == (0, 0)
    assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == 0


def test_a_score_at_the_threshold_opens_a_case(db):
    threshold = load_settings().score_threshold
    add_order(db, "o1")
    add_score(db, "o1", threshold, codes="delivered_not_received")
    assert _sync(db, "o1") == (1, 0)
    case = case_of(db, "o1")
    assert case["score"] == pytest.approx(threshold)
    assert case["reason"] == "non_delivery"  # from the score's codes: no flag to take it from
    assert case["flag_codes"] == ""


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ([("invalid_tracking_number", "high")], "false_shipment"),
        ([("tracking_reused", "high")], "false_shipment"),
        ([("accepted_before_order", "high")], "false_shipment"),
        ([("impossible_transit", "high")], "false_shipment"),
        ([("no_tracking_progress", "high")], "false_shipment"),
        ([("delivered_not_received", "high")], "non_delivery"),
        ([("early_confirmation", "high")], "induced_confirmation"),
        ([("seller_pressure", "high")], "induced_confirmation"),
        # the strongest flag decides: severity first, then the reason order in data
        ([("seller_pressure", "high"), ("no_tracking_progress", "medium")], "induced_confirmation"),
        ([("seller_pressure", "high"), ("tracking_reused", "high")], "false_shipment"),
    ],
)
def test_reason_comes_from_the_strongest_flag(db, flags, reason):
    add_order(db, "o1")
    for code, severity in flags:
        add_flag(db, "o1", code, severity)
    _sync(db, "o1")
    assert case_of(db, "o1")["reason"] == reason


def test_sync_is_idempotent_and_keeps_one_case_per_order(db):
    add_order(db, "o1", ordered_at="2026-03-02", shipped_at="2026-03-03", promised_days=30)
    add_flag(db, "o1", "tracking_reused", "high")
    add_score(db, "o1", 0.91)
    assert _sync(db, "o1") == (1, 0)
    assert _sync(db, "o1") == (0, 0)
    assert _sync(db, "o1", "o1") == (0, 0)
    assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == 1
    assert len(history(db, case_of(db, "o1")["id"])) == 1


def test_redetection_updates_flags_but_never_overrides_a_person(db):
    add_order(db, "o1")
    add_flag(db, "o1", "tracking_reused", "high")
    _sync(db, "o1")
    case = case_of(db, "o1")
    set_status(db, case["id"], "dismissed", actor="alice", note="consolidated parcel, same flat")
    add_flag(db, "o1", "wrong_destination", "high")
    add_score(db, "o1", 0.95)
    assert _sync(db, "o1", as_of=at("2026-03-21")) == (0, 1)
    after = case_of(db, "o1")
    assert after["status"] == "dismissed"
    assert after["status_set_by_person"] == 1
    assert after["flag_codes"] == "tracking_reused,wrong_destination"
    assert after["score"] == pytest.approx(0.95)
    kinds = [e["kind"] for e in history(db, case["id"])]
    assert kinds == ["opened", "status", "redetected"]
    # flags resolving later still leaves the person's decision alone
    add_flag(db, "o1", "wrong_destination", "high", resolved_at="2026-03-22T00:00:00Z")
    _sync(db, "o1", as_of=at("2026-03-22"))
    assert case_of(db, "o1")["status"] == "dismissed"
    assert case_of(db, "o1")["flag_codes"] == "tracking_reused"


@pytest.mark.parametrize("drive_from_candidates", [False, True])
def test_sync_handles_many_orders_in_one_go(db, thresholds, drive_from_candidates):
    add_order(db, "elsewhere")  # an order outside the set: a high flag on it must not open a case now
    add_flag(db, "elsewhere", "tracking_reused", "high")
    # both query plans (small incremental runs, full re-detections) must open the same cases
    thresholds(cases_whole_store_min=0 if drive_from_candidates else 10**9)
    with db.conn:
        db.conn.executemany(
            "INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country) VALUES (?, 'b', 's', ?, 'DE')",
            [(f"o{i}", "2026-03-01T00:00:00Z") for i in range(3000)],
        )
        db.conn.executemany(
            "INSERT INTO scores(order_id, score, scored_at) VALUES (?, ?, '2026-03-10T00:00:00Z')",
            [(f"o{i}", (i % 10) / 10) for i in range(3000)],
        )
    opened, updated = _sync(db, *[f"o{i}" for i in range(3000)])
    assert (opened, updated) == (900, 0)  # scores 0.7, 0.8, 0.9
    assert case_of(db, "elsewhere") is None
    assert db.execute("SELECT count(*) FROM case_events WHERE kind = 'opened'").fetchone()[0] == 900
    with db.conn:
        db.conn.execute(
            "UPDATE scores SET score = 0.1 WHERE order_id = 'o7'"
        )  # an existing case still updates
    assert _sync(db, *[f"o{i}" for i in range(3000)]) == (0, 1)


# --- statuses and transitions ----------------------------------------------------------------------------


def _case_in(db, status: str) -> int:
    add_order(db, "o1")
    add_flag(db, "o1", "tracking_reused", "high")
    _sync(db, "o1")
    with db.conn:
        db.conn.execute("UPDATE cases SET status = ? WHERE order_id = 'o1'", [status])
    return case_of(db, "o1")["id"]


@pytest.mark.parametrize("source", list(load_settings().statuses))
def test_every_transition_is_allowed_or_refused_as_the_data_says(db, source):
    case_id = _case_in(db, source)
    allowed = load_settings().statuses[source].next
    for target in load_settings().statuses:
        if target == source:
            continue
        with db.conn:
            db.conn.execute("UPDATE cases SET status = ? WHERE id = ?", [source, case_id])
        before = len(history(db, case_id))
        if target in allowed:
            updated = set_status(
                db, case_id, target, actor="bob", note="why not", at="2026-03-21T09:00:00+01:00"
            )
            assert updated["status"] == target
            last = history(db, case_id)[-1]
            assert (
                last["kind"],
                last["actor"],
                last["from_status"],
                last["to_status"],
                last["note"],
                last["at"],
            ) == ("status", "bob", source, target, "why not", "2026-03-21T08:00:00Z")
        else:
            with pytest.raises(BadInput) as err:
                set_status(db, case_id, target, actor="bob")
            message = str(err.value)
            assert f"cannot go from {source!r} to {target!r}" in message, target
            assert "allowed: " + (", ".join(allowed) if allowed else "none") in message
            assert case_of(db, "o1")["status"] == source
            assert len(history(db, case_id)) == before  # a refused change leaves no trace


def test_terminal_status_refuses_everything_and_says_so(db):
    case_id = _case_in(db, "closed")
    with pytest.raises(BadInput, match=r"\('closed' is a terminal status\); allowed: none"):
        set_status(db, case_id, "new", actor="bob")


def test_a_full_lifecycle_through_the_my_reports_statuses(db):
    case_id = _case_in(db, "new")
    for status in ("to_report", "pending", "more_info", "processing", "processed", "closed"):
        set_status(db, case_id, status, actor="carol")
    moves = [(e["from_status"], e["to_status"]) for e in history(db, case_id) if e["kind"] == "status"]
    assert moves == [
        ("new", "to_report"),
        ("to_report", "pending"),
        ("pending", "more_info"),
        ("more_info", "processing"),
        ("processing", "processed"),
        ("processed", "closed"),
    ]


def test_same_status_unknown_status_and_unknown_case_are_bad_input(db):
    case_id = _case_in(db, "new")
    with pytest.raises(BadInput, match="already 'new'"):
        set_status(db, case_id, "new", actor="bob")
    with pytest.raises(BadInput, match="valid statuses: new, dismissed"):
        set_status(db, case_id, "escalated", actor="bob")
    with pytest.raises(BadInput, match="case 999: no such case"):
        set_status(db, 999, "dismissed", actor="bob")


# --- the command line ------------------------------------------------------------------------------------


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_cli_set_status_records_the_actor_and_note(db, run_cli, monkeypatch):
    case_id = _case_in(db, "new")
    monkeypatch.setenv("TRACKER_ACTOR", "dana")
    result = run_cli("case", "set-status", case_id, "to_report", "--note", "three buyers, one number")
    assert result.exit_code == 0, result.output
    last = history(db, case_id)[-1]
    assert (last["actor"], last["from_status"], last["to_status"], last["note"]) == (
        "dana",
        "new",
        "to_report",
        "three buyers, one number",
    )


def test_cli_refused_transition_lists_the_allowed_ones(db, run_cli):
    case_id = _case_in(db, "new")
    result = run_cli("case", "set-status", case_id, "processed")
    assert result.exit_code == 2
    assert _errors(result) == [
        f"tracker: error: case {case_id}: cannot go from 'new' to 'processed'; allowed: to_report, dismissed"
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("case", "set-status", "999", "dismissed"), "case 999: no such case"),
        (("case", "set-status", "abc", "dismissed"), "case 'abc': not a case id"),
        (
            ("case", "set-status", "1", "bogus"),
            "status 'bogus': unknown; valid statuses: new, dismissed, to_report",
        ),
        (("case", "show", "999"), "case 999: no such case"),
        (("cases", "--status", "bogus"), "valid statuses: new, dismissed, to_report, pending, processing"),
        (("cases", "--category", "fraud"), "valid categories: trade_rules, ipr, prohibited, search"),
        (("cases", "--due-within", "soon"), "--due-within 'soon': not a duration"),
        (("cases", "--as-of", "yesterday"), "--as-of 'yesterday': not an ISO 8601"),
    ],
)
def test_cli_bad_input_is_one_clear_line_and_exit_2(db, run_cli, args, expected):
    _case_in(db, "new")
    result = run_cli(*args)
    assert result.exit_code == 2
    errors = _errors(result)
    assert len(errors) == 1 and expected in errors[0], errors
    assert "Traceback" not in result.output


def test_cli_cases_filters_like_my_reports(db, run_cli):
    add_order(db, "o1", tracking_number="LP1")
    add_flag(db, "o1", "tracking_reused", "high")
    add_order(db, "o2")
    add_flag(db, "o2", "seller_pressure", "high")
    add_flag(db, "o2", "no_tracking_progress", "low")
    add_score(db, "o2", 0.8)
    add_order(db, "o3")
    add_score(db, "o3", 0.99)
    _sync(db, "o1", "o2", "o3")
    with db.conn:
        db.conn.execute("UPDATE cases SET category = 'ipr' WHERE order_id = 'o3'")
    set_status(db, case_of(db, "o2")["id"], "to_report", actor="x")

    rows = json.loads(run_cli("cases", "--format", "json").output)
    assert [r["order_id"] for r in rows] == ["o1", "o2", "o3"]
    second = rows[1]
    for key in (
        "id",
        "order_id",
        "status",
        "category",
        "reason",
        "score",
        "flags",
        "next_deadline_at",
        "next_deadline_name",
    ):
        assert key in second
    assert second["flags"] == ["seller_pressure", "no_tracking_progress"]
    assert (second["status"], second["status_label"], second["reason"]) == (
        "to_report",
        "To report",
        "induced_confirmation",
    )
    assert [
        r["order_id"] for r in json.loads(run_cli("cases", "--status", "new", "--format", "json").output)
    ] == ["o1", "o3"]
    assert [
        r["order_id"]
        for r in json.loads(
            run_cli("cases", "--status", "new", "--category", "trade_rules", "--format", "json").output
        )
    ] == ["o1"]
    assert json.loads(run_cli("cases", "--status", "pending", "--format", "json").output) == []
    csv_lines = run_cli("cases", "--category", "ipr", "--format", "csv").output.splitlines()
    assert csv_lines[0].startswith("id,order_id,status") and csv_lines[1].split(",")[1] == "o3"
    table = run_cli("cases").output
    assert "o1" in table and "tracking_reused" in table


def test_cli_case_show_has_everything_a_reviewer_needs(db, run_cli):
    add_order(db, "o1", tracking_number="LP00112233445566", shipped_at="2026-03-03", promised_days=40)
    add_event(
        db,
        "LP00112233445566",
        "2026-03-04T08:00:00Z",
        "in_transit",
        "Departed sorting center",
        location="Shenzhen, CN",
    )
    add_flag(db, "o1", "tracking_reused", "high", "The number is on 4 orders of 4 different buyers.")
    add_score(
        db,
        "o1",
        0.93,
        "tracking_reused",
        [{"feature": "buyers_per_number", "text": "4 buyers share the number", "weight": 0.41}],
    )
    with db.conn:  # what the scorer records of the model that scored (tracker.detection.scoring)
        db.conn.execute("INSERT INTO meta(key, value) VALUES ('scored_by:m1', ?)", [json.dumps(
            {"model_id": "m1", "summary": "the shipped model (generated worlds) 85%, the rules prior 15%",
             "parts": [], "base_log_odds": -3.5})])
    _sync(db, "o1")
    case_id = case_of(db, "o1")["id"]
    set_status(db, case_id, "to_report", actor="erin", note="clear case")
    out = run_cli("case", "show", case_id, "--as-of", "2026-03-20").output
    for fragment in (
        "order o1",
        "to_report (To report",
        "Trade Rules",
        "False shipment",
        "The number is on 4 orders of 4 different buyers.",
        "0.930  (log-odds +2.59)",
        "scored by the shipped model (generated worlds) 85%, the rules prior 15%",
        "reasons, in log-odds added to a base of -3.50 (an average order):",
        "buyers_per_number  +0.41  4 buyers share the number",
        "protection_end",
        "Departed sorting center",
        "erin  status new -> to_report — clear case",
        "detector  opened",
    ):
        assert fragment in out, fragment
    detail = json.loads(run_cli("case", "show", case_id, "--format", "json").output)
    assert detail["case"]["allowed_next"] == ["pending", "dismissed"]
    assert detail["flags"][0]["code"] == "tracking_reused"


def test_labels_are_published_for_the_dashboard(db):
    rows = db.execute("SELECT id, label, filter, terminal FROM case_statuses ORDER BY position").fetchall()
    assert rows[0] == ("new", "New", "To review", 0)
    assert ("closed", "Closed", "Closed", 1) in rows
    assert db.execute("SELECT label FROM case_categories WHERE id = 'ipr'").fetchone() == ("IPR Protection",)
    assert db.execute("SELECT category FROM case_reasons WHERE id = 'non_delivery'").fetchone() == (
        "trade_rules",
    )


def test_opening_thresholds_are_data(db, tmp_path, monkeypatch):
    from tracker.cases.settings import reload_settings

    (tmp_path / "cases.toml").write_text('[open]\nscore_threshold = 0.5\nseverities = ["high", "medium"]\n')
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path))
    reload_settings()
    try:
        add_order(db, "o1")
        add_score(db, "o1", 0.55)
        add_order(db, "o2")
        add_flag(db, "o2", "no_tracking_progress", "medium")
        add_order(db, "o3")
        add_flag(db, "o3", "no_tracking_progress", "low")
        assert _sync(db, "o1", "o2", "o3") == (2, 0)
        assert case_of(db, "o3") is None
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        reload_settings()


def test_detect_opens_cases_through_the_real_pipeline(db, run_cli):
    """The seam with the rules engine: `tracker detect` ends in sync_cases."""
    add_order(db, "o1", tracking_number="RR000000000CN", carrier="chinapost")  # fails the S10 check digit
    db.conn.execute("UPDATE orders SET seq = 1")
    db.conn.commit()
    result = run_cli("detect", "--as-of", "2026-03-20T00:00:00Z", "--full")
    assert result.exit_code == 0, result.output
    case = case_of(db, "o1")
    assert case is not None and "invalid_tracking_number" in case["flag_codes"].split(",")
    assert case["reason"] == "false_shipment"
