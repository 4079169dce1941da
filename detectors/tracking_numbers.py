"""Tracking-number formats, check digits and carrier guessing (pure functions, no I/O).

Formats known: UPU S10 (international postal), UPS 1Z, USPS IMpb (with or without the 420+ZIP routing
prefix, which names the destination), Cainiao LP, YunExpress YT. Each match says whether its check digit
holds (None where the format has none) and what else the number tells (issuing country, destination ZIP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pycountry

S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
S10_RESERVED_FIRST_LETTERS = frozenset("JKSTW")

_S10 = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
_UPS = re.compile(r"^1Z([0-9A-Z]{15})([0-9])$")
_IMPB_ROUTED = re.compile(r"^420(\d{5}|\d{9})(9[2-5]\d{18,32})$")
_IMPB = re.compile(r"^(9[2-5]\d{18,32})$")
_CAINIAO = re.compile(r"^LP\d{12,14}$")
_YUN = re.compile(r"^YT\d{16}$")
_STRIP = re.compile(r"[\s\-]+")


@dataclass(frozen=True)
class FormatMatch:
    """One format a number has the shape of."""

    format: str  # s10, ups, usps_impb, cainiao_lp, yunexpress_yt
    carrier: str  # the carrier this format usually means
    check_digit_ok: bool | None  # None: the format has no check digit
    problems: tuple[str, ...] = ()  # why the number is not valid in this format
    country: str | None = None  # S10: the issuing post's country (alpha-2)
    dest_zip: str | None = None  # USPS IMpb with routing: the destination ZIP

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Validation:
    number: str  # normalised
    matches: tuple[FormatMatch, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return any(m.valid for m in self.matches)

    @property
    def best(self) -> FormatMatch | None:
        valid = [m for m in self.matches if m.valid]
        return (valid or list(self.matches) or [None])[0]

    def reason(self) -> str:
        """Why the number is not valid, in one phrase (empty when it is)."""
        if self.valid:
            return ""
        if not self.matches:
            return "matches no known carrier format"
        return "; ".join(p for m in self.matches for p in m.problems)


def normalize_number(text: str) -> str:
    """Upper-case, no spaces or hyphens: how sellers' numbers are compared and stored."""
    return _STRIP.sub("", text or "").upper()


def s10_check_digit(digits: str) -> int:
    total = sum(int(d) * w for d, w in zip(digits, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def ups_check_digit(body: str) -> int:
    """UPS mod-10 over the 15 characters after '1Z'; letters count as (ASCII - 63) mod 10."""
    total = 0
    for i, ch in enumerate(body):
        value = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += value * 2 if i % 2 == 1 else value
    return (10 - total % 10) % 10


def mod10_31_check_digit(digits: str) -> int:
    """USPS IMpb: weights 3,1,3,… from the right over the digits before the check digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


@cache
def is_real_country(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code) is not None


def _s10(number: str) -> FormatMatch | None:
    m = _S10.match(number)
    if not m:
        return None
    service, digits, check, country = m.groups()
    problems = []
    ok = s10_check_digit(digits) == int(check)
    if not ok:
        problems.append(f"S10 check digit is {check}, expected {s10_check_digit(digits)}")
    if service[0] in S10_RESERVED_FIRST_LETTERS:
        problems.append(f"S10 service indicator {service} starts with a reserved letter")
    if not is_real_country(country):
        problems.append(f"S10 country code {country} names no real issuing country")
    carrier = "chinapost" if country == "CN" else f"post_{country.lower()}"
    return FormatMatch("s10", carrier, ok, tuple(problems), country=country)


def _ups(number: str) -> FormatMatch | None:
    m = _UPS.match(number)
    if not m:
        return None
    body, check = m.groups()
    expected = ups_check_digit(body)
    ok = expected == int(check)
    problems = () if ok else (f"UPS check digit is {check}, expected {expected}",)
    return FormatMatch("ups", "ups", ok, problems)


def _usps(number: str) -> FormatMatch | None:
    m = _IMPB_ROUTED.match(number)
    dest_zip = None
    if m:
        dest_zip, body = m.group(1)[:5], m.group(2)
    else:
        m = _IMPB.match(number)
        if not m:
            return None
        body = m.group(1)
    expected = mod10_31_check_digit(body[:-1])
    ok = expected == int(body[-1])
    problems = () if ok else (f"USPS check digit is {body[-1]}, expected {expected}",)
    return FormatMatch("usps_impb", "usps", ok, problems, dest_zip=dest_zip)


def _simple(fmt: str, carrier: str, pattern: re.Pattern[str]):  # noqa: ANN202
    def match(number: str) -> FormatMatch | None:
        return FormatMatch(fmt, carrier, None) if pattern.match(number) else None

    return match


FORMATS = (_s10, _ups, _usps, _simple("cainiao_lp", "cainiao", _CAINIAO), _simple("yunexpress_yt", "yunexpress", _YUN))


def validate(text: str) -> Validation:
    number = normalize_number(text)
    return Validation(number, tuple(m for check in FORMATS if (m := check(number)) is not None))


def guess_carrier(text: str) -> str | None:
    """The carrier a number's format usually means, or None when it matches no format."""
    best = validate(text).best
    return best.carrier if best else None


@cache
def _real_country_table() -> np.ndarray:
    """26 x 26 booleans: is this pair of capital letters a real country's alpha-2 code."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return np.array([[is_real_country(a + b) for b in letters] for a in letters], dtype=bool)


_RESERVED = np.array([chr(c) in S10_RESERVED_FIRST_LETTERS for c in range(256)], dtype=bool)


def _s10_valid(block: np.ndarray) -> np.ndarray:
    """The S10 verdict for rows of 13 ASCII bytes already shaped LLDDDDDDDDDLL: check digit, service letter,
    issuing country. The same arithmetic as `_s10`, on whole columns."""
    digits = block[:, 2:10].astype(np.int64) - 48
    c = 11 - (digits @ np.array(S10_WEIGHTS)) % 11
    c = np.where(c == 10, 0, np.where(c == 11, 5, c))
    country = _real_country_table()[block[:, 11] - 65, block[:, 12] - 65]
    return (c == block[:, 10].astype(np.int64) - 48) & ~_RESERVED[block[:, 0]] & country


def valid_many(numbers: list[str] | tuple[str, ...]) -> list[bool]:
    """`validate(n).valid` for many normalised numbers at once: the common S10/LP/YT shapes on whole Arrow
    columns (a million numbers in a fraction of a second), anything else through `validate` itself, so
    both always agree. Only ASCII numbers take the fast path: Python's `\\d` also matches other scripts'
    digits, the column regexes do not."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pa.array([n or "" for n in numbers], type=pa.string())
    ascii_ = pc.string_is_ascii(texts)
    fast_yes = pc.and_(ascii_, pc.or_(pc.match_substring_regex(texts, _CAINIAO.pattern),
                                      pc.match_substring_regex(texts, _YUN.pattern)))
    s10 = pc.and_(ascii_, pc.match_substring_regex(texts, r"^[A-Z]{2}[0-9]{9}[A-Z]{2}$"))
    out = fast_yes.to_numpy(zero_copy_only=False).copy()
    s10_rows = np.flatnonzero(s10.to_numpy(zero_copy_only=False))
    if len(s10_rows):
        block = pc.cast(texts.take(pa.array(s10_rows)), pa.binary())
        offsets = np.frombuffer(block.buffers()[1], dtype=np.int32)[block.offset:block.offset + len(block) + 1]
        data = np.frombuffer(block.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        out[s10_rows] = _s10_valid(data.reshape(len(s10_rows), 13))
    rest = np.flatnonzero(~(out | s10.to_numpy(zero_copy_only=False)))
    for i in rest.tolist():
        out[i] = validate(numbers[i] or "").valid
    return out.tolist()
