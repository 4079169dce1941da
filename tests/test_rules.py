"""Each rule: its positive case and each of its innocent look-alikes (DOMAIN.md section 2)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_rules_builders import (
    STANDARD,
    T0,
    add_journey,
    add_message,
    add_order,
    at,
    codes_of,
    flags_of,
    s10_number,
)

from detectors.rules import BUILTIN_RULES, all_rules
from tracker.detection.flagging import run_rules

AS_OF = T0 + timedelta(days=40)


def detect(db, as_of=AS_OF, full=True):
    return run_rules(db, as_of, full=full)


def test_every_contract_code_has_one_registered_rule():
    codes = [r.code for r in all_rules()]
    assert codes[: len(BUILTIN_RULES)] == list(BUILTIN_RULES)
    assert len(set(codes)) == len(codes)
    assert all(r.severity in ("low", "medium", "high") and r.version for r in all_rules())


def test_honest_order_gets_no_flag(db):
    number = add_order(db, "O1", confirmed=at(330), received="yes")
    add_journey(db, number)
    add_message(db, "O1", "Dear friend, your order has been shipped, it take 15-30 days, please be patient.")
    detect(db)
    assert codes_of(db, "O1") == set()


# ---- invalid_tracking_number ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, reason",
    [
        ("RR123456780CN", "check digit"),
        ("JJ473124829CN", "reserved letter"),
        ("RR473124829XX", "no real issuing country"),
        ("1Z999AA10123456785", "check digit is 5, expected 4"),
    ],
)
def test_invalid_number_is_flagged_with_the_reason(db, number, reason):
    add_order(db, "O1", number=number)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "invalid_tracking_number")]
    assert reason in flag["explanation"] and number in flag["explanation"]
    assert flag["severity"] == "high"


@pytest.mark.parametrize(
    "number", ["LP00123456789012", "YT1234567890123456", "1Z999AA10123456784", "rr 473124829 cn"]
)
def test_valid_formats_are_not_invalid(db, number):
    add_order(db, "O1", number=number.replace(" ", "").upper())
    detect(db)
    assert "invalid_tracking_number" not in codes_of(db, "O1")


def _not_found(db, number, count, state="not_found"):
    with db.conn:
        db.conn.execute(
            "INSERT OR REPLACE INTO shipments (tracking_number, state, not_found_count) VALUES (?,?,?)",
            [number, state, count],
        )


def test_carrier_not_found_after_grace_is_invalid(db):
    number = add_order(db, "O1")
    _not_found(db, number, 5)
    detect(db, T0 + timedelta(days=25))
    flag = flags_of(db, "O1")[("O1", "invalid_tracking_number")]
    assert "not found" in flag["explanation"] and flag["severity"] == "medium"


def test_one_failed_fetch_or_early_not_found_is_not_invalid(db):
    a = add_order(db, "O1")
    _not_found(db, a, 1, state="pending")  # one not-found answer: never enough
    b = add_order(db, "O2")
    _not_found(db, b, 5)
    detect(db, T0 + timedelta(days=5))  # still within the grace period (first scans lag 3-15 days)
    assert "invalid_tracking_number" not in codes_of(db, "O1") | codes_of(db, "O2")


# ---- tracking_reused -----------------------------------------------------------------------------


def test_number_on_many_buyers_is_reused_with_the_cluster_as_evidence(db):
    number = s10_number()
    for i in range(4):
        add_order(db, f"O{i}", buyer=f"B{i}", number=number, ordered=at(-24 * (i + 1)), postcode=f"10100{i}")
    add_journey(db, number, order_place=("Moscow", "101000", "RU"))
    detect(db)
    for i in range(4):
        flag = flags_of(db, f"O{i}")[(f"O{i}", "tracking_reused")]
        evidence = json.loads(flag["evidence"])
        assert evidence["reuse_cluster"] == ["O0", "O1", "O2", "O3"]
        assert f"O{i}" not in evidence["other_orders"] and len(evidence["other_orders"]) == 3
        assert flag["severity"] == "high" and "4 different buyers" in flag["explanation"]


def test_two_buyers_sharing_a_number_is_medium(db):
    number = s10_number()
    add_order(db, "O1", buyer="B1", number=number)
    add_order(db, "O2", buyer="B2", number=number, postcode="190000", city="Saint Petersburg")
    detect(db)
    assert flags_of(db, "O1")[("O1", "tracking_reused")]["severity"] == "medium"


def test_one_buyers_consolidated_orders_are_not_reuse(db):
    number = s10_number()
    for i in range(3):
        add_order(db, f"O{i}", buyer="B1", number=number, ordered=at(-24 * 4 + 30 * i))
    add_journey(db, number)
    detect(db)
    assert all("tracking_reused" not in codes_of(db, f"O{i}") for i in range(3))


def test_same_address_under_two_accounts_within_days_is_consolidation(db):
    number = s10_number()
    add_order(db, "O1", buyer="B1", number=number, postcode="RU-101000")
    add_order(db, "O2", buyer="B2", number=number, postcode="101 000", ordered=at(-30))
    detect(db)
    assert "tracking_reused" not in codes_of(db, "O1") | codes_of(db, "O2")


def test_same_buyer_months_apart_is_reuse(db):
    number = s10_number()
    add_order(db, "O1", buyer="B1", number=number, ordered=at(-24 * 90))
    add_order(db, "O2", buyer="B1", number=number)
    detect(db)
    assert "tracking_reused" in codes_of(db, "O2")


# ---- wrong_destination ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dest, what",
    [
        (("Kazan", "420066", "RU"), "Kazan 420066"),
        (("Moscow", "101368", "RU"), "Moscow 101368"),  # the buyer's city, another postcode
        (("Warsaw", "00-001", "PL"), "Warsaw 00-001, PL"),
    ],
)
def test_delivered_elsewhere_is_wrong_destination(db, dest, what):
    number = add_order(db, "O1", received="no")
    add_journey(db, number, dest=dest, snapshot="ab" * 32)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "wrong_destination")]
    assert flag["explanation"].startswith(f"delivered in {what}")
    assert "the order ships to Moscow 101000, RU" in flag["explanation"]
    evidence = json.loads(flag["evidence"])
    assert evidence["event_ids"] and evidence["snapshot_sha256"] == ["ab" * 32]


@pytest.mark.parametrize(
    "country, city, postcode",
    [
        ("ru", "MOSCOW", "101000"),
        ("RU", "moscow", "101 000"),
        ("RU", "Moscow", "RU-101000"),
        ("RU", "Moscow", "ru 101000"),
        ("RU", "Moskva", "101000"),  # another spelling; the postcode agrees
        ("RU", "Москва", None),  # another script: no verdict without a postcode
        ("RU", None, "101-000"),
    ],
)
def test_address_written_another_way_is_not_wrong_destination(db, country, city, postcode):
    number = add_order(db, "O1", country=country, city=city, postcode=postcode)
    add_journey(db, number)
    detect(db)
    assert "wrong_destination" not in codes_of(db, "O1")


def test_city_with_accents_and_case_matches(db):
    number = add_order(db, "O1", country="es", city="MALAGA", postcode=None)
    add_journey(db, number, order_place=("Málaga", "", "ES"))
    detect(db)
    assert "wrong_destination" not in codes_of(db, "O1")


def test_us_zip_plus_four_matches_the_zip(db):
    number = add_order(db, "O1", country="US", city="New York", postcode="10001-1234")
    add_journey(db, number, order_place=("New York", "10001", "US"))
    detect(db)
    assert "wrong_destination" not in codes_of(db, "O1")


def test_origin_and_transit_scans_do_not_count(db):
    # the parcel passes Guangzhou and Podolsk: only the delivery office's scans are held to the address
    number = add_order(db, "O1")
    add_journey(db, number)
    detect(db)
    assert "wrong_destination" not in codes_of(db, "O1")


def test_import_customs_in_another_country_counts(db):
    number = add_order(db, "O1", country="ES", city="Madrid", postcode="28013")
    add_journey(db, number, STANDARD[:8], order_place=("Madrid", "28013", "ES"))
    with db.conn:  # the import scans happened in Russia, not Spain
        db.conn.execute(
            "UPDATE tracking_events SET country = 'RU' WHERE raw_code IN ('CC_IM_SUCCESS', 'GTMS_ACCEPT')"
        )
    detect(db)
    assert "wrong_destination" in codes_of(db, "O1")


def test_usps_number_routed_to_another_zip(db):
    from detectors.tracking_numbers import mod10_31_check_digit

    body = "940011189922319742812"
    number = f"42090210{body}{mod10_31_check_digit(body)}"
    add_order(db, "O1", number=number, country="US", city="New York", postcode="10001")
    detect(db)
    flag = flags_of(db, "O1")[("O1", "wrong_destination")]
    assert "ZIP 90210" in flag["explanation"] and "ZIP 10001" in flag["explanation"]


# ---- accepted_before_order -----------------------------------------------------------------------


def test_first_scan_days_before_the_order(db):
    number = add_order(db, "O1", ordered=at(24 * 5), shipped=at(24 * 5 + 2))
    add_journey(db, number)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "accepted_before_order")]
    assert "days before the order was placed on 2026-09-06 08:00 UTC" in flag["explanation"]
    assert "2026-09-01 10:00 UTC" in flag["explanation"]  # the first scan's time


def test_time_zone_slack_is_not_before_order(db):
    number = add_order(db, "O1", ordered=at(10), shipped=at(11))  # first scan 8 hours "before" the order
    add_journey(db, number)
    detect(db)
    assert "accepted_before_order" not in codes_of(db, "O1")


# ---- impossible_transit --------------------------------------------------------------------------

FAKE_FAST = [
    ("GWMS_ACCEPT", "info_received", 1, "origin"),
    ("GTMS_ACCEPT", "in_transit", 6, "hub"),
    ("GTMS_DO_ARRIVE", "in_transit", 20, "dest"),
    ("GTMS_SIGNED", "delivered", 30, "dest"),
]


def test_delivered_in_a_day_without_customs_is_impossible(db):
    number = add_order(db, "O1")
    add_journey(db, number, FAKE_FAST)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "impossible_transit")]
    assert "1.2 days after shipping" in flag["explanation"] and "CN to RU" in flag["explanation"]
    assert "no express chain of export customs, line-haul and import customs scans" in flag["explanation"]


def test_delivered_with_no_in_transit_scan(db):
    number = add_order(db, "O1")
    add_journey(
        db, number, [("GWMS_ACCEPT", "info_received", 1, "origin"), ("GTMS_SIGNED", "delivered", 30, "dest")]
    )
    detect(db)
    assert "no in-transit scan" in flags_of(db, "O1")[("O1", "impossible_transit")]["explanation"]


def test_express_with_full_customs_scans_is_not_impossible(db):
    number = add_order(db, "O1")
    express = [(c, s, h * 0.3, w) for c, s, h, w in STANDARD]  # ~4 days -> ~1.3 days, every scan shown
    add_journey(db, number, express)
    detect(db)
    assert "impossible_transit" not in codes_of(db, "O1")


def test_domestic_warehouse_is_not_impossible(db):
    number = add_order(db, "O1")
    add_journey(
        db,
        number,
        [
            ("PU_PICKUP_SUCCESS", "in_transit", 2, "dest"),
            ("GTMS_DO_ARRIVE", "in_transit", 14, "dest"),
            ("GTMS_SIGNED", "delivered", 26, "dest"),
        ],
    )
    detect(db)
    assert "impossible_transit" not in codes_of(db, "O1")


def test_untracked_mail_with_hidden_scans_is_not_impossible(db):
    number = add_order(db, "O1", received="yes")
    add_journey(
        db,
        number,
        [
            ("GTMS_DO_ARRIVE", "in_transit", 24 * 18, "dest"),
            ("GTMS_SIGNED", "delivered", 24 * 18 + 5, "dest"),
        ],
    )
    detect(db)
    assert "impossible_transit" not in codes_of(db, "O1")


# ---- delivered_not_received ----------------------------------------------------------------------


def test_delivered_but_buyer_says_no(db):
    number = add_order(db, "O1", received="no")
    add_journey(db, number, snapshot="cd" * 32)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "delivered_not_received")]
    assert "delivered in Moscow 101000, RU on 2026-09-14 10:00 UTC" in flag["explanation"]
    assert json.loads(flag["evidence"])["snapshot_sha256"] == ["cd" * 32]


def test_depot_early_delivered_scan_waits_for_the_grace(db):
    number = add_order(db, "O1", received="no")
    add_journey(db, number)  # delivered 314 h after shipping
    detect(db, T0 + timedelta(hours=314 + 24))
    assert "delivered_not_received" not in codes_of(db, "O1")
    detect(db, T0 + timedelta(hours=314 + 24 * 4))
    assert "delivered_not_received" in codes_of(db, "O1")


def test_buyer_who_received_is_not_flagged(db):
    number = add_order(db, "O1", received="yes")
    add_journey(db, number)
    detect(db)
    assert "delivered_not_received" not in codes_of(db, "O1")


def test_delivered_right_after_a_dispute_is_noted(db):
    number = add_order(db, "O1", received="no")
    add_journey(db, number)
    with db.conn:
        db.conn.execute(
            "INSERT INTO cases (order_id, status, category, opened_at, updated_at, dispute_opened_at) "
            "VALUES ('O1', 'new', 'trade_rules', ?, ?, ?)",
            [at(0), at(0), at(300)],
        )
    detect(db)
    flag = flags_of(db, "O1")[("O1", "delivered_not_received")]
    assert "14 hours after the dispute opened on 2026-09-13 20:00 UTC" in flag["explanation"]


# ---- early_confirmation --------------------------------------------------------------------------


def test_confirmed_days_before_delivery(db):
    number = add_order(db, "O1", confirmed=at(24 * 5))
    add_journey(db, number)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "early_confirmation")]
    assert (
        "confirmed receipt on 2026-09-06 08:00 UTC, 8.1 days before the first delivered scan"
        in flag["explanation"]
    )


def test_confirmed_with_no_delivered_scan_soon_after_shipping(db):
    number = add_order(db, "O1", confirmed=at(24 * 4))
    add_journey(db, number, STANDARD[:5])
    detect(db)
    assert "no delivered scan" in flags_of(db, "O1")[("O1", "early_confirmation")]["explanation"]


def test_doorstep_confirmation_minutes_before_the_scan(db):
    number = add_order(db, "O1", confirmed=at(314 - 0.5), received="yes")
    add_journey(db, number)
    detect(db)
    assert "early_confirmation" not in codes_of(db, "O1")


def test_untracked_last_mile_confirmation_is_not_early(db):
    # re-labelled in the destination country: tracking ends at the hub, the buyer confirms two weeks later
    number = add_order(db, "O1", confirmed=at(24 * 16))
    add_journey(db, number, STANDARD[:8])
    detect(db)
    assert "early_confirmation" not in codes_of(db, "O1")


# ---- seller_pressure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Dear friend, please confirm receipt now, our shop need the money. We give you 5$ coupon.",
        "Hello, pls comfirm the order today, the parcel is arrive soon",
        "Dear, please close the dispute and we refund you by paypal, it is faster.",
        "Please cancel the refund request, we will resend the item, 100% guarantee.",
        "Dont refund on aliexpress, add my whatsapp +86 135 1234 5678",
    ],
)
def test_pressure_messages_are_flagged_and_quoted(db, text):
    number = add_order(db, "O1")
    add_journey(db, number)
    add_message(db, "O1", text)
    detect(db)
    flag = flags_of(db, "O1")[("O1", "seller_pressure")]
    assert text[:40].split(",")[0] in flag["explanation"]
    assert json.loads(flag["evidence"])["message_ids"]


@pytest.mark.parametrize(
    "text",
    [
        "Dear friend, your parcel is delivered. If you are satisfied please leave us 5 stars feedback, thank you!",
        "Hello, if you have any problem please contact us before opening a dispute, we will solve it for you.",
        "Dear, any question please send us message, we reply in 24 hours. Please don't open dispute directly.",
        "Sorry for the delay, the flight is delayed, please be patient, the goods will arrive very soon.",
        "Your order has been shipped, tracking number is RR123456785CN. It take 15-30 days to arrive.",
    ],
)
def test_honest_seller_messages_are_not_pressure(db, text):
    number = add_order(db, "O1")
    add_journey(db, number)
    add_message(db, "O1", text)
    detect(db)
    assert "seller_pressure" not in codes_of(db, "O1")


def test_buyer_messages_are_never_seller_pressure(db):
    number = add_order(db, "O1")
    add_journey(db, number)
    add_message(db, "O1", "please confirm you will refund by paypal", sender="buyer")
    detect(db)
    assert "seller_pressure" not in codes_of(db, "O1")


def test_phrase_baseline_when_the_model_is_missing(db, monkeypatch, tmp_path):
    from tracker.detection import registry

    monkeypatch.setattr(registry, "MESSAGE_MODEL_PATH", tmp_path / "no_such_model.joblib")
    registry.forget_message_model()  # (the failed load caches nothing: the real model loads again after this)
    number = add_order(db, "O1")
    add_journey(db, number)
    add_message(db, "O1", "please confirm receipt now, the boss will punish me")
    detect(db)
    flag = flags_of(db, "O1")[("O1", "seller_pressure")]
    assert json.loads(flag["evidence"])["method"] == "phrases"


def test_seller_pressure_reports_the_same_whatever_order_the_messages_come_in():
    """The store hands the seller messages over in no particular order: the rule's findings do not depend on it."""
    import random
    from datetime import UTC, datetime

    import pandas as pd

    from detectors.rules import RuleContext
    from detectors.rules import seller_pressure as rule
    from tracker.detection import registry

    texts = ["please confirm receipt now", "pls comfirm the order today", "your parcel is shipped",
             "close the dispute and we refund by paypal", "please confirm receipt now"]
    rows = [(i + 1, f"O{i % 4}", 2461000.0 + i / 7, texts[i % len(texts)]) for i in range(23)]
    found = []
    for seed in range(3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        messages = pd.DataFrame(shuffled, columns=["id", "order_id", "sent_jd", "text"])
        ctx = RuleContext(datetime(2026, 11, 1, tzinfo=UTC), {}, orders=pd.DataFrame(), seller_messages=messages,
                          pressure=registry.message_pressure)
        found.append([(f.order_id, f.explanation, f.evidence) for f in rule.check(ctx)])
    assert found[0] and found[0] == found[1] == found[2]


# ---- no_tracking_progress ------------------------------------------------------------------------


def test_only_label_created_weeks_after_shipping(db):
    number = add_order(db, "O1")
    add_journey(db, number, STANDARD[:1])
    detect(db, T0 + timedelta(days=25))
    flag = flags_of(db, "O1")[("O1", "no_tracking_progress")]
    assert "no physical carrier scan within the 20-day grace period" in flag["explanation"]


def test_late_first_scan_within_grace_is_not_flagged(db):
    number = add_order(db, "O1")
    add_journey(db, number, STANDARD[:1])
    detect(db, T0 + timedelta(days=12))  # honest first scans lag 3-15 days
    assert "no_tracking_progress" not in codes_of(db, "O1")


def test_stuck_at_the_sorting_centre_for_a_month(db):
    number = add_order(db, "O1")
    add_journey(db, number, STANDARD[:3])
    detect(db, T0 + timedelta(days=40))
    assert "no scan for 38 days (more than 30)" in flags_of(db, "O1")[("O1", "no_tracking_progress")]["explanation"]


def test_tracking_ending_at_a_handover_is_not_stuck(db):
    number = add_order(db, "O1")
    add_journey(db, number, STANDARD[:5])  # handed to the airline; cheap mail is untracked from there
    detect(db, T0 + timedelta(days=60))
    assert "no_tracking_progress" not in codes_of(db, "O1")


def test_month_of_silence_then_delivered(db):
    number = add_order(db, "O1", received="no")
    journey = STANDARD[:7] + [
        ("GTMS_DO_ARRIVE", "in_transit", 180 + 24 * 35, "dest"),
        ("GTMS_SIGNED", "delivered", 185 + 24 * 35, "dest"),
    ]
    add_journey(db, number, journey)
    detect(db, T0 + timedelta(days=60))
    assert (
        "no scan for 35 days before delivery"
        in flags_of(db, "O1")[("O1", "no_tracking_progress")]["explanation"]
    )


def test_untracked_parcel_the_buyer_received(db):
    number = add_order(db, "O1", received="yes")
    add_journey(db, number, STANDARD[:1])
    detect(db, T0 + timedelta(days=40))
    assert "no_tracking_progress" not in codes_of(db, "O1")


def test_number_corrected_in_the_chat_is_followed(db):
    right = s10_number()
    typo = right[:4] + str((int(right[4]) + 1) % 10) + right[5:]
    add_order(db, "O1", number=typo, received="no")
    add_journey(db, right)
    add_message(db, "O1", f"Sorry dear, wrong tracking number before. New number: {right[:2]} {right[2:11]} {right[11:]}.")
    detect(db)
    codes = codes_of(db, "O1")
    assert "invalid_tracking_number" not in codes and "no_tracking_progress" not in codes
    assert "delivered_not_received" in codes  # judged on the corrected number's scans


def test_a_corrected_number_without_scans_is_not_followed(db):
    add_order(db, "O1", number="RR123456780CN")
    add_message(db, "O1", "the correct number is RR473124829CN")
    detect(db)
    assert "invalid_tracking_number" in codes_of(db, "O1")


def test_fast_validity_agrees_with_validate():
    import random

    from detectors.tracking_numbers import valid_many, validate

    rng = random.Random(3)
    numbers = [f"R{rng.choice('AJRSTB')}{rng.randrange(10**8):08d}{rng.randrange(10)}{rng.choice(['CN', 'XX', 'RU'])}"
               for _ in range(3000)]
    numbers += ["LP00123456789012", "YT1234567890123456", "1Z999AA10123456784", "1Z999AA10123456785", "HELLO", ""]
    # shapes off the fast path: other scripts' digits, lower case, spaces and a newline, near-misses in length
    numbers += ["RR١٢٣٤٥٦٧٨٥CN", "rr123456785cn", "RR 123 456 785 CN", "RR123456785CN\n", "LP0012345678901",
                "LP00123456789", "YT123456789012345", "ZZ123456785CN", "JJ123456785CN", "RR123456785C"]
    verdicts = valid_many(numbers)
    assert verdicts == [validate(n).valid for n in numbers]
    assert 0 < sum(verdicts) < len(numbers)


def test_cached_events_keep_each_repeated_text_once_and_the_same_values():
    """`RuleContext.events` hands back the records as the store gave them, each repeated text one object."""
    from datetime import UTC, datetime

    import pandas as pd

    from detectors.rules import RuleContext

    def records(numbers):  # noqa: ANN001, ANN202 - fresh text objects per record, as a cursor makes them
        return [{"id": i, "tracking_number": "".join(["LP", "001"]), "status": "".join(["deliv", "ered"]),
                 "city": "".join(["Ka", "zan"]) if i % 2 else None} for i in range(6) if "LP001" in numbers]

    ctx = RuleContext(datetime(2026, 11, 1, tzinfo=UTC), {}, orders=pd.DataFrame(), events=records)
    got = ctx.events(["LP001"])["LP001"]
    assert got == records({"LP001"})
    assert len({id(e["status"]) for e in got}) == 1 and len({id(e["city"]) for e in got if e["city"]}) == 1
    assert ctx.events(["LP001", ""]) == {"LP001": got}  # cached: asked again, the same records


def test_has_number_reads_a_categorical_column_as_its_text():
    import numpy as np
    import pandas as pd

    from detectors.view import has_number

    values = ["LP001", "", None, "RR123456785CN", "LP001", np.nan, ""]
    plain = has_number(pd.Series(values, dtype=object))
    assert plain.tolist() == [True, False, False, True, True, False, False]
    # what is not text is no number, whatever it compares to ('' included)
    odd = has_number(pd.Series([7, b"LP001", 0.0, np.str_("LP002"), "", pd.NA], dtype=object))
    assert odd.tolist() == [False, False, False, True, False, False]
    assert has_number(pd.Series([], dtype=object)).tolist() == []
    assert has_number(pd.Series(values, dtype="category")).tolist() == plain.tolist()


def test_route_maximum_bounds_every_origins_minimum():
    """impossible_transit looks at the events only of journeys shorter than `route_maximum` of their destination:
    no origin's `route_minimum` may exceed it, in either table's form of key."""
    from detectors.rules.impossible_transit import route_maximum, route_minimum

    postal = {("*", "*"): 5.0, ("CN", "RU"): 7.0, ("CN", "*"): 9.0, ("*", "BR"): 11.0, ("same", "same"): 2.0,
              ("DE", "DE"): 1.0}
    express = {f"{a}->{b}": v + 0.5 for (a, b), v in postal.items()}
    countries = ["", "CN", "RU", "BR", "DE", "US"]
    for routes in (postal, express, {}):
        for dest in countries:
            bound = route_maximum(routes, dest, 3.0)
            assert all(route_minimum(routes, origin, dest, 3.0) <= bound for origin in [*countries, "XX"])
    assert route_maximum(postal, "BR", 3.0) == 11.0 and route_maximum(postal, "RU", 3.0) == 9.0
