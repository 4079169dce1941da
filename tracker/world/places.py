"""Places of the generated world (data/world/places.toml): countries, cities, postcodes, hubs.

Also the normalisation a reader needs to compare what a buyer wrote with what a carrier scanned:
`canonical_city` (aliases such as "Moskva" or "Munich") and `canonical_postcode` (spacing, hyphens,
a country prefix, a US ZIP+4).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from tracker.world.settings import derived


@dataclass(frozen=True)
class City:
    name: str
    country: str
    weight: float
    ranges: tuple[tuple[int, int], ...]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    weight: float
    currency: str
    usd_rate: float
    postcode_format: str
    transit_factor: float
    hub_city: str
    hub_postcode: str
    last_mile: str
    cities: tuple[City, ...]


@dataclass(frozen=True)
class Places:
    countries: tuple[Country, ...]
    origins: tuple[City, ...]
    origin_format: str
    export_hubs: tuple[tuple[str, str], ...]
    letters: dict[str, str]
    city_names: dict[tuple[str, str], str]  # (country, folded name or alias) -> canonical name
    postcode_patterns: dict[str, re.Pattern[str]]  # country -> its format, optional country prefix
    timezones: dict[tuple[str, str], str]  # (country, city) -> IANA zone; (country, "") is the country's own

    def timezone(self, country: str, city: str) -> str:
        """The wall clock of a place: the city's zone, else its country's, else UTC."""
        return self.timezones.get((country, city)) or self.timezones.get((country, ""), "UTC")

    def country(self, code: str) -> Country:
        for c in self.countries:
            if c.code == code:
                return c
        raise KeyError(code)


def _city(raw: dict, country: str) -> City:
    return City(
        name=raw["name"],
        country=country,
        weight=float(raw.get("weight", 1)),
        ranges=tuple((int(lo), int(hi)) for lo, hi in raw["postcodes"]),
        aliases=tuple(raw.get("aliases", ())),
    )


def places() -> Places:
    """The place table (data/world/places.toml)."""
    return derived("world/places", _build_places)


def _build_places(raw: dict[str, Any]) -> Places:
    countries = []
    for code, c in raw["countries"].items():
        countries.append(
            Country(
                code=code,
                name=c["name"],
                weight=float(c["weight"]),
                currency=c["currency"],
                usd_rate=float(c["usd_rate"]),
                postcode_format=c["postcode_format"],
                transit_factor=float(c["transit_factor"]),
                hub_city=c["hub"]["city"],
                hub_postcode=c["hub"]["postcode"],
                last_mile=c.get("last_mile", ""),
                cities=tuple(_city(city, code) for city in c["cities"]),
            )
        )
    origin = raw["origin"]
    return Places(
        countries=tuple(countries),
        origins=tuple(_city(city, origin["country"]) for city in origin["cities"]),
        origin_format=origin["postcode_format"],
        export_hubs=tuple((h["city"], h["postcode"]) for h in origin["export_hubs"]),
        letters=dict(raw.get("letters", {})),
        city_names={
            (country.code, _fold(name)): city.name
            for country in countries
            for city in country.cities
            for name in (city.name, *city.aliases)
        },
        postcode_patterns={
            country.code: _format_pattern(country.code, country.postcode_format) for country in countries
        },
        timezones=_timezones(raw),
    )


def _timezones(raw: dict[str, Any]) -> dict[tuple[str, str], str]:
    origin = raw["origin"]
    zones = {(origin["country"], ""): origin.get("timezone", "UTC")}
    for code, c in raw["countries"].items():
        zones[(code, "")] = c.get("timezone", "UTC")
        for city in c["cities"]:
            if "timezone" in city:
                zones[(code, city["name"])] = city["timezone"]
    return zones


_NL_FORBIDDEN = frozenset({"SA", "SD", "SS"})


def make_postcode(rng: random.Random, fmt: str, city: City, letters: str = "ABCDEFGHJKLMNPRSTVWXZ") -> str:
    """A postcode of `city` in the country's canonical written format."""
    lo, hi = city.ranges[0] if len(city.ranges) == 1 else rng.choice(city.ranges)
    n_digits = fmt.count("#")
    digits = str(rng.randint(lo, hi)).zfill(n_digits)
    out = []
    d = 0
    pair = ""
    if "A" in fmt:
        n_letters = fmt.count("A")
        while True:
            pair = "".join(rng.choice(letters) for _ in range(n_letters))
            if pair not in _NL_FORBIDDEN:
                break
    a = 0
    for ch in fmt:
        if ch == "#":
            out.append(digits[d])
            d += 1
        elif ch == "A":
            out.append(pair[a])
            a += 1
        else:
            out.append(ch)
    return "".join(out)


_PC_STRIP = re.compile(r"[\s\-./]+")


def _format_pattern(country: str, fmt: str) -> re.Pattern[str]:
    body = "".join("[0-9]" if ch == "#" else "[A-Z]" if ch == "A" else "" for ch in fmt)
    return re.compile(f"^(?:{re.escape(country)}|[A-Z])?({body})$")


def canonical_postcode(country: str, text: str | None) -> str:
    """A postcode as bare upper-case characters: '00-950', 'PL-00950', '00 950' all become '00950'.

    Drops a country prefix ('PL-', 'D-') and a US ZIP+4 extension.
    """
    s = _PC_STRIP.sub("", (text or "").upper())
    country = (country or "").strip().upper()
    if country == "US" and len(s) == 9 and s.isdigit():
        return s[:5]
    pattern = places().postcode_patterns.get(country)
    if pattern is not None:
        m = pattern.match(s)
        if m:
            return m.group(1)
    return s


def _fold(name: str) -> str:
    return " ".join(name.casefold().replace("-", " ").split())


def canonical_city(country: str, name: str | None) -> str:
    """The carrier's spelling of a city as buyers write it ('MOSKVA', 'Munich' → 'Moscow', 'München')."""
    if not name:
        return ""
    key = ((country or "").strip().upper(), _fold(name))
    return places().city_names.get(key, name.strip())
