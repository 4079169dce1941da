"""Tracking numbers for the generated world: valid ones unique per world, and the invalid kinds sellers use.

Uniqueness without a registry: every number carries its serial (the order slot that created it) passed
through a seed-dependent bijection of 0..10**8-1, so two different serials never share digits.
"""

from __future__ import annotations

import random

from detectors.tracking_numbers import S10_RESERVED_FIRST_LETTERS, is_real_country, s10_check_digit

SERIAL_SPACE = 10**8
# Registered / tracked services China Post gives AliExpress sellers; untracked cheap mail uses the U… ones.
TRACKED_SERVICES = ("LO", "LA", "LB", "LN", "RB", "RR", "RS", "RF", "RQ", "CP", "EA")
UNTRACKED_SERVICES = ("UB", "UA", "UC", "UH", "UM")
INVALID_COUNTRIES = ("ZZ", "XX", "QQ", "AA", "XC", "OO")


class NumberMaker:
    """Deterministic per seed; `serial` must be unique per number within a world (and < 10**8)."""

    def __init__(self, seed: int):
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
        # LP + 14 digits: a batch prefix, then the unique part.
        return f"LP00{self._lp_prefix}{rng.randrange(100):02d}{self.digits8(serial)}"

    def yunexpress(self, serial: int, rng: random.Random) -> str:
        return f"YT{self._yt_prefix}{rng.randrange(10000):04d}{self.digits8(serial)}"

    def make(self, carrier: str, serial: int, rng: random.Random, *, untracked: bool = False) -> str:
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
