"""Tracking numbers: which known format a number has, whether its check holds, and the verdict.

Formats come from the shipped data (`detectors.number_formats`: jkeen/tracking_number_data plus the
marketplace formats it lacks). Three verdicts:

- `valid`: some known format matches and its check digit, issuing country and service rules hold;
- `invalid`: the number has a shape that claims a format on its own (S10, UPS 1Z, USPS IMpb, ...: `strict`
  in overlay.toml) and fails that format's check; a looser shape passing does not save it;
- `unknown`: no known format holds and no strict shape claims it (a run of digits of no known kind, a
  carrier we have no data for). Unknown is not evidence of fraud.

A configured carrier's `number_pattern` (data/carriers/*.toml) is passed in as `carrier_patterns`: a number
matching it is recognised by that carrier (valid), unless a strict shape it also has fails.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import pycountry

from detectors import checksums
from detectors.checksums import S10_WEIGHTS, s10_check_digit  # noqa: F401 - re-exported for callers
from detectors.number_formats import NumberFormat, carrier_key, load_formats

if TYPE_CHECKING:  # numpy only for whole columns: validating a few numbers never loads it
    import numpy as np

__all__ = [
    "CarrierGuesser", "FormatMatch", "Validation", "carrier_key", "formats", "guess_carrier", "is_real_country",
    "make_number", "mod10_31_check_digit", "normalize_number", "s10_check_digit", "ups_check_digit", "valid_many",
    "validate", "verdicts_many",
]

S10_RESERVED_FIRST_LETTERS = frozenset("JKSTW")
VERDICTS = ("valid", "invalid", "unknown")
_STRIP = re.compile(r"[\s\-]+")
CarrierPatterns = Mapping[str, "str | re.Pattern[str]"]


@dataclass(frozen=True)
class FormatMatch:
    """One format a number has the shape of, and how it fares there."""

    format: str  # the format id (number_formats.format_id), or "carrier:<name>" for a carrier file's pattern
    carrier: str  # the carrier this format means
    check_digit_ok: bool | None  # None: the format has no check digit
    problems: tuple[str, ...] = ()  # why the number is not valid in this format
    country: str | None = None  # S10: the issuing post's country (alpha-2)
    dest_zip: str | None = None  # USPS IMpb with routing: the destination ZIP (5 digits)
    dest_zip4: str | None = None  # ... and its +4 when the number carries one
    routed: bool = False  # read with a 420 + ZIP routing prefix
    strict: bool = False
    express: bool = False
    name: str = ""
    service: str | None = None  # the service the number names (the format's ServiceType lookup)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def rank(self) -> int:
        """Which match describes the number best: strict passes, then checked, then the shipped formats' shapes,
        then carrier files (whose patterns are often broad: Yanwen's Y… takes YunExpress's YT… too)."""
        if self.valid:
            if self.strict:
                return 0
            if self.check_digit_ok is not None:
                return 1
            return 3 if self.format.startswith("carrier:") else 2
        return 4 if self.strict else 5


@dataclass(frozen=True)
class Validation:
    number: str  # normalised
    matches: tuple[FormatMatch, ...] = field(default_factory=tuple)  # best first

    @cached_property  # asked several times of one validation (best, reason, valid)
    def verdict(self) -> str:
        passing = [m for m in self.matches if m.valid]
        failed = {m.carrier for m in self.matches if m.strict and not m.valid}
        # a strict shape that fails is saved only by another strict shape, or by another known format of its
        # own carrier (a routed USPS number read another way); never by a carrier file's looser pattern
        rescuers = {m.carrier for m in passing if not m.format.startswith("carrier:")}
        if passing and (any(m.strict for m in passing) or failed <= rescuers):
            return "valid"
        return "invalid" if failed else "unknown"

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"

    @property
    def best(self) -> FormatMatch | None:
        if self.verdict == "invalid":
            return next(m for m in self.matches if m.strict and not m.valid)
        return self.matches[0] if self.matches else None

    def reason(self) -> str:
        """Why the number is not valid, in one phrase (empty when it is)."""
        verdict = self.verdict
        if verdict == "valid":
            return ""
        if verdict == "invalid":
            return "; ".join(p for m in self.matches if m.strict and not m.valid for p in m.problems)
        if not self.matches:
            return "matches no known carrier format"
        tried = "; ".join(p for m in self.matches for p in m.problems)
        return f"matches no known carrier format whose check holds ({tried})"


def normalize_number(text: str) -> str:
    """Upper-case, no spaces or hyphens: how sellers' numbers are compared and stored."""
    return _STRIP.sub("", text or "").upper()


@cache
def is_real_country(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code) is not None


def ups_check_digit(body: str) -> int:
    """UPS: mod 10 over the 15 characters after '1Z', odd positions doubled, letters as (ASCII - 3) mod 10."""
    return int(checksums.mod10(body, {"evens_multiplier": 1, "odds_multiplier": 2}))


def mod10_31_check_digit(digits: str) -> int:
    """USPS IMpb: weights 3, 1, 3, ... from the right over the digits before the check digit."""
    return int(checksums.mod10(digits[::-1], {"evens_multiplier": 3, "odds_multiplier": 1}))


def formats() -> tuple[NumberFormat, ...]:
    return load_formats()


@cache
def _format_index() -> dict[str, NumberFormat]:
    return {f.id: f for f in formats()}


@cache
def _by_length(length: int) -> tuple[NumberFormat, ...]:
    return tuple(f for f in formats() if f.min_len <= length <= f.max_len or f.routed)


def _label(group: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", group).lower()


def _judge(fmt: NumberFormat, match: re.Match[str], zip5: str | None = None, zip4: str | None = None) -> FormatMatch:
    """How the number fares in `fmt`, given the regex's parse of it."""
    problems: list[str] = []
    check_ok: bool | None = None
    if fmt.checksum and "CheckDigit" in fmt.groups and match.group("CheckDigit"):
        actual = match.group("CheckDigit")
        expected = fmt.expected_check(fmt.serial(match))
        check_ok = actual == expected
        if not check_ok:
            problems.append(f"{fmt.name} check digit is {actual}, expected {expected}")
    for lookup_name in fmt.exists:
        lookup = next((lk for lk in fmt.lookups if lk.name == lookup_name), None)
        if lookup is None or lookup.group not in fmt.groups:
            continue
        value = match.group(lookup.group) or ""
        known = lookup.find(value) is not None
        if lookup.group == "CountryCode":
            # every ISO 3166 territory with a post of its own issues S10 numbers (the data's list has 191)
            known = known or is_real_country(value)
            if not known:
                problems.append(f"{fmt.name} country code {value} names no real issuing country")
        elif not known:
            problems.append(f"{fmt.name} {_label(lookup.group)} {value} is not one the format knows")
    for rule in fmt.forbid:
        value = match.group(rule.group) if rule.group in fmt.groups else None
        if value and rule.pattern.search(value):
            problems.append(f"{fmt.name} {_label(rule.group)} {value} {rule.why}")
    express = fmt.express or any(
        g in fmt.groups and (v := match.group(g)) and p.search(v) for g, p in fmt.express_when)
    country = match.group("CountryCode") if "CountryCode" in fmt.groups and fmt.id == "s10" else None
    service = None
    service_lookup = next((lk for lk in fmt.lookups if lk.group == "ServiceType"), None)
    if service_lookup and "ServiceType" in fmt.groups and match.group("ServiceType"):
        found = service_lookup.find(match.group("ServiceType"))
        service = str(found.get("name")) if found else None
    if zip5 is None and "DestinationZip" in fmt.groups and match.group("DestinationZip"):
        zip5 = match.group("DestinationZip")
        zip4 = match.group("DestinationZipPlus4") if "DestinationZipPlus4" in fmt.groups else None
    carrier = fmt.carrier
    if fmt.id == "s10" and country:
        carrier = "chinapost" if country == "CN" else f"post_{country.lower()}"
    return FormatMatch(fmt.id, carrier, check_ok, tuple(problems), country=country, dest_zip=zip5,
                       dest_zip4=zip4 or None, routed=bool(fmt.routed and zip5), strict=fmt.strict, express=bool(express), name=fmt.name,
                       service=service)


def _parses(fmt: NumberFormat, number: str) -> list[FormatMatch]:
    """Every reading of the number in `fmt`. A routed USPS number may carry a 5- or a 9-digit ZIP before the
    body, and a +4 that starts with 92-95 looks like the body's start: every split is tried."""
    out = []
    whole = fmt.regex.fullmatch(number)
    if whole:
        out.append(_judge(fmt, whole))
    if fmt.routed and number.startswith("420"):
        for size in (5, 9):
            body = number[3 + size:]
            m = fmt.regex.fullmatch(body)
            if m and not (m.groupdict().get("RoutingApplicationId")):
                out.append(_judge(fmt, m, number[3:8], number[8:12] if size == 9 else None))
    return out


def _carrier_matches(number: str, carrier_patterns: CarrierPatterns | None) -> list[FormatMatch]:
    return _pattern_matches(number, _carrier_regexes(carrier_patterns))


def _carrier_regexes(carrier_patterns: CarrierPatterns | None) -> list[tuple[str, re.Pattern[str]]]:
    """The carrier files' patterns, compiled, in their order (a pattern that does not compile matches nothing)."""
    out = []
    for name, pattern in (carrier_patterns or {}).items():
        regex = pattern if isinstance(pattern, re.Pattern) else _compiled(str(pattern))
        if regex is not None:
            out.append((str(name), regex))
    return out


def _pattern_matches(number: str, regexes: Iterable[tuple[str, re.Pattern[str]]]) -> list[FormatMatch]:
    return [FormatMatch(f"carrier:{name}", name, None, name=f"{name} (carrier file)")
            for name, regex in regexes if regex.fullmatch(number)]


@cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def validate(text: str, carrier_patterns: CarrierPatterns | None = None) -> Validation:
    """Every format the number has the shape of (best first), and so its verdict."""
    number = normalize_number(text)
    return _validation(number, _by_length(len(number)) if number else (), _carrier_regexes(carrier_patterns))


def _validation(number: str, fmts: Iterable[NumberFormat], carriers: Iterable[tuple[str, re.Pattern[str]]]) -> Validation:
    """`validate` of a normalised number, trying only `fmts` and the carrier files' `carriers`."""
    found: list[FormatMatch] = []
    for fmt in fmts:
        parses = _parses(fmt, number)
        if parses:  # one reading per format: a passing one if any, a ZIP+4 one first (as the data's regex does)
            found.append(min(parses, key=lambda p: (not p.valid, p.dest_zip4 is None)))
    found += _pattern_matches(number, carriers)
    # among equals, a reading of the whole routed USPS structure before a shape that happens to fit too
    return Validation(number, tuple(sorted(found, key=lambda m: (m.rank, not m.routed, m.dest_zip4 is None))))


def _carrier_of(v: Validation) -> str | None:
    verdict = v.verdict
    if verdict == "unknown" or not v.matches:
        return None
    return v.best.carrier


def guess_carrier(text: str, carrier_patterns: CarrierPatterns | None = None) -> str | None:
    """The carrier a number's format means: the valid format's, or the strict shape's it fails (the carrier is
    still asked: scans would prove it real); None for a number of no known format."""
    return _carrier_of(validate(text, carrier_patterns))


class CarrierGuesser:
    """`guess_carrier(number, carrier_patterns)` for many normalised numbers, the same answers faster: a number
    is tried only against the formats and carrier patterns that can start with its first character and have
    its length (what the regexes' parse tree allows, an over-estimate where it cannot tell), so a regex left
    out could not have matched. A number repeated is guessed once (a bounded memory)."""

    def __init__(self, carrier_patterns: CarrierPatterns | None = None) -> None:
        self._carriers = [(name, regex, _first_chars(regex), _widths(regex))
                          for name, regex in _carrier_regexes(carrier_patterns)]
        self._candidates: dict[tuple[int, str, bool], tuple[tuple[NumberFormat, ...], list[Any]]] = {}
        self._seen: dict[str, str | None] = {}

    def __call__(self, number: str) -> str | None:
        seen = self._seen
        if number in seen:
            return seen[number]
        if not number or number != normalize_number(number):  # not normalised: the plain path normalises it
            return guess_carrier(number, {name: regex for name, regex, _, _ in self._carriers})
        first = number[0]
        key = (len(number), first if first.isascii() else "", number.startswith("420"))
        pick = self._candidates.get(key)
        if pick is None:
            pick = self._candidates[key] = self._pick(*key)
        fmts, carriers, ranks = pick
        guess = _shape_only_guess(number, fmts, carriers, ranks)
        if guess is _JUDGE:
            guess = _carrier_of(_validation(number, fmts, carriers))
        if len(seen) < 65536:
            seen[number] = guess
        return guess

    def _pick(self, length: int, first: str, routed: bool) -> tuple[tuple[NumberFormat, ...], list[Any], list[int | None]]:
        def may(starts: frozenset[str] | None) -> bool:  # "" is a first character out of ASCII: not filtered
            return starts is None or first == "" or first in starts

        fmts = tuple(f for f in _by_length(length) if may(_format_first_chars(f.id)) or (routed and f.routed))
        carriers = [(name, regex) for name, regex, starts, (low, high) in self._carriers
                    if low <= length <= high and may(starts)]
        return fmts, carriers, [_shape_only_rank(f) for f in fmts]


_JUDGE = object()  # the number needs the full judgement


def _shape_only_rank(fmt: NumberFormat) -> int | None:
    """The rank (`FormatMatch.rank`) any reading of the number in `fmt` has, when the regex's match is the whole
    test: no check digit, rule or lookup, one reading (no routing prefix), no ZIP to order readings by, the carrier
    the format's own. None for a format whose readings must be judged."""
    if not fmt.shape_only or fmt.routed or "DestinationZip" in fmt.groups or fmt.id == "s10":
        return None
    return 0 if fmt.strict else 2


def _shape_only_guess(number: str, fmts: tuple[NumberFormat, ...], carriers: list[Any],
                      ranks: list[int | None]) -> str | None | object:
    """`_carrier_of(_validation(number, fmts, carriers))` when every format the number matches is shape-only:
    every reading is then valid, so the verdict is valid (or unknown without one) and the best reading is the
    first of the lowest rank, in the order `_validation` finds them (formats, then carrier files, rank 3).
    `_JUDGE` when a format that must be judged reads the number."""
    best_rank, best = 4, None
    for fmt, rank in zip(fmts, ranks, strict=True):
        if rank is None:
            if fmt.regex.fullmatch(number) or (fmt.routed and number.startswith("420")):
                return _JUDGE
        elif rank < best_rank and fmt.regex.fullmatch(number):
            best_rank, best = rank, fmt.carrier
    if best is not None:
        return best
    return next((name for name, regex in carriers if regex.fullmatch(number)), None)


@cache
def _format_first_chars(format_id: str) -> frozenset[str] | None:
    return _first_chars(_format_index()[format_id].regex)


def _widths(regex: re.Pattern[str]) -> tuple[int, int]:
    """Shortest and longest text the regex can fullmatch (any length where the parser cannot tell)."""
    try:
        from re import _parser  # type: ignore[attr-defined]  # the stdlib's own width computation

        low, high = _parser.parse(regex.pattern, regex.flags).getwidth()
        return int(low), int(high)
    except Exception:  # noqa: BLE001 - a private API: without it, no length filter
        return 0, 1 << 62


_ASCII = [chr(c) for c in range(128)]


def _first_chars(regex: re.Pattern[str]) -> frozenset[str] | None:
    """The ASCII characters a match of the regex can start with (a match of nothing counts as any); None when the
    parse tree holds something this does not read (then every number is tried), or the regex ignores case."""
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]

        if regex.flags & re.IGNORECASE:
            return None
        starts, empty = _first_of(_parser.parse(regex.pattern, regex.flags), c)
    except Exception:  # noqa: BLE001 - a private API: without it, no filter
        return None
    return None if starts is None or empty else frozenset(starts)


def _first_of(seq: Any, c: Any) -> tuple[set[str] | None, bool]:
    """(the first characters of a sequence of parse nodes, whether it can match nothing); None: cannot tell."""
    out: set[str] = set()
    for op, av in seq:
        if op is c.LITERAL:
            return out | {chr(av)}, False
        if op is c.IN:
            chars = _class_chars(av, c)
            if chars is None:
                return None, True
            return out | chars, False
        if op is c.AT or op in (c.ASSERT, c.ASSERT_NOT):  # consume nothing; a lookaround only narrows
            continue
        if op is c.SUBPATTERN:
            group, add_flags, del_flags, sub = av
            if add_flags & re.IGNORECASE:
                return None, True
            starts, empty = _first_of(sub, c)
        elif op is c.BRANCH:
            starts, empty = set(), False
            for alternative in av[1]:
                s, e = _first_of(alternative, c)
                if s is None:
                    return None, True
                starts |= s
                empty = empty or e
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)):
            low, _high, sub = av
            starts, empty = _first_of(sub, c)
            empty = empty or low == 0
        elif op is getattr(c, "ATOMIC_GROUP", None):
            starts, empty = _first_of(av, c)
        else:  # ANY, NOT_LITERAL, group references, ...: cannot tell
            return None, True
        if starts is None:
            return None, True
        out |= starts
        if not empty:
            return out, False
    return out, True


_CATEGORY = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W",
             "CATEGORY_SPACE": r"\s", "CATEGORY_NOT_SPACE": r"\S"}


def _class_chars(items: Any, c: Any) -> set[str] | None:
    """The ASCII characters a character class takes; None where it cannot tell (a negated class)."""
    out: set[str] = set()
    for op, av in items:
        if op is c.LITERAL:
            out.add(chr(av))
        elif op is c.RANGE:
            out.update(ch for ch in _ASCII if av[0] <= ord(ch) <= av[1])
        elif op is c.CATEGORY and getattr(av, "name", None) in _CATEGORY:
            one = re.compile(_CATEGORY[av.name])
            out.update(ch for ch in _ASCII if one.fullmatch(ch))
        else:
            return None
    return out


# --- whole columns -------------------------------------------------------------------------------------

@cache
def _s10_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For the S10 column path: the weights, and 26x26 tables of allowed service indicators and countries,
    computed from the s10 format's own rules so both paths always agree."""
    import numpy as np

    fmt = _format_index().get("s10")
    if fmt is None or (fmt.checksum or {}).get("name") != "s10":
        return None
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pairs = [[a + b for b in letters] for a in letters]
    service_ok = np.array([[not any(r.group == "ServiceType" and r.pattern.search(p) for r in fmt.forbid)
                            for p in row] for row in pairs], dtype=bool)
    country_ok = np.array([[_judge(fmt, fmt.regex.fullmatch(f"AA{s10_fill(fmt)}{p}")).valid for p in row]
                           for row in pairs], dtype=bool)
    weights = np.array(fmt.checksum.get("weightings") or S10_WEIGHTS, dtype=np.int64)
    return weights, service_ok, country_ok


def s10_fill(fmt: NumberFormat) -> str:
    """Eight serial digits and their S10 check digit (to test a country code alone)."""
    return "00000000" + fmt.expected_check("00000000")


def _s10_column(block: np.ndarray) -> np.ndarray:
    """The S10 verdict (True: valid) for rows of 13 ASCII bytes already shaped LLDDDDDDDDDLL."""
    import numpy as np

    weights, service_ok, country_ok = _s10_tables()
    digits = block[:, 2:10].astype(np.int64) - 48
    r = (digits @ weights) % 11
    c = np.where(r == 1, 0, np.where(r == 0, 5, 11 - r))
    return ((c == block[:, 10].astype(np.int64) - 48) & service_ok[block[:, 0] - 65, block[:, 1] - 65]
            & country_ok[block[:, 11] - 65, block[:, 12] - 65])


@cache
def _column_patterns() -> tuple[list[str], list[str]]:
    """RE2 patterns (Arrow's regex engine) of the shape-only formats, and of the strict shapes they must not
    also have; a strict format RE2 cannot read (lookarounds) is stood for by its length range."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def re2(fmt: NumberFormat) -> str | None:
        pattern = "^(?:" + fmt.regex.pattern + ")$"
        try:
            pc.match_substring_regex(pa.array(["x"]), pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return pattern

    shapes = [p for f in formats() if f.shape_only and (p := re2(f))]
    strict = []
    for f in formats():
        if f.strict and f.id != "s10":
            strict.append(re2(f) or f"^.{{{f.min_len},{f.max_len}}}$")
    return shapes, strict


def verdicts_many(numbers: Iterable[str], carrier_patterns: CarrierPatterns | None = None) -> list[str]:
    """`validate(n).verdict` for many normalised numbers at once. The common shapes are judged on whole Arrow
    columns (S10 arithmetic in numpy, shape-only formats by regex), anything else through `validate` itself,
    so both always agree. Only ASCII numbers take the column path: Python's `\\d` also matches other
    scripts' digits, the column regexes do not."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = [n or "" for n in numbers]
    out = np.full(len(numbers), "", dtype=object)
    if not numbers:
        return []
    texts = pa.array(numbers, type=pa.string())
    ascii_ = pc.string_is_ascii(texts)
    shapes, strict = _column_patterns()

    def any_of(patterns: list[str]) -> np.ndarray:
        if not patterns:
            return np.zeros(len(numbers), dtype=bool)
        return pc.match_substring_regex(texts, "|".join(patterns)).to_numpy(zero_copy_only=False)

    ascii_np = ascii_.to_numpy(zero_copy_only=False)
    other_strict = any_of(strict)
    shaped = ascii_np & any_of(shapes) & ~other_strict
    s10 = ascii_np & pc.match_substring_regex(texts, r"^[A-Z]{2}[0-9]{9}[A-Z]{2}$").to_numpy(zero_copy_only=False)
    s10 &= ~other_strict & (_s10_tables() is not None)
    out[shaped & ~s10] = "valid"
    rows = np.flatnonzero(s10)
    if len(rows):
        block = pc.cast(texts.take(pa.array(rows)), pa.binary())
        offsets = np.frombuffer(block.buffers()[1], dtype=np.int32)[block.offset:block.offset + len(block) + 1]
        data = np.frombuffer(block.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        ok = _s10_column(data.reshape(len(rows), 13))
        out[rows[ok]] = "valid"
        out[rows[~ok]] = "invalid"
    for i in np.flatnonzero(out == "").tolist():
        out[i] = validate(numbers[i], carrier_patterns).verdict if numbers[i] else "unknown"
    return out.tolist()


def valid_many(numbers: Iterable[str], carrier_patterns: CarrierPatterns | None = None) -> list[bool]:
    """`validate(n).valid` for many normalised numbers at once (see `verdicts_many`)."""
    return [v == "valid" for v in verdicts_many(numbers, carrier_patterns)]


# --- synthesis -----------------------------------------------------------------------------------------

def make_number(format_id: str, rng: random.Random, *, tries: int = 200, serial: str | None = None) -> str:
    """A new valid number of the format: one of its shipped valid numbers with the serial (its package part
    where it has one) redrawn at random and the check digit recomputed. For generated worlds and tests.

    `serial` (digits): written over the last digits of that part instead of random ones, so numbers made with
    different serials differ (a generated world's numbers are unique without a registry)."""
    fmt = _format_index()[format_id]
    templates = [normalize_number(n) for n in fmt.valid_numbers]
    templates = [t for t in templates if fmt.regex.fullmatch(t)]
    if not templates:
        raise ValueError(f"format {format_id}: no shipped valid number to build on")
    for _ in range(tries):
        template = rng.choice(templates)
        m = fmt.regex.fullmatch(template)
        group = next(g for g in ("PackageId", "SerialNumber") if g in fmt.groups and m.group(g) is not None)
        start, end = m.span(group)
        chars = list(template)
        for i in range(start, end):  # each digit redrawn where the format's shape allows it (fixed prefixes stay)
            if chars[i].isdigit():
                old, chars[i] = chars[i], str(rng.randrange(10))
                if not fmt.regex.fullmatch("".join(chars)):
                    chars[i] = old
        if serial is not None and not _write_serial(fmt, chars, *_serial_span(fmt, m, start, end), serial):
            raise ValueError(f"format {format_id}: its serial part has no room for {len(serial)} digits")
        if fmt.checksum and "CheckDigit" in fmt.groups:
            m2 = fmt.regex.fullmatch("".join(chars))
            if m2 is None:
                continue
            c_start, c_end = m2.span("CheckDigit")
            if c_end - c_start != 1:
                continue
            chars[c_start] = fmt.expected_check(fmt.serial(m2))
        number = "".join(chars)
        v = validate(number)
        if v.valid and any(m.format == format_id and m.valid for m in v.matches):
            return number
    raise ValueError(f"format {format_id}: no valid number drawn in {tries} tries")


def _serial_span(fmt: NumberFormat, match: re.Match[str], start: int, end: int) -> tuple[int, int]:
    """Where a serial goes: the whole serial number (shipper and package ids) where the format names one."""
    if "SerialNumber" in fmt.groups and match.group("SerialNumber") is not None:
        return match.span("SerialNumber")
    return start, end


def _write_serial(fmt: NumberFormat, chars: list[str], start: int, end: int, serial: str) -> bool:
    """`serial`'s digits over the last digit positions of chars[start:end] that the format lets hold them, in
    place; False when there are too few such positions."""
    at = len(serial) - 1
    for i in range(end - 1, start - 1, -1):
        if at < 0:
            break
        if not chars[i].isdigit():
            continue
        old, chars[i] = chars[i], serial[at]
        if fmt.regex.fullmatch("".join(chars)):
            at -= 1
        else:
            chars[i] = old
    return at < 0
