"""The world generator: determinism, the patterns it seeds, and the shape of what it writes."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pycountry
import pytest

from detectors.tracking_numbers import normalize_number, validate
from tracker.events import NORMALISED_STATUSES
from tracker.timeutil import parse_time
from tracker.world import (
    EVENT_COLUMNS,
    FRAUD_PATTERNS,
    LABEL_COLUMNS,
    LOOKALIKE_PATTERNS,
    MESSAGE_COLUMNS,
    ORDER_COLUMNS,
    canonical_city,
    canonical_postcode,
    generate,
)
from tracker.world.places import places

DEST_CODES = {"GTMS_DO_ARRIVE", "GTMS_DO_DEPART", "GTMS_SIGNED", "GTMS_DEL_FAILURE"}
# Honest orders whose numbers are deliberately not the parcel's (the seller fixes it in chat).
NOT_THE_PARCELS_NUMBER = {"lookalike_typo_number"}


@pytest.fixture(scope="module")
def world():
    return generate(3000, seed=7)


@pytest.fixture(scope="module")
def by_order(world):
    labels = {lab["order_id"]: lab for lab in world.labels}
    return [(o, labels[o["order_id"]]) for o in world.orders]


@pytest.fixture(scope="module")
def journeys(world):
    return world.journeys()


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = generate(400, seed=3), generate(400, seed=3), generate(400, seed=4)
    assert a.orders == b.orders and a.events == b.events and a.messages == b.messages and a.labels == b.labels
    assert a.orders != c.orders
    assert {o["tracking_number"] for o in a.orders} != {o["tracking_number"] for o in c.orders}


def test_every_pattern_and_lookalike_appears(world):
    seen = Counter(lab["pattern"] for lab in world.labels)
    for pattern in (*FRAUD_PATTERNS, *LOOKALIKE_PATTERNS, "honest"):
        assert seen[pattern] > 0, pattern


def test_labels_agree_with_pattern_names(world):
    for lab in world.labels:
        assert lab["fraud"] == (
            0 if lab["pattern"] == "honest" or lab["pattern"].startswith("lookalike_") else 1
        )


def test_fraud_rate_is_a_few_percent(world):
    rate = sum(lab["fraud"] for lab in world.labels) / len(world.labels)
    assert 0.02 <= rate <= 0.06


def test_a_minority_of_sellers_commits_most_fraud(by_order):
    per_seller: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for o, lab in by_order:
        per_seller[o["seller_id"]][0] += 1
        per_seller[o["seller_id"]][1] += lab["fraud"]
    crooks = {s for s, (n, f) in per_seller.items() if f / n >= 0.15}
    total_fraud = sum(f for _, f in per_seller.values())
    assert 0 < len(crooks) < 0.25 * len(per_seller)
    assert sum(per_seller[s][1] for s in crooks) > 0.7 * total_fraud


def test_nothing_happens_after_as_of(world, journeys):
    as_of = "2026-11-01T00:00:00Z"
    for o in world.orders:
        assert o["ordered_at"] <= as_of
        assert o["shipped_at"] <= as_of and o["buyer_confirmed_at"] <= as_of
        if not o["shipped_at"]:
            assert not o["tracking_number"]
    assert all(m["sent_at"] <= as_of for m in world.messages)
    numbers = {normalize_number(o["tracking_number"]) for o in world.orders}
    # every journey belongs to an order, except the real parcels behind fixed typos
    typo_fixed = {n for n in journeys if n not in numbers}
    assert len(typo_fixed) <= sum(1 for lab in world.labels if lab["pattern"] == "lookalike_typo_number")


def test_order_ids_unique_and_orders_complete(world):
    ids = [o["order_id"] for o in world.orders]
    assert len(ids) == len(set(ids)) == 3000
    for o in world.orders:
        assert set(o) == set(ORDER_COLUMNS)
        assert all(isinstance(v, str) for v in o.values())
        assert o["order_id"] and o["buyer_id"] and o["seller_id"] and o["ordered_at"] and o["dest_country"]
        assert 15 <= int(o["promised_days"]) <= 90


def test_honest_numbers_validate_and_invalid_ones_do_not(by_order):
    for o, lab in by_order:
        if not o["tracking_number"]:
            continue
        ok = validate(o["tracking_number"]).valid
        if lab["pattern"] in ("invalid_tracking_number", "lookalike_typo_number"):
            assert not ok, o["tracking_number"]
        else:
            assert ok, (lab["pattern"], o["tracking_number"])


def test_invalid_numbers_have_no_events(by_order, journeys):
    for o, lab in by_order:
        if lab["pattern"] == "invalid_tracking_number":
            assert normalize_number(o["tracking_number"]) not in journeys


def test_events_are_chronological_with_valid_statuses(world, journeys):
    for e in world.events:
        assert set(e) == set(EVENT_COLUMNS)
        assert e["status"] in NORMALISED_STATUSES
        assert e["raw_code"] and e["description"]
        assert e["occurred_at"] <= "2026-11-01T00:00:00Z"
        assert normalize_number(e["tracking_number"]) == e["tracking_number"]
    for scans in journeys.values():
        times = [e["occurred_at"] for e in scans]
        assert times == sorted(times)
        assert len(set(times)) == len(times)
        assert scans[0]["status"] == "info_received"
        delivered = [i for i, e in enumerate(scans) if e["status"] == "delivered"]
        assert delivered in ([], [len(scans) - 1])


def test_about_eight_events_per_order(world):
    assert 6 <= len(world.events) / len(world.orders) <= 10


def test_destination_scans_of_honest_orders_match_the_address(by_order, journeys):
    checked = 0
    for o, lab in by_order:
        if lab["fraud"] or lab["pattern"] in NOT_THE_PARCELS_NUMBER or not o["tracking_number"]:
            continue
        country = o["dest_country"].upper()
        for e in journeys.get(normalize_number(o["tracking_number"]), []):
            if e["raw_code"] in DEST_CODES:
                assert e["country"] == country
                assert e["city"] == canonical_city(country, o["dest_city"]), (lab["pattern"], o["dest_city"])
                assert canonical_postcode(country, e["postcode"]) == canonical_postcode(
                    country, o["dest_postcode"]
                )
                checked += 1
    assert checked > 1000


def test_wrong_destination_goes_elsewhere_including_same_city(by_order, journeys):
    kinds = Counter()
    for o, lab in by_order:
        if lab["pattern"] != "wrong_destination":
            continue
        country = o["dest_country"].upper()
        dest = [e for e in journeys[normalize_number(o["tracking_number"])] if e["raw_code"] in DEST_CODES]
        for e in dest:
            same_city = e["country"] == country and e["city"] == canonical_city(country, o["dest_city"])
            same_pc = canonical_postcode(country, e["postcode"]) == canonical_postcode(
                country, o["dest_postcode"]
            )
            assert not (same_city and same_pc)
            kinds[
                "other_country" if e["country"] != country else "same_city" if same_city else "other_city"
            ] += 1
    assert kinds["other_country"] and kinds["other_city"] and kinds["same_city"]


def test_reuse_clusters_span_buyers_and_consolidation_shares_one(by_order):
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for o, lab in by_order:
        if lab["pattern"] in ("tracking_reused", "lookalike_consolidated") and o["tracking_number"]:
            groups[(lab["pattern"], normalize_number(o["tracking_number"]))].add(o["buyer_id"])
    reused = [b for (p, _), b in groups.items() if p == "tracking_reused"]
    consolidated = [b for (p, _), b in groups.items() if p == "lookalike_consolidated"]
    assert reused and consolidated
    assert all(len(b) >= 3 for b in reused)
    assert all(len(b) == 1 for b in consolidated)


def test_honest_numbers_are_not_shared_across_buyers(by_order):
    buyers = defaultdict(set)
    for o, lab in by_order:
        if o["tracking_number"] and lab["pattern"] != "tracking_reused":
            buyers[normalize_number(o["tracking_number"])].add(o["buyer_id"])
    assert all(len(b) == 1 for b in buyers.values())


def _first_scan(journeys, o):
    scans = journeys.get(normalize_number(o["tracking_number"]))
    return scans[0]["occurred_at"] if scans else None


def test_timing_patterns(by_order, journeys):
    for o, lab in by_order:
        first = _first_scan(journeys, o)
        if first is None:
            continue
        ordered = parse_time(o["ordered_at"])
        lag_h = (parse_time(first) - ordered).total_seconds() / 3600
        if lab["pattern"] == "accepted_before_order":
            assert lag_h <= -48
        elif lab["pattern"] == "lookalike_timezone":
            assert -9 <= lag_h < 0
        elif not lab["fraud"]:
            assert lag_h > 0, (lab["pattern"], o["order_id"])


def _transit_days(scans):
    signed = [e for e in scans if e["status"] == "delivered"]
    if not signed:
        return None
    return (
        parse_time(signed[0]["occurred_at"]) - parse_time(scans[0]["occurred_at"])
    ).total_seconds() / 86400


def test_impossible_transit_is_fast_and_skips_customs_while_express_keeps_them(by_order, journeys):
    for o, lab in by_order:
        scans = journeys.get(normalize_number(o["tracking_number"]), [])
        days = _transit_days(scans)
        codes = {e["raw_code"] for e in scans}
        if lab["pattern"] == "impossible_transit" and days is not None:
            assert days <= 2.5
            assert not codes & {"CC_EX_SUCCESS", "CC_IM_SUCCESS", "LH_DEPART", "LH_ARRIVE"}
        if lab["pattern"] == "lookalike_express" and days is not None:
            assert 2.5 <= days <= 10
            assert {"CC_EX_SUCCESS", "CC_IM_SUCCESS", "LH_DEPART", "LH_ARRIVE"} <= codes


def test_honest_transit_takes_ten_to_twenty_five_days_typically(by_order, journeys):
    days = sorted(
        d
        for o, lab in by_order
        if lab["pattern"] == "honest"
        and (d := _transit_days(journeys.get(normalize_number(o["tracking_number"]), []))) is not None
    )
    median = days[len(days) // 2]
    assert 10 <= median <= 25
    assert days[0] > 3


def test_fast_sellers_are_consistently_faster(by_order, journeys):
    fast, honest = [], []
    for o, lab in by_order:
        d = _transit_days(journeys.get(normalize_number(o["tracking_number"]), []))
        if d is None:
            continue
        if lab["pattern"] == "fast_seller":
            fast.append(d)
        elif lab["pattern"] == "honest":
            honest.append(d)
    assert fast and min(fast) > 3  # above any hard route minimum
    assert sum(fast) / len(fast) < 0.75 * sum(honest) / len(honest)


def test_confirmation_patterns(by_order, journeys):
    for o, lab in by_order:
        scans = journeys.get(normalize_number(o["tracking_number"]), [])
        signed = [e["occurred_at"] for e in scans if e["status"] == "delivered"]
        if lab["pattern"] == "early_confirmation":
            assert o["buyer_confirmed_at"]
            assert not signed or o["buyer_confirmed_at"] < signed[0]
        if lab["pattern"] == "lookalike_doorstep_confirm" and signed:
            gap = (parse_time(signed[0]) - parse_time(o["buyer_confirmed_at"])).total_seconds()
            assert 0 < gap <= 3600
        if lab["pattern"] == "delivered_not_received" and signed:
            assert o["buyer_received"] == "no"
        if lab["pattern"] == "lookalike_depot_delivered" and signed:
            assert o["buyer_received"] == "yes" and o["buyer_confirmed_at"] > signed[0]


def test_returned_parcels_end_with_exception_then_returned(by_order, journeys):
    seen = 0
    for o, lab in by_order:
        if lab["pattern"] == "lookalike_returned":
            statuses = [e["status"] for e in journeys.get(normalize_number(o["tracking_number"]), [])]
            if "exception" in statuses:
                assert "delivered" not in statuses
                assert statuses[statuses.index("exception") :] in (["exception"], ["exception", "returned"])
                seen += 1
    assert seen


def test_never_moves_has_only_info_received(by_order, journeys):
    seen = 0
    for o, lab in by_order:
        if lab["pattern"] == "never_moves":
            scans = journeys[normalize_number(o["tracking_number"])]
            assert [e["status"] for e in scans] == ["info_received"]
            assert (datetime(2026, 11, 1, tzinfo=UTC) - parse_time(scans[0]["occurred_at"])).days >= 21
            seen += 1
    assert seen


def test_pressure_messages_on_early_confirmations_and_they_vary(world, by_order):
    chat = defaultdict(list)
    for m in world.messages:
        assert set(m) == set(MESSAGE_COLUMNS) and m["sender"] in ("buyer", "seller") and m["text"]
        chat[m["order_id"]].append(m)
    early = [o["order_id"] for o, lab in by_order if lab["pattern"] == "early_confirmation"]
    assert early
    texts = []
    for oid in early:
        seller = [m for m in chat[oid] if m["sender"] == "seller"]
        assert seller, oid
        texts += [m["text"] for m in seller]
    assert len(set(texts)) == len(texts)
    honest_chat = sum(1 for o, lab in by_order if lab["pattern"] == "honest" and chat[o["order_id"]])
    assert honest_chat > 300


def test_some_honest_messiness_is_present(world):
    assert any(o["dest_country"].islower() for o in world.orders)
    assert any(o["dest_city"].isupper() for o in world.orders)
    assert any(" " in o["tracking_number"] or o["tracking_number"].islower() for o in world.orders)
    assert any(o["carrier"] == "" for o in world.orders)


def test_carrier_shares(world, journeys):
    carriers = Counter(scans[0]["carrier"] for scans in journeys.values())
    total = sum(carriers.values())
    assert set(carriers) == {"cainiao", "chinapost", "yunexpress"}
    assert 0.35 < carriers["cainiao"] / total < 0.55
    assert 0.25 < carriers["chinapost"] / total < 0.45


def test_place_data_uses_real_country_codes_and_formats():
    table = places()
    assert len(table.countries) >= 8
    for country in table.countries:
        assert pycountry.countries.get(alpha_2=country.code) is not None
        assert pycountry.currencies.get(alpha_3=country.currency) is not None
        assert len(country.cities) >= 4
    assert pycountry.countries.get(alpha_2="CN") is not None


def test_postcodes_follow_each_country_format(world, journeys):
    import re

    formats = {c.code: c.postcode_format for c in places().countries}
    for scans in journeys.values():
        for e in scans:
            if e["country"] in formats:
                fmt = formats[e["country"]]
                pattern = (
                    "^"
                    + "".join("[0-9]" if ch == "#" else "[A-Z]" if ch == "A" else re.escape(ch) for ch in fmt)
                    + "$"
                )
                assert re.match(pattern, e["postcode"]), (e["country"], e["postcode"])


def test_canonical_helpers():
    assert canonical_postcode("PL", "PL-00950") == canonical_postcode("PL", "00-950") == "00950"
    assert canonical_postcode("US", "10001-1234") == "10001"
    assert canonical_postcode("NL", "1011 ab") == "1011AB"
    assert canonical_postcode("DE", "D-10115") == "10115"
    assert canonical_city("RU", "MOSKVA") == "Moscow"
    assert canonical_city("de", "munich") == "München"
    assert canonical_city("FR", "Somewhere") == "Somewhere"


def test_write_produces_contract_headers(tmp_path):
    w = generate(200, seed=11)
    paths = w.write(tmp_path)
    expected = {
        "orders": ORDER_COLUMNS,
        "events": EVENT_COLUMNS,
        "messages": MESSAGE_COLUMNS,
        "labels": LABEL_COLUMNS,
    }
    for kind, columns in expected.items():
        with open(paths[kind], encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert tuple(rows[0]) == columns
        assert len(rows) - 1 == len(getattr(w, kind))


def test_as_of_cuts_the_world():
    early = datetime(2026, 6, 1, tzinfo=UTC)
    w = generate(300, seed=5, as_of=early)
    assert w.as_of == early
    assert max(e["occurred_at"] for e in w.events) <= "2026-06-01T00:00:00Z"
    assert max(o["ordered_at"] for o in w.orders) <= "2026-06-01T00:00:00Z"
    assert min(o["ordered_at"] for o in w.orders) >= "2026-01-31T00:00:00Z"
    assert all(m["sent_at"] <= "2026-06-01T00:00:00Z" for m in w.messages)
    assert all(o["buyer_confirmed_at"] <= "2026-06-01T00:00:00Z" for o in w.orders)


@pytest.mark.parametrize("n", [0, 1, 3, 17])
def test_tiny_worlds_are_whole(n):
    w = generate(n, seed=1)
    assert len(w.orders) == len(w.labels) == n
    assert {o["order_id"] for o in w.orders} == {lab["order_id"] for lab in w.labels}


def test_negative_size_is_refused():
    with pytest.raises(ValueError):
        generate(-1)
