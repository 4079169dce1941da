"""Tracking-number formats against the test numbers the shipped data carries, and the pieces under them."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import checksums
from detectors.number_formats import load_formats, python_regex
from detectors.tracking_numbers import formats, make_number, normalize_number, validate, verdicts_many

ALL = formats()
WITH_VALID = [f.id for f in ALL if f.valid_numbers]


def _vectors(kind: str) -> list[tuple[str, str]]:
    return [(f.id, n) for f in ALL for n in (f.valid_numbers if kind == "valid" else f.invalid_numbers)]


def test_the_shipped_data_is_read_whole():
    ids = {f.id for f in ALL}
    # the 18 couriers of jkeen/tracking_number_data and the marketplace formats beside them
    assert {"s10", "ups", "usps_impb_c", "usps_impb_n", "fedex_12", "dhl_express", "amazon_logistics",
            "canada_post", "yodel", "landmark_global", "dpd", "cainiao_lp", "yanwen", "fourpx"} <= ids
    assert len({f.origin for f in ALL}) == 19
    assert {c["name"] for f in ALL if f.checksum for c in [f.checksum]} == set(checksums.ALGORITHMS)


def test_every_public_vector():
    """No valid test number is called invalid; at least 95% of them are recognised; at most 5% of the invalid
    ones are accepted. The figures are printed (pytest -s) for the record."""
    valid = _vectors("valid")
    invalid = _vectors("invalid")
    verdicts = {n: validate(n).verdict for _, n in valid + invalid}
    called_invalid = [(f, n) for f, n in valid if verdicts[n] == "invalid"]
    recognised = sum(verdicts[n] == "valid" for _, n in valid)
    accepted = [(f, n) for f, n in invalid if verdicts[n] == "valid"]
    print(f"\nvalid vectors: {len(valid)}, recognised {recognised} ({recognised / len(valid):.1%}), "
          f"called invalid {len(called_invalid)}; invalid vectors: {len(invalid)}, accepted {len(accepted)} "
          f"({len(accepted) / len(invalid):.1%}): {accepted}")
    assert called_invalid == []
    assert recognised >= 0.95 * len(valid)
    assert len(accepted) <= 0.05 * len(invalid)


@pytest.mark.parametrize("fid, number", _vectors("valid"))
def test_each_valid_vector_holds_in_its_own_format(fid, number):
    v = validate(number)
    assert any(m.format == fid and m.valid for m in v.matches), (fid, number, v.reason())


@pytest.mark.parametrize("fid, number", [p for p in _vectors("invalid")])
def test_no_invalid_vector_holds_in_its_own_format(fid, number):
    assert not any(m.format == fid and m.valid for m in validate(number).matches)


def test_unknown_is_not_invalid():
    assert validate("HELLO").verdict == "unknown"
    assert validate("996578788855").verdict == "unknown"  # fails FedEx's check, but 12 digits claim nothing
    assert validate("RR473124828CN").verdict == "invalid"  # the S10 shape does claim
    # a looser shape that passes does not save a strict one that fails (DHL eCommerce takes 'LX' + anything)
    assert validate("LX473124828CN").verdict == "invalid"


def test_s10_issuing_country_and_reserved_letters():
    assert validate("RR473124829TW").best.country == "TW"  # a real post the data's list lacks
    assert "names no real issuing country" in validate("RR473124829XX").reason()
    assert "reserved letter" in validate("TA473124829CN").reason()
    assert validate("EA473124829CN").best.express  # EMS


def test_yanwen_numbers_are_not_s10_with_a_bad_country():
    v = validate("VR344217874YP")
    assert v.valid and v.best.carrier == "yanwen"
    assert validate("VR344217875YP").verdict == "invalid"


@pytest.mark.parametrize("number, carrier", [
    ("LP00068434402473", "cainiao"), ("AE012345678", "cainiao"), ("UH0123456789Y", "cainiao"),
    ("CN012345678901", "cainiao"), ("4PX300184920194", "4px"), ("YT2229521272164446", "yunexpress"),
])
def test_marketplace_forms(number, carrier):
    v = validate(number)
    assert v.valid and v.best.carrier == carrier


def test_python_regex_reads_pcre_groups_spaces_and_hyphens():
    pattern = python_regex(["\\s*1\\s*Z\\s*(?<Serial>([0-9]\\s*){4})", "-\\s*(?<Check>[0-9]\\s*)"])
    assert pattern == "1Z(?P<Serial>([0-9]){4})(?P<Check>[0-9])"
    assert re.fullmatch(pattern, "1Z12345").group("Check") == "5"
    assert python_regex("[A-Z-]\\s*(?<=x)") == "[A-Z-](?<=x)"  # a class's hyphen and a lookbehind stay


def test_check_digit_algorithms_on_known_numbers():
    assert checksums.s10_check_digit("47312482") == 9  # the UPU S10 example
    ups = next(f for f in ALL if f.id == "ups")
    assert ups.expected_check("999AA1012345678") == "4"
    dpd = next(f for f in ALL if f.id == "dpd")
    assert dpd.expected_check("008182709980000020033350276") == "C"  # mod 37,36 gives a letter
    dhl = next(f for f in ALL if f.id == "dhl_express")
    assert dhl.expected_check("331881002") == "5"  # mod 7


def _zip_plus4_numbers(seed: int, count: int) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        fid = rng.choice(["usps_impb_c", "usps_impb_n"])
        body = make_number(fid, rng)
        parsed = validate(body).best
        if parsed.routed:  # the template carried a routing prefix of its own: keep the body
            body = body[12:] if parsed.dest_zip4 else body[8:]
        zip5, zip4 = f"{rng.randrange(100000):05d}", f"{rng.randrange(9200, 9600):04d}"
        out.append((fid, body, zip5, zip4))
    return out


@pytest.mark.parametrize("fid, body, zip5, zip4", _zip_plus4_numbers(7, 60))
def test_routed_impb_with_a_zip_plus4_starting_92_to_95(fid, body, zip5, zip4):
    v = validate(f"420{zip5}{zip4}{body}")
    assert v.valid and v.best.carrier == "usps" and v.best.dest_zip == zip5, v.reason()
    if len(body) == 22:  # 420 + ZIP+4 + 22 digits: the data's own reading keeps the +4
        assert v.best.dest_zip4 == zip4
    five = validate(f"420{zip5}{body}")
    assert five.valid and five.best.dest_zip == zip5


@settings(max_examples=300, deadline=None)
@given(fid=st.sampled_from(WITH_VALID), seed=st.integers(0, 2**32 - 1))
def test_make_number_gives_a_valid_number_of_that_format(fid, seed):
    number = make_number(fid, random.Random(seed))
    v = validate(number)
    assert v.valid and any(m.format == fid and m.valid for m in v.matches), (fid, number, v.reason())


def test_column_verdicts_agree_with_validate():
    rng = random.Random(11)
    numbers = [make_number(rng.choice(WITH_VALID), rng) for _ in range(400)]
    numbers += [normalize_number(n) for _, n in _vectors("valid") + _vectors("invalid")]
    numbers += [f"R{rng.choice('AJRSTB')}{rng.randrange(10**8):08d}{rng.randrange(10)}{rng.choice(['CN', 'XX', 'YP'])}"
                for _ in range(400)]
    numbers += ["".join(rng.choice("ABC0123456789") for _ in range(rng.randint(6, 30))) for _ in range(300)]
    numbers += ["RR١٢٣٤٥٦٧٨٥CN", "rr123456785cn", "", "LP0012345678901", "ACME12345678"]
    patterns = {"acme": r"^ACME\d{8}$", "chinapost": r"^[A-Z]{2}\d{9}CN$"}
    for carrier_patterns in (None, patterns):
        expected = [validate(n, carrier_patterns).verdict if n else "unknown" for n in numbers]
        assert verdicts_many(numbers, carrier_patterns) == expected
    assert {"valid", "invalid", "unknown"} <= set(verdicts_many(numbers))


def test_a_carrier_files_pattern_recognises_but_never_rescues_a_failed_check():
    patterns = {"acme": r"^ACME\d{8}$", "chinapost": r"^[A-Z]{2}\d{9}CN$"}
    assert validate("ACME12345678").verdict == "unknown"
    v = validate("ACME12345678", patterns)
    assert v.valid and v.best.carrier == "acme"
    assert validate("RR473124828CN", patterns).verdict == "invalid"


def test_formats_load_once():
    assert load_formats() is load_formats()
