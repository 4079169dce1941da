import pytest

from detectors.tracking_numbers import (
    guess_carrier,
    mod10_31_check_digit,
    normalize_number,
    s10_check_digit,
    ups_check_digit,
    validate,
)


def test_s10_check_digit_matches_the_upu_example():
    assert s10_check_digit("47312482") == 9


@pytest.mark.parametrize("digits", ["00000000", "99999999", "12345678", "47312482", "10000005"])
def test_s10_check_digit_is_a_single_digit(digits):
    assert 0 <= s10_check_digit(digits) <= 9


def test_s10_valid_number_names_china_post_and_country():
    v = validate("rr 473124829 cn")
    assert v.number == "RR473124829CN"
    assert v.valid and v.best.format == "s10" and v.best.country == "CN" and v.best.carrier == "chinapost"


@pytest.mark.parametrize(
    "number, reason",
    [
        ("RR473124828CN", "check digit is 8, expected 9"),
        ("JJ473124829CN", "reserved letter"),
        ("RR473124829XX", "no real issuing country"),
        ("HELLO", "matches no known carrier format"),
    ],
)
def test_s10_invalid_numbers_say_why(number, reason):
    v = validate(number)
    assert not v.valid
    assert reason in v.reason()


def test_ups_known_good_number_and_one_digit_off():
    assert validate("1Z999AA10123456784").valid
    assert ups_check_digit("999AA1012345678") == 4
    assert not validate("1Z999AA10123456785").valid


def test_usps_impb_reads_destination_zip():
    body = "940011189922319742812"  # 21 digits; the 22nd is the check digit
    v = validate("420" + "10001" + body + str(mod10_31_check_digit(body)))
    assert v.valid and v.best.carrier == "usps" and v.best.dest_zip == "10001"


def test_cainiao_and_yunexpress_are_format_only():
    assert validate("LP00123456789012").best.check_digit_ok is None
    assert guess_carrier("LP00123456789012") == "cainiao"
    assert guess_carrier("YT1234567890123456") == "yunexpress"
    assert guess_carrier("not a number") is None
    assert guess_carrier("RR473124828CN") == "chinapost"  # invalid, but its carrier is still asked
    assert guess_carrier("996578788855") is None  # unknown: twelve digits that fail FedEx's check claim nothing


def test_normalize_strips_spaces_hyphens_and_case():
    assert normalize_number(" lp-0012 3456 ") == "LP00123456"
