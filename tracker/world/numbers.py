"""Tracking numbers for the generated world: valid ones unique per world, and the invalid kinds sellers use.

Uniqueness without a registry: every number carries its serial (the order slot that created it) passed
through a seed-dependent bijection of 0..10**8-1, so two different serials never share digits. Carriers
with numbers of their own (FedEx, DHL, USPS, Royal Mail...: data/world/carriers.toml) get numbers of their
real formats (`detectors.tracking_numbers.make_number`) with those digits in their serial part.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detectors.tracking_numbers import (
    S10_RESERVED_FIRST_LETTERS,
    is_real_country,
    make_number,
    s10_check_digit,
    validate,
)
from tracker.errors import BadInput
from tracker.world.settings import derived

SERIAL_SPACE = 10**8
# Registered / tracked services China Post gives AliExpress sellers; untracked cheap mail uses the U… ones.
TRACKED_SERVICES = ("LO", "LA", "LB", "LN", "RB", "RR", "RS", "RF", "RQ", "CP", "EA")
UNTRACKED_SERVICES = ("UB", "UA", "UC", "UH", "UM")
INVALID_COUNTRIES = ("ZZ", "XX", "QQ", "AA", "XC", "OO")
CAINIAO_FORMS = ("lp", "cainiao_ae", "cainiao_y")  # rates.toml [numbers] cainiao_forms, in this order


@dataclass(frozen=True)
class RealCarrier:
    """A carrier with numbers of its own (data/world/carriers.toml)."""

    name: str
    formats: tuple[str, ...]
    format_cum: tuple[float, ...]
    countries: frozenset[str]  # empty: delivers anywhere
    words: str
    routed: float = 0.0

    def serves(self, country: str) -> bool:
        return not self.countries or country in self.countries


def real_carriers() -> dict[str, RealCarrier]:
    """The carriers of data/world/carriers.toml, by name."""
    return derived("world/carriers", _build_carriers)


def _build_carriers(raw: dict[str, Any]) -> dict[str, RealCarrier]:
    out = {}
    for name, c in raw.get("carrier", {}).items():
        formats = dict(c.get("formats") or {})
        if not formats or any(float(w) < 0 for w in formats.values()):
            raise BadInput(f"data/world/carriers.toml: carrier {name}: formats must map format ids to weights >= 0")
        words = str(c.get("words", ""))
        if words not in ("courier", "post"):
            raise BadInput(f"data/world/carriers.toml: carrier {name}: words {words!r} is not courier or post")
        out[name] = RealCarrier(name, tuple(formats), tuple(itertools.accumulate(float(w) for w in formats.values())),
                                frozenset(str(x).upper() for x in c.get("countries", ())), words,
                                float(c.get("routed", 0.0)))
    return out


class NumberMaker:
    """Deterministic per seed; `serial` must be unique per number within a world (and < 10**8).

    `numbers`: rates.toml [numbers] (as a profile changed it): the shapes Cainiao numbers take."""

    def __init__(self, seed: int, numbers: Mapping[str, Any] | None = None):
        forms = [float(w) for w in (numbers or {}).get("cainiao_forms", [1.0])]
        # only the LP form: nothing drawn (the default world stays as it was)
        self._cainiao_cum = list(itertools.accumulate(forms)) if any(forms[1:]) else None
        self._real = real_carriers()
        rng = random.Random(f"numbers/{seed}")
        # An affine map modulo 10**8 is a bijection when the multiplier is coprime to 10.
        self._mul = rng.randrange(1, SERIAL_SPACE // 10) * 10 + rng.choice((1, 3, 7, 9))
        self._add = rng.randrange(SERIAL_SPACE)
        self._lp_prefix = f"{rng.randrange(100):02d}"
        self._yt_prefix = f"{rng.randrange(2300, 2500):04d}"

    def digits8(self, serial: int) -> str:
        return f"{(serial * self._mul + self._add) % SERIAL_SPACE:08d}"

    def s10(self, serial: int, service: str, country: str = "CN") -> str:
        d = self.digits8(serial)
        return f"{service}{d}{s10_check_digit(d)}{country}"

    def cainiao(self, serial: int, rng: random.Random) -> str:
        if self._cainiao_cum is not None:
            form = CAINIAO_FORMS[bisect.bisect(self._cainiao_cum, rng.random() * self._cainiao_cum[-1])]
            if form != "lp":
                return make_number(form, rng, serial=self.digits8(serial))
        # LP + 14 digits: a batch prefix, then the unique part.
        return f"LP00{self._lp_prefix}{rng.randrange(100):02d}{self.digits8(serial)}"

    def yunexpress(self, serial: int, rng: random.Random) -> str:
        return f"YT{self._yt_prefix}{rng.randrange(10000):04d}{self.digits8(serial)}"

    def is_real(self, carrier: str) -> bool:
        """Whether the carrier is one of data/world/carriers.toml (numbers of its own real formats)."""
        return carrier in self._real

    def serves(self, carrier: str, country: str) -> bool:
        return self._real[carrier].serves(country)

    def express(self, number: str) -> bool:
        """Whether the number is an express service's (overlay.toml: FedEx Express, DHL Express, UPS...)."""
        best = validate(number).best
        return bool(best and best.valid and best.express)

    def real(self, carrier: str, serial: int, rng: random.Random, postcode: str = "") -> str:
        """A valid number of one of the carrier's formats (a USPS one routed to `postcode`'s ZIP sometimes)."""
        c = self._real[carrier]
        fmt = c.formats[bisect.bisect(c.format_cum, rng.random() * c.format_cum[-1])]
        if fmt.startswith("s10:"):
            return self.s10(serial, rng.choice(TRACKED_SERVICES), fmt[4:])
        number = make_number(fmt, rng, serial=self.digits8(serial))
        for _ in range(20):  # some shipped examples carry a routing prefix with another ZIP: drawn again
            best = validate(number).best
            if not (best and best.dest_zip):
                break
            number = make_number(fmt, rng, serial=self.digits8(serial))
        zip5 = postcode[:5]
        if c.routed and rng.random() < c.routed and len(zip5) == 5 and zip5.isdigit():
            routed = f"420{zip5}{number}"
            if validate(routed).valid:
                return routed
        return number

    def invalid_real(self, carrier: str, serial: int, rng: random.Random) -> tuple[str, str]:
        """A number in the shape of one of the carrier's formats that is not valid, and the kind of failure: one
        digit changed (a strict shape whose check fails: invalid; another: of no known format), else cut short."""
        for _ in range(10):
            good = self.real(carrier, serial, rng)
            digits = [i for i, ch in enumerate(good) if ch.isdigit()]
            i = digits[-1] if rng.random() < 0.7 else rng.choice(digits)
            bad = good[:i] + str((int(good[i]) + rng.randrange(1, 10)) % 10) + good[i + 1:]
            if not validate(bad).valid:
                return bad, "bad_check_digit"
            for cut in (3, 5, 7):  # formats without a check digit: a number too short for them
                if len(good) > cut + 4 and not validate(good[:-cut]).valid:
                    return good[:-cut], "short_number"
        return self.invalid(serial, rng)

    def make(self, carrier: str, serial: int, rng: random.Random, *, untracked: bool = False,
             postcode: str = "") -> str:
        if carrier in self._real:
            return self.real(carrier, serial, rng, postcode)
        if carrier == "cainiao":
            return self.cainiao(serial, rng)
        if carrier == "yunexpress":
            return self.yunexpress(serial, rng)
        services = UNTRACKED_SERVICES if untracked else TRACKED_SERVICES
        return self.s10(serial, rng.choice(services))

    def invalid(self, serial: int, rng: random.Random) -> tuple[str, str]:
        """A number that fails validation, and the kind of failure."""
        kind = rng.choices(
            ("bad_check_digit", "reserved_service", "unknown_country", "random_string", "short_lp"),
            weights=(4, 2, 2, 3, 1),
        )[0]
        d = self.digits8(serial)
        if kind == "bad_check_digit":
            good = s10_check_digit(d)
            bad = (good + rng.randrange(1, 10)) % 10
            return f"{rng.choice(TRACKED_SERVICES)}{d}{bad}CN", kind
        if kind == "reserved_service":
            service = rng.choice(sorted(S10_RESERVED_FIRST_LETTERS)) + rng.choice("ABCDEFGHLMNPRTUXY")
            return f"{service}{d}{s10_check_digit(d)}CN", kind
        if kind == "unknown_country":
            country = rng.choice([c for c in INVALID_COUNTRIES if not is_real_country(c)])
            return f"{rng.choice(TRACKED_SERVICES)}{d}{s10_check_digit(d)}{country}", kind
        if kind == "short_lp":
            return f"LP{d[: rng.randint(6, 10)]}", kind
        shapes = (
            lambda: f"CN{d}{rng.randrange(10)}",
            lambda: f"{d}{rng.randrange(1000):03d}",
            lambda: f"YT{d}",
            lambda: "".join(
                rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(rng.randint(8, 14))
            ),
            lambda: f"TRK{d[:6]}",
        )
        return rng.choice(shapes)(), kind

    def last_mile(self, serial: int, country: str) -> str:
        """The destination post's S10 number a Cainiao parcel is handed over under."""
        return self.s10(serial, "RB" if country != "US" else "LZ", country)


def typo(number: str, rng: random.Random) -> str:
    """The same number with one digit mistyped (what an honest seller sometimes sends)."""
    positions = [i for i, ch in enumerate(number) if ch.isdigit()]
    i = rng.choice(positions)
    new = str((int(number[i]) + rng.randrange(1, 10)) % 10)
    return number[:i] + new + number[i + 1 :]
