"""The vectorised postcode normalisation the whole-store readers use gives exactly what the per-value function
gives: the same texts in the same order and the same per-row indices, on any text (Unicode case, spaces and
digits included), with the distinct values as Python objects or as an arrow array."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.places import (
    _distinct,
    _postcode_texts,
    normalised_per_value,
    normalised_postcode_array,
    normalised_postcodes,
    normalize_city,
    normalize_country,
    normalize_postcode,
)
from tracker.detection import arrow


def reference_postcodes(postcodes: tuple[Any, Any], countries: tuple[Any, Any]) -> tuple[list[str], np.ndarray]:
    """The per-pair implementation the vectorised one replaced, kept as the definition of the result."""
    (p_codes, p_uniques), (c_codes, c_uniques) = postcodes, countries
    width = len(c_uniques) + 1
    pair = (np.asarray(p_codes).astype(np.int64) + 1) * width + (np.asarray(c_codes).astype(np.int64) + 1)
    distinct, inverse = np.unique(pair, return_inverse=True)
    p_text = [""] + [str(u) for u in p_uniques]
    c_text = [""] + [str(u) for u in c_uniques]
    return ([normalize_postcode(p_text[p // width], c_text[p % width]) for p in distinct.tolist()],
            inverse.reshape(-1))


def reference_per_value(codes: np.ndarray, uniques: Any, normalise: Any) -> tuple[list[str], np.ndarray]:
    texts = [normalise(str(u)) for u in uniques] + [normalise("")]
    return texts, np.where(codes < 0, len(texts) - 1, codes).astype(np.int64)


# characters where Python and byte-wise or RE2 rules part: Unicode spaces (and the ASCII ones only Python's \s
# knows), non-ASCII digits, letters whose upper case is ASCII or longer, dashes that are not '-'
AWKWARD = (" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2007\u2028\u3000\x00-.–—_/,"
           "0123456789٣१１²⁹ßſıİﬀǅµéÉ" "ABCDEFGRSUZabcdefgrsuz")
COUNTRIES = ["", "RU", "ru", " ru ", "US", "us", " US\n", "DE", "de", "BR", "Us", "ÜS", "R", "RUS", "\u00a0RU",
             "ru\x1c", "ſU", "ıL", "11", "None"]
EXAMPLES = ["", " ", "-", ".", "RU-101000", "ru 101 000", "101000", "RU101000", "DE10115", "DE-10115", "de 10115",
            "RUS101000", "R1", "RU", "RU1", "12345-6789", "123456789", "12345 6789", "US123456789", "US12345-6789",
            "US-1234567890", "١٢٣٤٥٦٧٨٩", "12345678٩", "１２３４５６７８９", "ß1", "SS1", "ſU123456789", "ıL12",
            "sw1a 1aa", "01310-100", "05780-766", "3577 RK", "910 0396", "1\x0b2\x1c3\x1f4", "12\xa0345",
            "12\u3000345", "RU\u2007101000", "ru–101000", "DE\x0010115", "a" * 40, "None"]

postcode_texts = st.one_of(
    st.sampled_from(EXAMPLES),
    st.text(st.sampled_from(AWKWARD), max_size=14),
    st.text(st.characters(codec="utf-8"), max_size=10),
    st.builds(lambda prefix, sep, digits: prefix + sep + digits,
              st.sampled_from(["", "RU", "ru", "DE", "US", "us", "BR", "ÜS", "ſU", "R"]),
              st.sampled_from(["", "-", " ", ".", "\xa0", "--", " - "]),
              st.from_regex(r"[0-9]{0,11}", fullmatch=True)),
)
country_texts = st.one_of(st.sampled_from(COUNTRIES), st.text(st.sampled_from(AWKWARD), max_size=3))


@st.composite
def factorised(draw: Any) -> tuple[tuple[np.ndarray, list[str]], tuple[np.ndarray, list[str]]]:
    """(codes, distinct values) of a postcode and a country column of the same rows; code -1 is missing."""
    p_uniques = draw(st.lists(postcode_texts, unique=True, max_size=30))
    c_uniques = draw(st.lists(country_texts, unique=True, max_size=6))
    n = draw(st.integers(0, 60))
    p_codes = draw(st.lists(st.integers(-1, len(p_uniques) - 1), min_size=n, max_size=n))
    c_codes = draw(st.lists(st.integers(-1, len(c_uniques) - 1), min_size=n, max_size=n))
    return (np.array(p_codes, dtype=np.int64), p_uniques), (np.array(c_codes, dtype=np.int64), c_uniques)


def dictionary_column(codes: np.ndarray, uniques: list[str]) -> Any:
    """A reader's dictionary-encoded column: null for code -1; the dictionary sliced, so its data has an offset."""
    indices = pa.array([int(c) if c >= 0 else None for c in codes], pa.int32())
    values = pa.array(["not a value", *uniques], pa.string())[1:]
    return pa.DictionaryArray.from_arrays(indices, values)


def assert_same(got: tuple[Any, np.ndarray], want: tuple[list[str], np.ndarray]) -> None:
    texts, index = got
    assert (texts if isinstance(texts, list) else texts.to_pylist()) == want[0]
    assert np.array_equal(np.asarray(index), want[1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factorised())
def test_postcodes_equal_the_per_pair_function(columns):
    postcodes, countries = columns
    want = reference_postcodes(postcodes, countries)
    texts, index = normalised_postcodes(postcodes, countries)
    assert texts == want[0]
    assert index.dtype == np.int64 and np.array_equal(index, want[1])
    # and row by row, as the per-value function reads each row
    (p_codes, p_uniques), (c_codes, c_uniques) = postcodes, countries
    for i, (p, c) in enumerate(zip(p_codes.tolist(), c_codes.tolist(), strict=True)):
        assert texts[index[i]] == normalize_postcode(p_uniques[p] if p >= 0 else "", c_uniques[c] if c >= 0 else "")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factorised(), st.sampled_from([pa.string(), pa.large_string()]))
def test_arrow_values_give_the_same(columns, value_type):
    (p_codes, p_uniques), countries = columns
    want = reference_postcodes((p_codes, p_uniques), countries)
    values = pa.array(["not a value", *p_uniques], value_type)[1:]  # an offset into its buffers
    texts, index = normalised_postcode_array((p_codes.astype(np.int32), values), countries)
    assert isinstance(texts, pa.Array) and texts.type == pa.string()
    assert_same((texts, index), want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factorised(), st.lists(st.sampled_from(["Moscow", "MOSCOW", " moscow", "São Paulo", "Sao-Paulo", "", "Москва"]),
                              unique=True, min_size=1))
def test_reader_places_equal_the_per_value_functions(columns, cities):
    (p_codes, p_uniques), (c_codes, c_uniques) = columns
    city_codes = np.array([i % (len(cities) + 1) - 1 for i in range(len(p_codes))], dtype=np.int64)
    got = arrow.normalised_places(dictionary_column(c_codes, c_uniques), dictionary_column(city_codes, cities),
                                     dictionary_column(p_codes, p_uniques))
    want = [reference_per_value(c_codes, c_uniques, normalize_country),
            reference_per_value(city_codes, cities, normalize_city),
            reference_postcodes((p_codes, p_uniques), (c_codes, c_uniques))]
    assert len(got) == 3
    for column, (texts, index) in zip(got, want, strict=True):
        assert column.dictionary.to_pylist() == texts
        assert column.indices.to_pylist() == index.tolist()


@pytest.mark.parametrize("country", COUNTRIES)
def test_awkward_examples(country):
    p_uniques = EXAMPLES + [c + "123456789" for c in COUNTRIES] + [c + "-12345-6789" for c in COUNTRIES]
    p_codes = np.array([-1, *range(len(p_uniques)), 0, 3, 3], dtype=np.int64)
    c_codes = np.array([0, *([0] * len(p_uniques)), -1, 0, -1], dtype=np.int64)
    postcodes, countries = (p_codes, p_uniques), (c_codes, [country])
    want = reference_postcodes(postcodes, countries)
    assert_same(normalised_postcodes(postcodes, countries), want)
    assert_same(normalised_postcode_array((p_codes, pa.array(p_uniques)), countries), want)


def test_known_answers():
    postcodes = (np.array([0, 1, 2, 3, 4, 5, 6, 7, -1], dtype=np.int64),
                 ["RU-101000", "ru 101 000", "DE10115", "12345-6789", "1\x1c2\x0b3", "١٢٣", "RU10", "ß-1"])
    countries = (np.array([0, 0, -1, 1, 1, 1, 1, 1, 0], dtype=np.int64), ["RU", "US"])
    texts, index = normalised_postcodes(postcodes, countries)
    assert [texts[i] for i in index] == ["101000", "101000", "10115", "12345", "123", "١٢٣", "RU10", "SS1", ""]


def test_values_arrow_cannot_hold_and_values_that_are_not_text():
    # a lone surrogate cannot be UTF-8: the per-pair function; None and numbers read as str() of them
    postcodes = (np.array([0, 1, 2, 3, -1], dtype=np.int64), ["ru\ud800 1", None, 123456789, 1.5])
    countries = (np.array([0, 1, 1, 1, 0], dtype=np.int64), ["RU", "US"])
    want = reference_postcodes(postcodes, countries)
    assert_same(normalised_postcodes(postcodes, countries), want)
    assert normalised_postcodes(postcodes, countries)[0] == ["", "RU\ud8001", "NONE", "12345", "15"]
    arrow = (postcodes[0], pa.array([10, None, 123456789, 7], pa.int64()))  # not text: str() of each, as before
    assert_same(normalised_postcode_array(arrow, countries),
                reference_postcodes((postcodes[0], [10, None, 123456789, 7]), countries))


def test_text_of_a_slice_of_an_arrow_array():
    # an array that starts inside its buffers: values.offset and offsets[0] are not 0
    values = pa.array(["junk-1", "RU-101000", "12345-6789", "ß 1", "", "junk-2"])[1:5]
    p_at, c_at = np.array([0, 0, 1, 2, 3]), np.array([0, 1, 2, 1, 0])
    got = _postcode_texts(values, ["", "RU", "US"], p_at, c_at).to_pylist()
    assert got == [normalize_postcode(values[p].as_py(), ["", "RU", "US"][c]) for p, c in zip(p_at, c_at, strict=True)]
    assert got == ["101000", "101000", "12345", "SS1", ""]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=80), st.integers(0, 3))
def test_distinct_equals_unique(keys, spread):
    # spread 3 puts keys far apart, past the table's bound: numpy's sort then
    keys = np.array(keys, dtype=np.int64) * [1, 7, 331, 100_003][spread]
    bound = int(keys.max(initial=0)) + 1 + spread
    distinct, inverse = _distinct(keys, bound)
    want_distinct, want_inverse = np.unique(keys, return_inverse=True)
    assert np.array_equal(distinct, want_distinct)
    assert np.array_equal(inverse, want_inverse.reshape(-1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-1, 5), max_size=40))
def test_per_value_unchanged(codes):
    codes = np.array(codes, dtype=np.int64)
    given_codes = codes.copy()
    uniques = ["RU", " us", "", "de ", "Ü", "x"]
    texts, index = normalised_per_value(codes, uniques, normalize_country)
    want = reference_per_value(codes, uniques, normalize_country)
    assert texts == want[0] and index.dtype == np.int64 and np.array_equal(index, want[1])
    assert np.array_equal(codes, given_codes)  # the caller's codes are left as they were
