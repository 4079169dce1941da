"""wrong_destination's vectorised candidate mask (each column factorised once, every normalisation once per
distinct value) equals the rule's definition worked out row by row, on any mix of places, missing values and
packed scan places."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import places
from detectors.rules.wrong_destination import candidate_mask

COUNTRIES = ["RU", "ru ", "DE", "US", "", None, np.nan, "Br", "RU|Kazan"]
CITIES = ["Moscow", "Москва", "MOSCOW", "Kazan", "São Paulo", "Sao-Paulo", "Berlin", "", None, "AnHuiShengChiZhouShi",
          "Kazan|420066"]
POSTCODES = ["101000", "RU-101000", "10115", "DE-10115", "12345-6789", "12345", "", None, "01310 100"]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _reference(row: dict) -> bool:
    """The rule's definition for one order, as the per-row code stated it."""
    o_cc = places.normalize_country(_text(row["dest_country"]))
    o_city = places.normalize_city(_text(row["dest_city"]))
    o_latin = places.is_latin(_text(row["dest_city"]))
    o_pc = places.normalize_postcode(_text(row["dest_postcode"]), _text(row["dest_country"]))
    hit = False
    for col in ("country_side_min", "country_side_max"):
        s_cc = places.normalize_country(_text(row[col]))
        hit |= bool(o_cc and s_cc and o_cc != s_cc)
    for col in ("locality_min", "locality_max"):
        cc, city, pc = (_text(row[col]).split("|", 2) + ["", ""])[:3]
        s_cc, s_city, s_pc = places.normalize_country(cc), places.normalize_city(city), places.normalize_postcode(pc, cc)
        hit |= bool(o_cc and s_cc and o_cc != s_cc)
        both = bool(o_pc and s_pc)
        hit |= both and o_pc != s_pc
        hit |= (not both) and bool(o_city and s_city) and o_latin == places.is_latin(city) and o_city != s_city
    return hit


packed = st.one_of(st.none(), st.just(pd.NA), st.just(np.nan), st.builds(lambda c, t, p: f"{_text(c)}|{_text(t)}|{_text(p)}",
                                        st.sampled_from(COUNTRIES), st.sampled_from(CITIES), st.sampled_from(POSTCODES)),
                   st.sampled_from(["RU", "RU|Moscow", "|", "DE||10115"]))
rows = st.fixed_dictionaries({
    "dest_country": st.sampled_from(COUNTRIES), "dest_city": st.sampled_from(CITIES),
    "dest_postcode": st.sampled_from(POSTCODES),
    "country_side_min": st.sampled_from(COUNTRIES), "country_side_max": st.sampled_from(COUNTRIES),
    "locality_min": packed, "locality_max": packed,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=40))
def test_mask_equals_the_per_row_definition(records):
    frame = pd.DataFrame(records)
    got = candidate_mask(frame)
    assert got.dtype == bool and len(got) == len(frame)
    assert got.tolist() == [_reference(r) for r in records]


def test_mask_sees_a_city_and_a_postcode_mismatch():
    frame = pd.DataFrame([
        {"dest_country": "RU", "dest_city": "Moscow", "dest_postcode": "101000", "country_side_min": "RU",
         "country_side_max": "RU", "locality_min": "RU|Kazan|420066", "locality_max": "RU|Kazan|420066"},
        {"dest_country": "RU", "dest_city": "Moscow", "dest_postcode": "", "country_side_min": "RU",
         "country_side_max": "RU", "locality_min": "RU|MOSCOW|", "locality_max": None},
        {"dest_country": "RU", "dest_city": "Moscow", "dest_postcode": None, "country_side_min": None,
         "country_side_max": None, "locality_min": "RU|Kazan|", "locality_max": None},
    ])
    assert candidate_mask(frame).tolist() == [True, False, True]


def test_mask_compares_a_place_whose_city_holds_the_packing_bar():
    """A city with '|' packs like another split of the place: the packed texts agree, the parts do not."""
    row = {"dest_country": "RU", "dest_city": "Kazan|420066", "dest_postcode": "", "country_side_min": "RU",
           "country_side_max": "RU", "locality_min": "RU|Kazan|420066|", "locality_max": "RU|Kazan|420066|"}
    assert _reference(row) is True
    assert candidate_mask(pd.DataFrame([row])).tolist() == [True]
