"""Carriers with numbers of their own in generated worlds (data/world/carriers.toml): FedEx, DHL, UPS, Amazon,
USPS, Canada Post, Royal Mail, Yodel, Landmark, and Cainiao's AE… and …Y forms."""

from __future__ import annotations

from collections import Counter

import pytest

from detectors.tracking_numbers import normalize_number, validate
from tracker.world import generate
from tracker.world.numbers import real_carriers
from tracker.world.places import canonical_postcode, places
from tracker.world.profiles import Profile

REAL = set(real_carriers())
SETTINGS = {
    "numbers": {"real_carrier_share": 0.6, "cainiao_forms": [0.4, 0.3, 0.3]},
    "countries": {"GB": 0.2, "CA": 0.15, "US": 0.2},
}


@pytest.fixture(scope="module")
def world():
    return generate(3000, seed=21, profile=Profile("test", settings=SETTINGS))


@pytest.fixture(scope="module")
def rows(world):
    labels = {lab["order_id"]: lab for lab in world.labels}
    # the carrier the generator chose: written on most orders (some are left empty or upper-cased)
    return [(o, labels[o["order_id"]]) for o in world.orders if o["tracking_number"]]


def _real_orders(rows):
    return [(o, lab) for o, lab in rows if o["carrier"].lower() in REAL]


def test_the_default_world_has_none():
    world = generate(1000, seed=21)
    assert not {o["carrier"].lower() for o in world.orders} & REAL
    fraud = {lab["order_id"] for lab in world.labels if lab["fraud"]}
    formats = {validate(o["tracking_number"]).best.format for o in world.orders
               if o["tracking_number"] and o["order_id"] not in fraud}
    assert formats <= {"cainiao_lp", "yunexpress", "yunexpress_long", "s10"}, formats


def test_every_carrier_turns_up_with_valid_numbers_of_its_own_formats(rows):
    seen = Counter()
    for o, lab in _real_orders(rows):
        if lab["fraud"]:
            continue
        carrier = o["carrier"].lower()
        v = validate(o["tracking_number"])
        assert v.valid, (carrier, o["tracking_number"])
        formats = set(real_carriers()[carrier].formats)
        assert {m.format for m in v.matches if m.valid} & ({f.split(":")[0] for f in formats}), (carrier, v.matches)
        seen[carrier] += 1
    assert set(seen) == REAL, seen


def test_carriers_deliver_only_where_they_serve(rows):
    for o, lab in _real_orders(rows):
        if lab["fraud"]:  # a reused number reaches buyers wherever they live
            continue
        carrier = real_carriers()[o["carrier"].lower()]
        assert carrier.serves(o["dest_country"].upper()), (carrier.name, o["dest_country"])


def test_numbers_are_unique_across_buyers_unless_the_scheme_shares_them(rows):
    buyers: dict[str, set[str]] = {}
    for o, lab in rows:
        if lab["pattern"] != "tracking_reused":
            buyers.setdefault(normalize_number(o["tracking_number"]), set()).add(o["buyer_id"])
    assert all(len(b) == 1 for b in buyers.values())


def test_routed_usps_numbers_carry_the_order_zip(rows):
    routed = 0
    for o, lab in rows:
        number = normalize_number(o["tracking_number"])
        if o["carrier"].lower() == "usps" and number.startswith("420") and not lab["fraud"]:
            best = validate(number).best
            assert best.dest_zip == canonical_postcode("US", o["dest_postcode"])[:5]
            routed += 1
    assert routed


def test_cainiao_numbers_take_every_form(rows):
    forms = Counter()
    for o, lab in rows:
        if o["carrier"].lower() == "cainiao" and not lab["fraud"]:
            formats = {m.format for m in validate(o["tracking_number"]).matches if m.valid}
            forms.update(formats & {"cainiao_lp", "cainiao_ae", "cainiao_y"})
    assert set(forms) == {"cainiao_lp", "cainiao_ae", "cainiao_y"}, forms


def test_their_scans_come_without_codes_in_their_own_words(world, rows):
    real_numbers = {normalize_number(o["tracking_number"]) for o, lab in _real_orders(rows)
                    if lab["pattern"] == "honest"}
    scans = [e for e in world.events if e["tracking_number"] in real_numbers]
    assert scans
    assert all(e["raw_code"] == "" and e["status"] for e in scans)
    words = {e["description"] for e in scans}
    assert "Cainiao" not in " ".join(words) and any("Export" in w or "export" in w for w in words)


def test_express_numbers_travel_fast_with_every_customs_scan(world, rows):
    by_number: dict[str, list[dict]] = {}
    for e in world.events:
        by_number.setdefault(e["tracking_number"], []).append(e)
    days = []
    for o, lab in _real_orders(rows):
        number = normalize_number(o["tracking_number"])
        best = validate(number).best
        scans = by_number.get(number, [])
        delivered = [e["occurred_at"] for e in scans if e["status"] == "delivered"]
        if lab["pattern"] == "honest" and best.express and delivered:
            from datetime import datetime

            first = datetime.fromisoformat(scans[0]["occurred_at"].replace("Z", "+00:00"))
            last = datetime.fromisoformat(delivered[0].replace("Z", "+00:00"))
            days.append((last - first).total_seconds() / 86400)
            assert any("export" in e["description"].lower() for e in scans)
            assert any("import" in e["description"].lower() for e in scans)
    assert days and sorted(days)[len(days) // 2] < 9


def test_invalid_numbers_of_their_formats_are_not_valid(rows):
    invalid = [o for o, lab in rows if lab["pattern"] == "invalid_tracking_number"]
    assert invalid and not any(validate(o["tracking_number"]).valid for o in invalid)
    assert any(o["carrier"].lower() in REAL for o in invalid)


def test_uk_and_canadian_buyers_have_postcodes_of_their_country(rows):
    for o, _lab in rows:
        country = o["dest_country"].upper()
        if country in ("GB", "CA") and o["dest_postcode"]:
            fmt = places().country(country).postcode_format
            assert len(canonical_postcode(country, o["dest_postcode"])) == len(fmt.replace(" ", ""))
