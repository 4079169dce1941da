"""The flags engine: idempotent writes, resolution and reactivation, incremental scope, --as-of."""

from __future__ import annotations

import json
from datetime import timedelta

from test_rules_builders import STANDARD, T0, add_journey, add_order, at, codes_of, flags_of, s10_number

from tracker import config
from tracker.db import open_db
from tracker.detection.flagging import run_rules
from tracker.events import insert_events

AS_OF = T0 + timedelta(days=40)


def _all_flags(db):
    return db.conn.execute("SELECT * FROM flags ORDER BY order_id, code").fetchall()


def _number(digits: str) -> str:
    from detectors.tracking_numbers import s10_check_digit

    return f"RR{digits}{s10_check_digit(digits)}CN"


def _store(db):
    a = add_order(db, "DNR", received="no", number=_number("11111111"))
    add_journey(db, a)
    number = _number("22222222")
    add_order(db, "R1", buyer="B1", number=number)
    add_order(db, "R2", buyer="B2", number=number, city="Kazan", postcode="420066")
    add_journey(db, number)
    c = add_order(db, "OK", received="yes", number=_number("33333333"))
    add_journey(db, c)
    return number


def test_detect_twice_changes_nothing(db):
    _store(db)
    first = run_rules(db, AS_OF, full=True)
    before = _all_flags(db)
    changes = db.conn.total_changes
    second = run_rules(db, AS_OF + timedelta(hours=1), full=True)
    assert first.raised > 0 and (second.raised, second.resolved) == (0, 0)
    assert _all_flags(db) == before
    assert db.conn.total_changes - changes < 10  # only the watermarks in meta, no flag row rewritten


def test_flag_that_no_longer_holds_is_resolved_then_reactivated(db):
    _store(db)
    run_rules(db, AS_OF)
    assert "delivered_not_received" in codes_of(db, "DNR")
    add_order(
        db,
        "DNR",
        received="yes",
        number=db.conn.execute("SELECT tracking_number FROM orders WHERE order_id = 'DNR'").fetchone()[0],
    )
    later = AS_OF + timedelta(days=1)
    result = run_rules(db, later)
    assert result.resolved == 1 and result.order_ids == {"DNR"}
    row = flags_of(db, "DNR", active=False)[("DNR", "delivered_not_received")]
    assert row["resolved_at"] == "2026-10-12T08:00:00Z"  # kept, with the time it stopped holding

    add_order(
        db,
        "DNR",
        received="no",
        number=db.conn.execute("SELECT tracking_number FROM orders WHERE order_id = 'DNR'").fetchone()[0],
    )
    again = AS_OF + timedelta(days=2)
    result = run_rules(db, again)
    row = flags_of(db, "DNR")[("DNR", "delivered_not_received")]
    assert result.raised == 1 and row["resolved_at"] is None and row["detected_at"] == "2026-10-13T08:00:00Z"
    assert db.conn.execute("SELECT count(*) FROM flags WHERE order_id = 'DNR'").fetchone()[0] == 1


def test_incremental_examines_only_changed_orders_and_their_cluster(db):
    number = _store(db)
    first = run_rules(db, AS_OF)
    assert first.order_ids == {"DNR", "R1", "R2", "OK"}
    assert run_rules(db, AS_OF + timedelta(hours=1)).order_ids == set()  # nothing changed

    ok_number = db.conn.execute("SELECT tracking_number FROM orders WHERE order_id = 'OK'").fetchone()[0]
    with db.conn:
        insert_events(
            db,
            [
                {
                    "tracking_number": ok_number,
                    "occurred_at": at(400),
                    "status": "delivered",
                    "description": "signed again",
                    "source": "import",
                }
            ],
        )
    assert run_rules(db, AS_OF + timedelta(hours=2)).order_ids == {"OK"}

    add_order(db, "R1", buyer="B1", number=number, received="no")  # one member of the reuse cluster changes
    assert run_rules(db, AS_OF + timedelta(hours=3)).order_ids == {"R1", "R2"}


def test_new_message_re_examines_its_order(db):
    _store(db)
    run_rules(db, AS_OF)
    with db.conn:
        db.conn.execute(
            "INSERT INTO messages (order_id, sender, sent_at, text, message_key) VALUES "
            "('OK', 'seller', ?, 'please confirm receipt now, boss will punish me', 'k1')",
            [at(50)],
        )
    result = run_rules(db, AS_OF + timedelta(hours=1))
    assert result.order_ids == {"OK"} and "seller_pressure" in codes_of(db, "OK")


def test_corrected_number_leaves_the_reuse_cluster(db):
    _store(db)
    run_rules(db, AS_OF)
    assert "tracking_reused" in codes_of(db, "R2")
    fresh = add_order(db, "R1", buyer="B1", number=s10_number())
    add_journey(db, fresh)
    result = run_rules(db, AS_OF + timedelta(hours=1))
    assert "R2" in result.order_ids
    assert "tracking_reused" not in codes_of(db, "R1") | codes_of(db, "R2")


def test_grace_deadline_passing_is_noticed_without_new_data(db):
    number = add_order(db, "NM")
    add_journey(db, number, STANDARD[:1])
    run_rules(db, T0 + timedelta(days=5))
    assert codes_of(db, "NM") == set()
    result = run_rules(db, T0 + timedelta(days=25))  # no data changed; only time passed
    assert result.order_ids == {"NM"} and "no_tracking_progress" in codes_of(db, "NM")
    assert run_rules(db, T0 + timedelta(days=26)).order_ids == set()


def test_as_of_makes_runs_reproducible(tmp_path):
    stores = []
    for name in ("a", "b"):
        db = open_db(tmp_path / f"{name}.db")
        _store(db)
        run_rules(db, AS_OF)
        stores.append([(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in _all_flags(db)])
        db.close()
    assert stores[0] == stores[1] and stores[0]
    assert {r[5] for r in stores[0]} == {"2026-10-11T08:00:00Z"}  # detected_at is the run's as_of


def test_an_earlier_as_of_re_examines_everything(db):
    number = add_order(db, "NM")
    add_journey(db, number, STANDARD[:1])
    run_rules(db, T0 + timedelta(days=25))
    assert "no_tracking_progress" in codes_of(db, "NM")
    result = run_rules(db, T0 + timedelta(days=5))
    assert result.order_ids == {"NM"} and "no_tracking_progress" not in codes_of(db, "NM")


def test_changed_thresholds_re_examine_everything(db, tmp_path, monkeypatch):
    _store(db)
    run_rules(db, AS_OF)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "rules.toml").write_text("[delivered_not_received]\ndepot_grace_days = 60\n")
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path / "cfg"))
    config.reload()
    try:
        result = run_rules(db, AS_OF + timedelta(hours=1))
        assert result.order_ids == {"DNR", "R1", "R2", "OK"}
        assert "delivered_not_received" not in codes_of(db, "DNR")
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        config.reload()


def test_evidence_is_json_with_event_ids(db):
    _store(db)
    run_rules(db, AS_OF)
    for row in flags_of(db).values():
        evidence = json.loads(row["evidence"])
        assert isinstance(evidence.get("event_ids"), list)
        assert row["rule_version"] and row["severity"] in ("low", "medium", "high")
