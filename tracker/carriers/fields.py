"""What every adapter does with one event once it has found its raw fields: read the time (the page's zone
first), map code and text to a normalised status, split the place, and say whose parcel the page is about.

An adapter finds, per event, texts for some of: time (or date and time parts, joined), time_zone,
description, code, location, city, postcode, country. `EventMaker.make` turns them into an event row, or
None for an undated row (dropped, logged and noted on the result; it never costs the page).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from functools import cache
from typing import Any

from tracker.carriers.base import Carrier, ParseResult
from tracker.carriers.times import TimeReader, carrier_zone
from tracker.events import NORMALISED_STATUSES
from tracker.timeutil import to_db

log = logging.getLogger("tracker.carriers")

FIELDS = ("time", "time_zone", "description", "code", "location", "city", "postcode", "country")
_TOKEN = re.compile(r"[A-Z0-9]{8,40}")
_NORMALISE = re.compile(r"[\s\-]+")


def text(value: Any) -> str | None:
    """A field's value as one line of text; None when empty."""
    if value is None or isinstance(value, dict | list):
        return None
    out = " ".join(str(value).split())
    return out or None


class Vocabulary:
    """The carrier's [codes] (its own event codes; `"SC_*"` matches a prefix) and [words] (phrases of its
    text, whole text first, then the longest phrase contained; a phrase says more than a code, so it wins).
    Each maps to a status, or to {status, code} (the stage code stored as raw_code)."""

    def __init__(self, settings: dict[str, Any]):
        codes = {**settings.get("statuses", {}), **settings.get("codes", {})}  # [statuses]: the older name
        words = {**settings.get("descriptions", {}), **settings.get("words", {})}
        self.codes = {str(k): _entry(v) for k, v in codes.items()}
        self.code_patterns = [(re.compile(fnmatch.translate(p)).match, self.codes[p])
                              for p in sorted((p for p in self.codes if "*" in p), key=len, reverse=True)]
        self.words = {" ".join(str(k).split()).lower(): _entry(v) for k, v in words.items()}
        self.by_length = sorted(self.words, key=len, reverse=True)

    def problems(self) -> list[str]:
        return [f"[{table}] {key!r}: {status!r} is not a normalised status"
                for table, entries in (("codes", self.codes), ("words", self.words))
                for key, (status, _code) in entries.items() if status not in NORMALISED_STATUSES]

    def code_status(self, code: str) -> tuple[str, str | None] | None:
        found = self.codes.get(code)
        if found is None:
            for match, entry in self.code_patterns:
                if match(code):
                    return entry
        return found

    def word_status(self, description: str) -> tuple[str, str | None] | None:
        key = description.lower()
        found = self.words.get(key)
        if found is None:
            for word in self.by_length:
                if word in key:
                    return self.words[word]
        return found


def _entry(value: Any) -> tuple[str, str | None]:
    if isinstance(value, dict):
        return str(value.get("status", "")), (str(value["code"]) if value.get("code") else None)
    return str(value), None


@cache
def country_code(name: str) -> str | None:
    """A country name or code as printed by a carrier -> ISO alpha-2 (None when unknown)."""
    import pycountry

    name = name.strip()
    if len(name) == 2 and name.isalpha():
        return name.upper()
    try:
        return pycountry.countries.lookup(name).alpha_2
    except LookupError:
        try:
            return pycountry.countries.search_fuzzy(name)[0].alpha_2
        except LookupError:
            return None


def normalise_number(number: str | None) -> str:
    return _NORMALISE.sub("", number or "").upper()


def numbers_in(value: str | None) -> list[str]:
    """The tracking-number-like tokens of a text ("Item number: RR123456785CN" -> ["RR123456785CN"])."""
    found = _TOKEN.findall((value or "").upper())
    return [t for t in found if any(c.isdigit() for c in t)]


class EventMaker:
    """A carrier's rules for turning raw fields into event rows, compiled once per carrier."""

    def __init__(self, carrier: Carrier, section: dict[str, Any] | None = None):
        s = carrier.settings
        section = section or {}
        self.carrier = carrier
        formats = section.get("date_formats", s.get("date_formats"))
        self.times = TimeReader(
            carrier_zone(s, section), list(formats) if formats else None,
            day_first=bool(section.get("day_first", s.get("day_first", True))),
            zones={**s.get("zones", {}), **section.get("zones", {})},
            epoch=section.get("epoch", s.get("epoch")))
        self.vocabulary = Vocabulary(s)
        location = s.get("location", {})
        self.location = re.compile(location["pattern"]) if location.get("pattern") else None
        self.country_format = location.get("country_format", "alpha2")
        self.default_country = location.get("country")  # from the carrier file when the page names none

    def make(self, tracking_number: str, raw: dict[str, Any], result: ParseResult, where: str) -> dict[str, Any] | None:
        """One event row from the raw fields, or None (noted on `result`) when the row has no usable time."""
        raw = {k: (" ".join(p for p in map(text, v) if p) or None) if isinstance(v, list | tuple) else v
               for k, v in raw.items()}  # parts in separate elements (a date and a time) joined
        when = raw.get("time")
        try:
            if when is None or (isinstance(when, str) and not when.strip()):
                raise ValueError("no time")
            occurred = self.times.read(when, text(raw.get("time_zone")))
        except ValueError as exc:
            result.notes.append(f"{where}: {exc}; row dropped")
            log.info("%s: %s on %s: %s; row dropped", self.carrier.name, where, tracking_number, exc)
            return None
        description = text(raw.get("description")) or ""
        code = text(raw.get("code"))
        status, stage = self.status(code, description, result)
        location = text(raw.get("location"))
        city, postcode, country = text(raw.get("city")), text(raw.get("postcode")), text(raw.get("country"))
        if location and self.location:
            m = self.location.match(location)
            if m:
                parts = m.groupdict()
                city = city or (parts.get("city") or "").strip() or None
                postcode = postcode or (parts.get("postcode") or "").strip() or None
                country = country or (parts.get("country") or "").strip() or None
        if country:
            country = (country_code(country) if self.country_format == "name" or len(country) != 2
                       else country.upper())
        country = country or self.default_country
        row = {
            "tracking_number": tracking_number,
            "occurred_at": to_db(occurred),
            "status": status,
            "description": description,
            "location": location or (", ".join(p for p in (city, country) if p) or None),
            "city": city,
            "postcode": postcode,
            "country": country,
            "carrier": self.carrier.name,
            "raw_code": code or stage,
        }
        last_mile = text(raw.get("last_mile_number"))
        if last_mile:
            row["extra"] = json.dumps({"last_mile_number": last_mile})
        return row

    def status(self, code: str | None, description: str, result: ParseResult) -> tuple[str, str | None]:
        """The event's status and stage code: a [words] phrase first, then its [codes] entry; else unknown."""
        by_word = self.vocabulary.word_status(description) if description else None
        if by_word is not None:
            return by_word
        by_code = self.vocabulary.code_status(code) if code else None
        if by_code is not None:
            return by_code
        result.unknown_codes.append(code or description[:60] or "(none)")
        log.info("%s: unknown event %r kept raw as 'unknown'", self.carrier.name, code or description[:60])
        return "unknown", None


def check_common(carrier: Carrier, section: dict[str, Any] | None = None) -> list[str]:
    """Problems every adapter shares: the zone, the date formats, the status tables, the place pattern."""
    try:
        maker = EventMaker(carrier, section)
    except (ValueError, re.error) as exc:
        return [f"bad settings: {exc}"]
    return maker.vocabulary.problems()
