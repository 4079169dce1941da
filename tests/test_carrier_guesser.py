"""`CarrierGuesser` (the import's carrier guess, trying only the formats a number can have) answers exactly as
`guess_carrier`: over the shipped test numbers, generated numbers of every format, a generated world's numbers,
near misses and random strings, with the shipped carrier patterns, with odd ones, and with none."""

from __future__ import annotations

import random
import re
import string

import pytest

from detectors.tracking_numbers import (
    CarrierGuesser,
    _first_chars,
    formats,
    guess_carrier,
    make_number,
    normalize_number,
)
from tracker.carriers import number_patterns
from tracker.world import generate

ODD_PATTERNS = {
    "anything": ".*",  # matches every number: the filter must not drop it
    "nocase": "(?i)lp\\d{14}",
    "negated": "[^0-9]{2}\\d{9}[A-Z]{2}",
    "optional_start": "(?:X)?\\d{12}",
    "lookahead": "(?=LP)[A-Z0-9]{16}",
    "branchy": "^(?:4PX|9[2-5]|\\d?YT)\\w+$",
    "broken": "([",  # does not compile: matches nothing either way
    "word": "\\w{13}",
}


def _near_misses(number: str, rng: random.Random) -> list[str]:
    out = []
    for _ in range(3):
        chars = list(number)
        i = rng.randrange(len(chars))
        chars[i] = rng.choice(string.digits if chars[i].isdigit() else string.ascii_uppercase)
        out.append("".join(chars))
    out += [number[:-1], number + "0", "420" + "10001" + number, "420" + "100011234" + number, number[1:]]
    return out


@pytest.fixture(scope="module")
def numbers() -> list[str]:
    rng = random.Random(19)
    found: list[str] = []
    for fmt in formats():
        found += [normalize_number(n) for n in (*fmt.valid_numbers, *fmt.invalid_numbers)]
        for _ in range(40):
            try:
                found.append(make_number(fmt.id, rng))
            except ValueError:
                break
    found += [normalize_number(o["tracking_number"]) for o in generate(1500, seed=3).orders]
    found += ["LP00123456789012", "YT1234567890123456", "RR473124828CN", "RR473124829CN", "996578788855",
              "1Z999AA10123456784", "JJ473124829CN", "RR473124829XX", "HELLO", "٣٣٣٣٣٣٣٣٣٣٣٣", "ΑΒ123456789CN"]
    found += [m for n in list(found) if n for m in _near_misses(n, rng)]
    alphabet = string.ascii_uppercase + string.digits
    for _ in range(3000):
        size = rng.randrange(1, 36)
        found.append("".join(rng.choice(alphabet) for _ in range(size)))
        found.append("".join(rng.choice(string.digits) for _ in range(size)))
    return [n for n in found if n]


@pytest.mark.parametrize("patterns", ["shipped", "odd", "none"])
def test_the_guesser_answers_as_guess_carrier(numbers, patterns):
    carrier_patterns = {"shipped": number_patterns(), "odd": {**number_patterns(), **ODD_PATTERNS},
                        "none": None}[patterns]
    guesser = CarrierGuesser(carrier_patterns)
    mine = [guesser(n) for n in numbers]
    again = [guesser(n) for n in numbers]  # the second time from its memory
    plain = [guess_carrier(n, carrier_patterns) for n in numbers]
    assert mine == plain == again
    assert sum(g is not None for g in plain) > len(numbers) // 4  # the set does exercise the formats


def test_numbers_not_normalised_take_the_plain_path():
    guesser = CarrierGuesser(number_patterns())
    for text in ["lp-0012 3456 7890 12", " rr473124829cn", "yt 1234567890123456"]:
        assert guesser(text) == guess_carrier(text, number_patterns())


def test_first_characters_read_from_the_regex():
    assert _first_chars(re.compile("LP\\d+")) == frozenset("L")
    assert _first_chars(re.compile("^(?:4PX|9[2-5])\\d")) == frozenset("49")
    assert _first_chars(re.compile("(?:X)?\\d")) == frozenset("X0123456789")
    assert _first_chars(re.compile("(?i)lp")) is None
    assert _first_chars(re.compile("[^A]B")) is None
    assert _first_chars(re.compile(".*")) is None
    assert _first_chars(re.compile("\\d*")) is None  # may match nothing: any number may start it


def test_a_number_only_shape_only_formats_read_is_guessed_without_judging(monkeypatch):
    """Cainiao's LP and YunExpress's YT numbers (no check digit, no rule): the regexes' matches alone answer."""
    from detectors import tracking_numbers

    guesser = CarrierGuesser(number_patterns())
    expected = {n: guess_carrier(n, number_patterns()) for n in ("LP00123456789012", "YT1234567890123456")}

    def judged(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("judged")

    monkeypatch.setattr(tracking_numbers, "_validation", judged)
    assert {n: guesser(n) for n in expected} == expected == {"LP00123456789012": "cainiao",
                                                             "YT1234567890123456": "yunexpress"}
    with pytest.raises(AssertionError, match="judged"):  # an S10 number's check digit must be judged
        guesser("RR473124829CN")
