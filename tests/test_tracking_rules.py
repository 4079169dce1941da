"""The three tracking rules this issue reworked, on a real store: invalid_tracking_number by verdict,
no_tracking_progress after a hand-over, impossible_transit by service class."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_rules_builders import STANDARD, T0, add_journey, add_order, codes_of
from test_rules_builders import flags_of as stored_flags

from tracker.detection.flagging import load_settings, run_rules


def flags_of(db, order_id: str) -> dict:
    out = stored_flags(db, order_id)
    for flag in out.values():
        flag["evidence"] = json.loads(flag["evidence"])
    return out


def detect(db, days: float):
    return run_rules(db, T0 + timedelta(days=days), full=True)


# ---- invalid_tracking_number -------------------------------------------------------------------------------


def test_an_unknown_number_is_only_a_low_note_once_nothing_is_heard_after_the_grace_period(db):
    add_order(db, "O1", number="HELLO123", carrier=None)
    detect(db, 10)
    assert "invalid_tracking_number" not in codes_of(db, "O1")
    detect(db, 25)
    flag = flags_of(db, "O1")[("O1", "invalid_tracking_number")]
    assert flag["severity"] == "low" and "matches no known carrier format" in flag["explanation"]
    assert flag["evidence"]["verdict"] == "unknown"


def test_scans_prove_a_number_real(db):
    add_order(db, "O1", number="HELLO123", carrier=None)
    add_journey(db, "HELLO123")
    add_order(db, "O2", number="RR123456780CN")  # fails the S10 check, yet the carrier shows it moving
    add_journey(db, "RR123456780CN")
    detect(db, 40)
    assert "invalid_tracking_number" not in codes_of(db, "O1") | codes_of(db, "O2")


def test_an_invalid_number_is_high_and_names_the_format_it_claims(db):
    add_order(db, "O1", number="1Z999AA10123456785", carrier="ups")
    detect(db, 1)
    flag = flags_of(db, "O1")[("O1", "invalid_tracking_number")]
    assert flag["severity"] == "high" and "has the shape of UPS" in flag["explanation"]
    assert flag["evidence"]["format"] == "ups" and flag["evidence"]["verdict"] == "invalid"


def test_an_unknown_number_the_carrier_keeps_not_finding_is_medium(db):
    add_order(db, "O1", number="HELLO123", carrier=None)
    with db.conn:
        db.conn.execute("INSERT OR REPLACE INTO shipments (tracking_number, state, not_found_count) "
                        "VALUES ('HELLO123', 'not_found', 4)")
    detect(db, 25)
    flag = flags_of(db, "O1")[("O1", "invalid_tracking_number")]
    assert flag["severity"] == "medium" and "not found" in flag["explanation"]


def test_settings_carry_the_configured_carriers_patterns():
    patterns = load_settings()["invalid_tracking_number"]["carrier_patterns"]
    assert patterns["yunexpress"] == r"^YT\d{16}$" and "cainiao" in patterns


# ---- no_tracking_progress after a hand-over -----------------------------------------------------------------


@pytest.mark.parametrize("country, city, postcode, bound", [("ES", "Madrid", "28013", 45), ("RU", "Moscow", "101000", 60)])
def test_silence_after_a_handover_is_normal_only_up_to_the_routes_bound(db, country, city, postcode, bound):
    number = add_order(db, "O1", country=country, city=city, postcode=postcode)
    add_journey(db, number, STANDARD[:5], order_place=(city, postcode, country))  # ends at LH_DEPART, 90 h
    last = 90 / 24
    detect(db, last + bound - 1)
    assert "no_tracking_progress" not in codes_of(db, "O1")
    detect(db, last + bound + 1)
    flag = flags_of(db, "O1")[("O1", "no_tracking_progress")]
    assert f"no scan for {bound + 1} days" in flag["explanation"] and "Guangzhou" in flag["explanation"]
    assert flag["evidence"]["untracked_last_mile_days"] == bound and flag["evidence"]["route"] == f"CN->{country}"


def test_a_silent_parcel_the_buyer_received_is_not_flagged(db):
    number = add_order(db, "O1", received="yes")
    add_journey(db, number, STANDARD[:5])
    detect(db, 90)
    assert "no_tracking_progress" not in codes_of(db, "O1")


def test_the_bound_is_a_deadline_so_an_incremental_run_catches_it(db):
    number = add_order(db, "O1", country="ES", city="Madrid", postcode="28013")
    add_journey(db, number, STANDARD[:5], order_place=("Madrid", "28013", "ES"))
    detect(db, 35)
    due = db.conn.execute("SELECT due_at FROM rule_deadlines WHERE order_id = 'O1'").fetchone()[0]
    assert due == "2026-10-20T02:00:00Z"  # the last scan (LH_DEPART, 2026-09-05 02:00) + 45 days
    run_rules(db, T0 + timedelta(days=50), full=False)
    assert "no_tracking_progress" in codes_of(db, "O1")


# ---- impossible_transit by service class --------------------------------------------------------------------

FAKE = [("GWMS_ACCEPT", "info_received", 1, "origin"), ("GTMS_ACCEPT", "in_transit", 30, "hub"),
        ("GTMS_DO_ARRIVE", "in_transit", 60, "dest"), ("GTMS_SIGNED", "delivered", 72, "dest")]


def test_a_three_day_postal_delivery_to_spain_without_customs_is_impossible(db):
    place = ("Madrid", "28013", "ES")
    number = add_order(db, "O1", country="ES", city="Madrid", postcode="28013")
    add_journey(db, number, FAKE, order_place=place)
    detect(db, 20)
    flag = flags_of(db, "O1")[("O1", "impossible_transit")]
    assert "5-day postal minimum for CN to ES" in flag["explanation"]
    assert flag["evidence"]["service_class"] == "postal"


def test_express_with_its_whole_chain_is_held_to_the_express_minimum(db):
    place = ("Madrid", "28013", "ES")
    number = add_order(db, "O1", country="ES", city="Madrid", postcode="28013")
    add_journey(db, number, [(c, s, h * 72 / 314, w) for c, s, h, w in STANDARD], order_place=place)  # 3 days
    too_fast = add_order(db, "O2", country="ES", city="Madrid", postcode="28013")
    add_journey(db, too_fast, [(c, s, h * 24 / 314, w) for c, s, h, w in STANDARD], order_place=place)  # 1 day
    detect(db, 20)
    assert "impossible_transit" not in codes_of(db, "O1")
    flag = flags_of(db, "O2")[("O2", "impossible_transit")]
    assert "1.5-day express minimum" in flag["explanation"]
    assert "export customs, line-haul and import customs" in flag["evidence"]["express_because"]


def test_an_express_number_is_express_without_customs_codes(db):
    number = "EA473124829CN"  # S10 EMS
    add_order(db, "O1", number=number, country="ES", city="Madrid", postcode="28013")
    add_journey(db, number, FAKE, order_place=("Madrid", "28013", "ES"))
    detect(db, 20)
    assert "impossible_transit" not in codes_of(db, "O1")
