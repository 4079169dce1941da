"""The world's data files (data/world/*.toml) hold together: a user editing them gets a clear failure here."""

from __future__ import annotations

import random
import re

import pytest

from tracker.config import load
from tracker.events import NORMALISED_STATUSES
from tracker.world import FRAUD_PATTERNS, LOOKALIKE_PATTERNS, canonical_city, canonical_postcode
from tracker.world.generator import _respace
from tracker.world.journeys import stages
from tracker.world.messages import PRESSURE_KINDS, MessageWriter
from tracker.world.places import make_postcode, places

CAINIAO_CODES = {
    "GWMS_ACCEPT", "PU_PICKUP_SUCCESS", "SC_INBOUND_SUCCESS", "SC_OUTBOUND_SUCCESS", "CC_EX_START",
    "CC_EX_SUCCESS", "LH_HO_IN_SUCCESS", "LH_DEPART", "LH_ARRIVE", "CC_IM_START", "CC_IM_SUCCESS",
    "GTMS_ACCEPT", "GTMS_DO_ARRIVE", "GTMS_DO_DEPART", "GTMS_SIGNED", "GTMS_DEL_FAILURE",
}  # fmt: skip
COMPUTED_SLOTS = {"tracking", "digits4", "handle"}


def test_postcode_ranges_fit_their_country_format():
    for country in places().countries:
        digits = country.postcode_format.count("#")
        for city in country.cities:
            for lo, hi in city.ranges:
                assert 0 <= lo <= hi < 10**digits, (country.code, city.name)


@pytest.mark.parametrize("country", places().countries, ids=lambda c: c.code)
def test_every_written_form_of_a_postcode_normalises_back(country):
    rng = random.Random(country.code)
    letters = places().letters.get(country.code)
    for city in country.cities:
        for _ in range(20):
            pc = (
                make_postcode(rng, country.postcode_format, city, letters)
                if letters
                else make_postcode(rng, country.postcode_format, city)
            )
            canonical = canonical_postcode(country.code, pc)
            assert canonical.isalnum()
            for written in (_respace(rng, pc), pc.lower(), f"{country.code}-{pc}", f"{country.code} {pc}"):
                assert canonical_postcode(country.code.lower(), written) == canonical, (pc, written)
        for alias in city.aliases:
            assert canonical_city(country.code, alias.upper()) == city.name


def test_hubs_are_not_buyer_cities():
    # A hub scan in the buyer's own city would look like a delivery office with the wrong postcode.
    for country in places().countries:
        assert country.hub_city not in {c.name for c in country.cities}


def test_stages_use_canonical_codes_statuses_and_texts():
    line, extras = stages()
    carriers = set(load("world/rates")["carriers"])
    for stage in (*line, *extras.values()):
        assert stage.code in CAINIAO_CODES
        assert stage.status in NORMALISED_STATUSES
        assert carriers <= set(stage.texts), stage.code
        assert all(stage.texts[c] for c in carriers)
    assert line[0].code == "GWMS_ACCEPT" and line[-1].code == "GTMS_SIGNED"


def test_message_templates_only_use_known_slots():
    writer = MessageWriter()
    known = set(writer.slots) | COMPUTED_SLOTS | {"days_n"}
    for kind, templates in writer.templates.items():
        assert templates, kind
        for template in templates:
            for slot in re.findall(r"\{(\w+)\}", template):
                assert slot in known, (kind, slot)
    for kind in PRESSURE_KINDS:
        assert len(writer.templates[kind]) >= 4


def test_pressure_messages_are_varied_and_name_no_template_slots():
    writer = MessageWriter()
    rng = random.Random(1)
    texts = {
        writer.write(rng, kind, tracking="LP00123456789012") for kind in PRESSURE_KINDS for _ in range(50)
    }
    assert len(texts) > 180
    assert not any("{" in t or "}" in t for t in texts)


def test_rates_name_every_pattern_once():
    rates = load("world/rates")
    assert tuple(rates["fraud"]) == FRAUD_PATTERNS
    assert tuple(f"lookalike_{k}" for k in rates["lookalike"]) == LOOKALIKE_PATTERNS
    assert 0.02 < sum(rates["fraud"].values()) < 0.06
    assert abs(sum(rates["carriers"].values()) - 1) < 1e-9


def test_a_user_override_changes_the_world(tmp_path, monkeypatch):
    from collections import Counter

    from tracker import config
    from tracker.world import generate

    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "rates.toml").write_text("[fraud]\nnever_moves = 0.05\n")
    (tmp_path / "world" / "places.toml").write_text(
        '[countries.RU]\ncities = [{ name = "Moscow", weight = 1, postcodes = [[101000, 101999]], aliases = ["Moskwa"] }]\n'
    )
    before = Counter(lab["pattern"] for lab in generate(1000, seed=3).labels)["never_moves"]
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path))
    config.reload()
    try:
        after = generate(1000, seed=3)
        assert Counter(lab["pattern"] for lab in after.labels)["never_moves"] > 3 * max(1, before)
        assert canonical_city("RU", "moskwa") == "Moscow"
        ru = [o for o in after.orders if o["dest_country"].upper() == "RU"]
        assert ru and {canonical_city("RU", o["dest_city"]).title() for o in ru} == {"Moscow"}
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        config.reload()
    assert canonical_city("RU", "moskwa") == "moskwa"
