"""Place comparison: the forgiving normalisation and the strict verdict."""

from __future__ import annotations

import pandas as pd
import pytest

from detectors.places import (
    Place,
    city_series,
    mismatch,
    normalize_city,
    normalize_country,
    normalize_postcode,
    postcode_series,
)


@pytest.mark.parametrize(
    "written, country, expected",
    [
        ("101000", "RU", "101000"),
        ("101 000", "RU", "101000"),
        ("101-000", "ru", "101000"),
        ("RU-101000", "RU", "101000"),
        ("ru 101000", "RU", "101000"),
        ("sw1a 1aa", "GB", "SW1A1AA"),  # letters that are not the country stay
        ("10001-1234", "US", "10001"),
        ("01310-100", "BR", "01310100"),
        ("", "RU", ""),
        (None, "RU", ""),
    ],
)
def test_postcodes(written, country, expected):
    assert normalize_postcode(written, country) == expected


@pytest.mark.parametrize(
    "a, b",
    [
        ("São Paulo", "SAO PAULO"),
        ("Málaga", "malaga"),
        ("Saint-Petersburg", "saint petersburg"),
        ("MOSCOW", " moscow "),
        ("Москва", "МОСКВА"),
    ],
)
def test_cities_without_case_and_accents(a, b):
    assert normalize_city(a) == normalize_city(b) != ""


def test_countries_by_code():
    assert normalize_country(" ru") == "RU" and normalize_country(None) == ""


def test_same_city_other_postcode_is_a_mismatch():
    assert mismatch(Place.of("RU", "Moscow", "101000"), Place.of("RU", "Moscow", "101368")) == "postcode"


def test_postcode_decides_over_city_spelling():
    assert mismatch(Place.of("RU", "Moskva", "101000"), Place.of("RU", "Moscow", "101 000")) is None


def test_other_country_and_other_city():
    assert mismatch(Place.of("RU", "Moscow", "101000"), Place.of("PL", "Warsaw", "00-001")) == "country"
    assert mismatch(Place.of("RU", "Moscow", None), Place.of("RU", "Kazan", None)) == "city"


def test_unknown_parts_and_other_scripts_never_disagree():
    assert mismatch(Place.of("RU", None, None), Place.of("RU", "Kazan", "420066")) is None
    assert mismatch(Place.of("RU", "Москва", None), Place.of("RU", "Moscow", None)) is None
    assert (
        mismatch(Place.of("RU", "Moscow", "101000"), Place.of("PL", "Warsaw", "00-001"), check_locality=False)
        == "country"
    )
    assert (
        mismatch(Place.of("RU", "Moscow", "101000"), Place.of("RU", "Kazan", "420066"), check_locality=False)
        is None
    )


def test_series_forms_agree_with_the_scalar_ones():
    cities = pd.Series(["São Paulo", None, "MOSCOW"])
    assert city_series(cities).tolist() == ["saopaulo", "", "moscow"]
    codes = postcode_series(pd.Series(["RU-101000", "10001-1234", None]), pd.Series(["RU", "US", "RU"]))
    assert codes.tolist() == ["101000", "10001", ""]


@pytest.mark.parametrize(("scan", "order"), [
    ("MADRID CTM", "Madrid"), ("MADRID ADUANA", "Madrid"), ("Madrid CTM - Spain", "Madrid"),
    ("SHENZHEN IMC", "Shenzhen"), ("CHICAGO IL NETWORK DISTRIBUTION CENTER", "Chicago"),
    ("LONDON HEATHROW AIRPORT", "London"), ("Hackney Delivery Office", "Hackney"),
    ("AnHuiShengChiZhouShi", "Chizhou"), ("GuangDongShengShenZhenShi", "Shenzhen"), ("ShangHaiShi", "Shanghai"),
    ("Москва", "Moscow"), ("Санкт-Петербург", "St. Petersburg"), ("Sankt-Peterburg", "Saint Petersburg"),
    ("SÃO PAULO SP", "São Paulo"), ("München", "Munich"), ("北京", "Beijing"),
])
def test_facility_words_scripts_and_pinyin_do_not_change_the_city(scan, order):
    assert normalize_city(scan) == normalize_city(order)
    assert mismatch(Place.of("XX", order, None), Place.of("XX", scan, None)) is None


def test_another_city_is_still_another_city():
    assert mismatch(Place.of("ES", "Madrid", None), Place.of("ES", "BARCELONA CTM", None)) == "city"
    assert mismatch(Place.of("CN", "Chizhou", None), Place.of("CN", "AnHuiShengHeFeiShi", None)) == "city"
    # a place that is only a facility names no city: no verdict
    assert mismatch(Place.of("US", "Austin", None), Place.of("US", "INTERNATIONAL OFFICE OF EXCHANGE", None)) is None
    # different scripts that do not agree after transliteration: no verdict (spellings and exonyms vary)
    assert mismatch(Place.of("RU", "Yekaterinburg", None), Place.of("RU", "Казань", None)) is None
