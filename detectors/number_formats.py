"""The tracking-number formats, read once from the shipped data and compiled for Python.

data/tracking_numbers/couriers/*.json (jkeen/tracking_number_data, see SOURCE.md there) and local.json (the
marketplace formats it lacks, same schema) describe each format: a PCRE regex with named groups, a
check-digit algorithm, serial-number rewrites, lookup tables and test numbers. overlay.toml adds our reading
(strict shapes, express services, extra service rules). This module turns them into `NumberFormat`s;
`detectors.tracking_numbers` judges numbers with them. Reading the shipped files is its only I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from detectors import checksums
from detectors.reference_data import data_file, files, read_json, read_toml

DATA_DIR = data_file("tracking_numbers")
_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_NON_ALNUM = re.compile(r"[\W_]+")  # letters and digits of any script are kept (Почта России)


def python_regex(pcre: str | list[str]) -> str:
    """The data's regex (PCRE, written to find numbers in text with spaces anywhere) as a Python regex over a
    normalised number: named groups `(?<Name>` become `(?P<Name>`, the whitespace allowances `\\s*` go, and a
    literal hyphen (outside a class) goes too, since normalised numbers hold neither."""
    text = "".join(pcre) if isinstance(pcre, list) else pcre
    text = _NAMED_GROUP.sub("(?P<", text).replace("\\s*", "")
    out, in_class, i = [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            out.append(text[i:i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "-" and not in_class:
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def format_id(courier_code: str, spec: dict[str, Any]) -> str:
    """The format's `id`, or <courier_code>_<name> in lower case for the few formats the data leaves unnamed."""
    if spec.get("id"):
        return str(spec["id"])
    return f"{courier_code}_{_NON_ALNUM.sub('_', str(spec['name']).lower()).strip('_')}"


def carrier_key(name: str) -> str:
    """How carrier names are compared everywhere (importer, poller, registry): lower case, letters and digits
    only. 'AliExpress Standard Shipping', 'aliexpress-standard-shipping' -> 'aliexpressstandardshipping'."""
    return _NON_ALNUM.sub("", (name or "").lower())


@dataclass(frozen=True)
class Lookup:
    """One `additional` table: a group's value -> what it means."""

    name: str
    group: str
    entries: tuple[tuple[re.Pattern[str], dict[str, Any]], ...]
    # what `find` answered for a value (a country code, a service type: few distinct ones); bounded
    _found: dict[str, dict[str, Any] | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def find(self, value: str) -> dict[str, Any] | None:
        found = self._found
        if value in found:
            return found[value]
        entry = next((entry for pattern, entry in self.entries if pattern.fullmatch(value)), None)
        if len(found) < 4096:
            found[value] = entry
        return entry


@dataclass(frozen=True)
class Rule:
    """A value a group must not take (overlay.toml [forbid]), with the reason shown to users."""

    group: str
    pattern: re.Pattern[str]
    why: str


@dataclass(frozen=True)
class NumberFormat:
    id: str
    name: str
    carrier: str  # carrier id (carrier_key of the courier code)
    courier_name: str
    regex: re.Pattern[str]
    checksum: dict[str, Any] | None
    prepend: tuple[re.Pattern[str], str] | None  # serial_number_format.prepend_if
    lookups: tuple[Lookup, ...]
    exists: tuple[str, ...]  # lookups that must find the value
    forbid: tuple[Rule, ...]
    express_when: tuple[tuple[str, re.Pattern[str]], ...]
    strict: bool
    express: bool
    min_len: int
    max_len: int
    valid_numbers: tuple[str, ...] = ()
    invalid_numbers: tuple[str, ...] = ()
    source: str = ""
    origin: str = ""  # the data file
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def routed(self) -> bool:
        """USPS IMpb: an optional 420 + destination ZIP (5 or 9 digits) routing prefix."""
        return "RoutingApplicationId" in self.groups

    @property
    def shape_only(self) -> bool:
        """No check digit and no rule: matching the regex is the whole test."""
        return self.checksum is None and not self.exists and not self.forbid

    def serial(self, match: re.Match[str]) -> str:
        serial = match.group("SerialNumber") or ""
        if self.prepend and self.prepend[0].search(serial):
            serial = self.prepend[1] + serial
        return serial

    def expected_check(self, serial: str) -> str:
        return checksums.expected_check(self.checksum or {}, serial)


def _width(pattern: str) -> tuple[int, int]:
    """Shortest and longest string the regex can match (no bound where the parser cannot tell)."""
    try:
        from re import _parser  # type: ignore[attr-defined]  # the stdlib's own width computation

        low, high = _parser.parse(pattern).getwidth()
        return int(low), int(min(high, 10_000))
    except Exception:  # noqa: BLE001 - a private API: without it, no length prefilter
        return 0, 10_000


def _lookups(spec: dict[str, Any]) -> tuple[Lookup, ...]:
    out = []
    for table in spec.get("additional") or []:
        entries = []
        for entry in table.get("lookup") or []:
            text = entry.get("matches_regex") or re.escape(str(entry.get("matches", "")))
            entries.append((re.compile(text), entry))
        out.append(Lookup(str(table.get("name", "")), str(table.get("regex_group_name", "")), tuple(entries)))
    return tuple(out)


def _compile(courier: dict[str, Any], spec: dict[str, Any], overlay: dict[str, Any], origin: str) -> NumberFormat:
    fid = format_id(str(courier["courier_code"]), spec)
    pattern = python_regex(spec["regex"])
    regex = re.compile(pattern)
    validation = spec.get("validation") or {}
    checksum = validation.get("checksum")
    if checksum and checksum.get("name") not in checksums.ALGORITHMS:
        raise ValueError(f"{origin}: format {fid}: unknown check-digit algorithm {checksum.get('name')!r}")
    prepend = None
    rewrite = (validation.get("serial_number_format") or {}).get("prepend_if")
    if rewrite:
        prepend = (re.compile(python_regex(rewrite["matches_regex"])), str(rewrite["content"]))
    forbid = tuple(Rule(group, re.compile(str(rule["pattern"])), str(rule.get("why", "is not allowed")))
                   for group, rule in (overlay.get("forbid", {}).get(fid) or {}).items())
    express_when = tuple((group, re.compile(str(p))) for group, p in (overlay.get("express_when", {}).get(fid) or {}).items())
    low, high = _width(pattern)
    tests = spec.get("test_numbers") or {}
    return NumberFormat(
        id=fid,
        name=str(spec["name"]),
        carrier=carrier_key(str(spec.get("courier") or courier["courier_code"])),
        courier_name=str(courier.get("name", "")),
        regex=regex,
        checksum=dict(checksum) if checksum else None,
        prepend=prepend,
        lookups=_lookups(spec),
        exists=tuple((validation.get("additional") or {}).get("exists") or ()),
        forbid=forbid,
        express_when=express_when,
        strict=fid in set(overlay.get("strict", ())),
        express=fid in set(overlay.get("express", ())),
        min_len=low,
        max_len=high,
        valid_numbers=tuple(tests.get("valid") or ()),
        invalid_numbers=tuple(tests.get("invalid") or ()),
        source=str(spec.get("source", "")),
        origin=origin,
        groups=frozenset(regex.groupindex),
    )


@cache
def load_formats() -> tuple[NumberFormat, ...]:
    """Every format: local.json first (the marketplace's own carriers name a number before look-alikes),
    then the couriers' files in name order."""
    root = DATA_DIR
    overlay = read_toml(root / "overlay.toml")
    formats: list[NumberFormat] = []
    for path in [root / "local.json", *files(root / "couriers", "*.json")]:
        courier = read_json(path)
        origin = str(path.relative_to(root))
        formats.extend(_compile(courier, spec, overlay, origin) for spec in courier["tracking_numbers"])
    ids = [f.id for f in formats]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{root}: format ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    return tuple(formats)
