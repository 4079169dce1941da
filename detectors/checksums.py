"""Check-digit algorithms named by the tracking-number data (data/tracking_numbers/couriers/*.json).

Each takes the serial (the `SerialNumber` group, already rewritten by `serial_number_format`), the check
character and the format's `checksum` table, and says whether the check holds. Their arithmetic follows
the data's own description of each algorithm (CHECKSUM_ALGORITHMS.md of jkeen/tracking_number_data):

- mod10: letters count as (ASCII - 3) mod 10; even/odd positions (0-based, optionally from the right) get
  their multipliers; the check is the complement of the sum to the next multiple of 10.
- mod7: the serial as an integer, modulo 7.
- s10: UPU S10 weights 8,6,4,2,3,5,9,7; C = 11 - (S mod 11), 10 -> 0, 11 -> 5.
- sum_product_with_weightings_and_modulo: sum of digit x weight, mod modulo1, mod modulo2.
- luhn: doubling every second digit from the right.
- mod_37_36: ISO 7064 MOD 37,36 over digits and letters (DPD), check in base 36.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

DIGITS = "0123456789"
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def _digit(ch: str) -> int:
    """A character's number where the algorithm reads digits only (a letter reads as 0, as in the data)."""
    return int(ch) if ch.isdigit() else 0


def _complement(total: int, modulo: int) -> int:
    return 0 if total % modulo == 0 else modulo - total % modulo


def mod10(serial: str, config: Mapping[str, Any]) -> str:
    chars = serial[::-1] if config.get("reverse") else serial
    odds, evens = config.get("odds_multiplier"), config.get("evens_multiplier")
    total = 0
    for i, ch in enumerate(chars):
        value = int(ch) if ch.isdigit() else (ord(ch) - 3) % 10
        if odds is not None and i % 2 == 1:
            value *= int(odds)
        elif evens is not None and i % 2 == 0:
            value *= int(evens)
        total += value
    return str(_complement(total, int(config.get("modulo", 10))))


def mod7(serial: str, config: Mapping[str, Any]) -> str:
    return str(int(serial) % int(config.get("modulo", 7)))


def s10(serial: str, config: Mapping[str, Any]) -> str:
    weights = config.get("weightings") or S10_WEIGHTS
    modulo = int(config.get("modulo", 11))
    remainder = sum(_digit(ch) * w for ch, w in zip(serial, weights, strict=False)) % modulo
    return str({1: 0, 0: 5}.get(remainder, modulo - remainder))


def sum_product(serial: str, config: Mapping[str, Any]) -> str:
    weights = config.get("weightings") or ()
    total = sum(_digit(ch) * w for ch, w in zip(serial, weights, strict=False))
    return str(total % int(config["modulo1"]) % int(config["modulo2"]))


def luhn(serial: str, config: Mapping[str, Any]) -> str:
    total = 0
    for i, ch in enumerate(reversed(serial)):
        value = _digit(ch) * 2 if i % 2 == 0 else _digit(ch)
        total += value - 9 if value > 9 else value
    return str(_complement(total, int(config.get("modulo", 10))))


def mod_37_36(serial: str, config: Mapping[str, Any]) -> str:
    modulo = int(config.get("modulo", 36))
    alphabet = str(config.get("alphabet", BASE36))
    running = modulo
    for ch in serial:
        running += BASE36.index(ch) if ch.isalpha() else _digit(ch)
        if running > modulo:
            running -= modulo
        running *= 2
        if running > modulo:
            running -= modulo + 1
    expected = modulo + 1 - running
    return alphabet[0 if expected == modulo else expected]


ALGORITHMS: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    "mod10": mod10,
    "mod7": mod7,
    "s10": s10,
    "sum_product_with_weightings_and_modulo": sum_product,
    "luhn": luhn,
    "mod_37_36": mod_37_36,
}


def expected_check(config: Mapping[str, Any], serial: str) -> str:
    """The check character `config` wants after `serial` (raises KeyError for an unknown algorithm)."""
    return ALGORITHMS[str(config["name"])](serial, config)


def s10_check_digit(digits: str) -> int:
    """The UPU S10 check digit of 8 serial digits."""
    return int(s10(digits, {}))
