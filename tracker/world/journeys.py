"""Parcel journeys: the carrier scans from "info received" to "delivered", with realistic timings.

Stages, their texts and gaps are data (data/world/stages.toml). Times here are integer UTC epoch
seconds: a million orders make ~8M scans, so the hot loop never builds a datetime.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracker.config import load
from tracker.world.numbers import real_carriers
from tracker.world.settings import derived

HOUR = 3600
DAY = 86400

# Where a scan happens: (city, postcode, country, location).
Place = tuple[str, str, str, str]


def place(city: str, postcode: str, country: str) -> Place:
    return (city, postcode, country, f"{city}, {country}")


@dataclass(frozen=True)
class Stage:
    code: str
    status: str
    where: str  # origin / export / hub / dest
    gap_lo: int  # seconds
    gap_span: int
    shown: float
    texts: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Extra:
    code: str
    status: str
    texts: dict[str, tuple[str, ...]]


def stages() -> tuple[tuple[Stage, ...], dict[str, Extra]]:
    """The journey's stages and the extra scans (data/world/stages.toml)."""
    return derived("world/stages", _build_stages)


def _build_stages(raw: dict) -> tuple[tuple[Stage, ...], dict[str, Extra]]:
    line = tuple(
        Stage(
            code=s["code"],
            status=s["status"],
            where=s["place"],
            gap_lo=int(s["gap"][0] * HOUR),
            gap_span=int((s["gap"][1] - s["gap"][0]) * HOUR),
            shown=float(s["shown"]),
            texts={k: tuple(v) for k, v in s["text"].items()},
        )
        for s in raw["stage"]
    )
    extras = {
        name: Extra(
            code=e.get("code", name), status=e["status"], texts={k: tuple(v) for k, v in e["text"].items()}
        )
        for name, e in raw["extra"].items()
    }
    return line, extras


CUSTOMS_AND_LINEHAUL = frozenset(
    {
        "CC_EX_START",
        "CC_EX_SUCCESS",
        "LH_HO_IN_SUCCESS",
        "LH_DEPART",
        "LH_ARRIVE",
        "CC_IM_START",
        "CC_IM_SUCCESS",
        "GTMS_ACCEPT",
    }
)


class Clock:
    """Epoch seconds to the canonical 'YYYY-MM-DDTHH:MM:SSZ': a cached date part plus a table of times."""

    _HMS: list[str] = []

    def __init__(self) -> None:
        self.dates: dict[int, str] = {}  # day number -> 'YYYY-MM-DD'
        if not Clock._HMS:
            Clock._HMS = [
                f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
            ]
        self.times = Clock._HMS  # second of the day -> 'THH:MM:SSZ'

    def iso(self, t: int) -> str:
        day, s = divmod(t, DAY)
        ds = self.dates.get(day)
        if ds is None:
            ds = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")
            self.dates[day] = ds
        return ds + self.times[s]


# One scan before it is written out: (time, raw_code, status, description, place)
Scan = tuple[int, str, str, str, Place]


class JourneyMaker:
    def __init__(self, rates: dict[str, Any] | None = None) -> None:
        """`rates`: the world's rates (data/world/rates.toml, as a profile changed them)."""
        rates = load("world/rates") if rates is None else rates
        self.line, self.extras = stages()
        self.index = {s.code: i for i, s in enumerate(self.line)}
        self.cfg = rates["journey"]
        self._fail_p = float(self.cfg["failed_attempt"])
        self._pickup_p = float(self.cfg["pickup_point"])
        self._scale = float(rates["timing"]["transit_scale"])
        density = float(self.cfg["scan_density"])
        # carriers with numbers of their own print a courier's or a post's words (data/world/carriers.toml)
        self._words = {name: c.words for name, c in real_carriers().items()}
        # Per carrier, the line as plain tuples: the hot loop reads no attributes.
        self._compiled = {
            carrier: tuple(
                (
                    s.code,
                    s.status,
                    s.where,
                    s.gap_lo,
                    s.gap_span,
                    s.shown if s.shown >= 1.0 else min(1.0, s.shown * density),  # always-shown stages stay so
                    self._options(s.texts, carrier),
                )
                for s in self.line
            )
            for carrier in (*rates["carriers"], *self._words)
        }

    def _options(self, texts: dict[str, tuple[str, ...]], carrier: str) -> tuple[str, ...]:
        return texts.get(carrier) or texts.get(self._words.get(carrier, "")) or texts["cainiao"]

    def _text(self, texts: dict[str, tuple[str, ...]], carrier: str, rng: random.Random) -> str:
        options = self._options(texts, carrier)
        r = rng.random()
        # Carriers mostly print one wording; the others turn up now and then.
        return (
            options[0]
            if r < 0.6 or len(options) == 1
            else options[int((r - 0.6) / 0.4 * len(options)) % len(options)]
        )

    def build(
        self,
        rng: random.Random,
        carrier: str,
        start: int,
        places: dict[str, Place],
        *,
        factor: float = 1.0,
        skip: frozenset[str] = frozenset(),
        stop_after: str | None = None,
        show_all: bool = False,
        sparse: float = 0.0,
        ending: str = "auto",
        last_mile_number: str | None = None,
    ) -> list[Scan]:
        """The scans of one parcel, oldest first.

        factor stretches every gap; skip drops stages entirely (their time does not pass either);
        stop_after ends the journey after a stage; show_all shows every optional stage (express);
        sparse hides each non-final scan with that probability (cheap untracked mail);
        ending: 'auto' (mostly straight delivery, sometimes a failed attempt or a pickup point), 'plain'.
        """
        scans: list[Scan] = []
        append = scans.append
        t = start
        factor *= self._scale
        rand = rng.random
        last = len(self.line) - 1
        fail_p = self._fail_p
        pickup_p = fail_p + self._pickup_p
        # A carrier mostly prints its usual wording; some parcels pass through offices that word it otherwise.
        r = rand()
        variant = 0 if r < 0.6 else 1 + int((r - 0.6) * 10)
        for i, (code, status, where, gap_lo, gap_span, shown_p, texts) in enumerate(self._compiled[carrier]):
            if skip and code in skip:
                continue
            if i:
                t += int((gap_lo + gap_span * rand()) * factor) + 60
            if i == last and ending == "auto":
                r = rand()
                if r < fail_p:
                    scans.extend(self._failed_attempt(rng, carrier, t, places["dest"]))
                    t = scans[-1][0] + int((1 + 7 * rand()) * HOUR)
                elif r < pickup_p:
                    pick = self.extras["pickup"]
                    append((t, pick.code, pick.status, self._text(pick.texts, carrier, rng), places["dest"]))
                    t += int((20 + 140 * rand()) * HOUR)
                    got = self.extras["collected"]
                    append((t, got.code, got.status, self._text(got.texts, carrier, rng), places["dest"]))
                    break
            shown = show_all or shown_p >= 1.0 or rand() < shown_p
            if shown and sparse and 0 < i < last and rand() < sparse:
                shown = False
            if shown:
                text = texts[variant % len(texts)]
                if last_mile_number and code == "GTMS_ACCEPT":
                    text = f"{text}, last-mile tracking number {last_mile_number}"
                append((t, code, status, text, places[where]))
            if code == stop_after:
                break
        return scans

    def _failed_attempt(self, rng: random.Random, carrier: str, t: int, dest: Place) -> list[Scan]:
        fail = self.extras["GTMS_DEL_FAILURE"]
        out_stage = self.line[self.index["GTMS_DO_DEPART"]]
        return [(t, fail.code, fail.status, self._text(fail.texts, carrier, rng), dest)] + [
            (
                t + int((16 + 10 * rng.random()) * HOUR),
                out_stage.code,
                out_stage.status,
                self._text(out_stage.texts, carrier, rng),
                dest,
            )
        ]

    def extra(self, rng: random.Random, name: str, carrier: str, t: int, where: Place) -> Scan:
        """One scan of an [extra.NAME] stage (relabelled, exception, returned...)."""
        e = self.extras[name]
        return (t, e.code, e.status, self._text(e.texts, carrier, rng), where)

    def delivered_at(self, scans: list[Scan]) -> int | None:
        for s in reversed(scans):
            if s[2] == "delivered":
                return s[0]
        return None
