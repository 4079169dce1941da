"""How a world writes its files, as opposed to what happens in it: scan times off by a few hours or
written in the scan place's wall time without an offset, empty statuses, codes and places, blank order
fields. All off in the default world; random profiles (tracker.world.profiles) turn them on.

The draws come from a stream of their own per chunk, so turning noise on leaves what happens (orders,
journeys, chat, labels) as it was; with every rate at zero nothing is drawn at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tracker.world.journeys import HOUR, Scan
from tracker.world.places import places

# The orders columns the contract requires: never blanked.
REQUIRED_ORDER_COLUMNS = frozenset({"order_id", "buyer_id", "seller_id", "ordered_at", "dest_country"})


class Noise:
    def __init__(self, cfg: dict[str, Any], as_of: int, order_columns: Sequence[str]):
        """`cfg`: the world's rates ([noise] and [missing] tables); `as_of` in epoch seconds."""
        noise = cfg["noise"]
        self.jitter = float(noise["scan_jitter_hours"]) * HOUR
        self.local_clock = float(noise["local_clock"])
        self.blank_status = float(noise["blank_status"])
        self.blank_raw_code = float(noise["blank_raw_code"])
        self.blank_place = float(noise["blank_place"])
        self.missing: list[tuple[int, float]] = []
        for name, share in cfg["missing"].items():
            if name in REQUIRED_ORDER_COLUMNS or name not in order_columns:
                raise ValueError(f"world rates [missing]: {name!r} is not an optional orders column")
            if float(share) > 0:
                self.missing.append((list(order_columns).index(name), float(share)))
        self.as_of = as_of
        self.on = bool(
            self.jitter
            or self.local_clock
            or self.blank_status
            or self.blank_raw_code
            or self.blank_place
            or self.missing
        )
        self.rng = random.Random(0)
        self._offsets: dict[tuple[str, int], int] = {}

    def start_chunk(self, seed: int, chunk: int) -> None:
        if self.on:
            self.rng = random.Random(f"noise/{seed}/{chunk}")

    def _offset(self, country: str, city: str, t: int) -> int:
        """Seconds the place's wall clock is ahead of UTC at t (daylight saving included)."""
        zone = places().timezone(country, city)
        key = (zone, t // HOUR)
        offset = self._offsets.get(key)
        if offset is None:
            delta = datetime.fromtimestamp(t, ZoneInfo(zone)).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            self._offsets[key] = offset
        return offset

    def emit(
        self,
        append: Callable[[tuple], None],
        iso: Callable[[int], str],
        number: str,
        carrier: str,
        scans: list[Scan],
    ) -> int | None:
        """Write one parcel's scans up to as_of the way this world's sources do; the delivered time."""
        rnd = self.rng.random
        local = bool(self.local_clock) and rnd() < self.local_clock
        no_status = bool(self.blank_status) and rnd() < self.blank_status
        no_code = bool(self.blank_raw_code) and rnd() < self.blank_raw_code
        no_place = bool(self.blank_place) and rnd() < self.blank_place
        delivered = None
        for t, code, status, text, (city, postcode, country, location) in scans:
            if t > self.as_of:
                break
            if status == "delivered":
                delivered = t
            written = t
            if self.jitter:
                written += int(self.jitter * (2 * rnd() - 1))
            if local:
                written += self._offset(country, city, t)
            # A file exported at as_of holds nothing later, however its clock was set.
            written = min(written, self.as_of)
            append(
                (
                    number,
                    iso(written),
                    "" if no_status else status,
                    text,
                    "" if no_place else location,
                    "" if no_place else city,
                    "" if no_place else postcode,
                    country,
                    carrier,
                    "" if no_code else code,
                )
            )
        return delivered

    def blank_order_fields(self, row: tuple) -> tuple:
        """The order's row with some optional cells left empty, as exports with missing data have them."""
        rnd = self.rng.random
        blank = [i for i, share in self.missing if rnd() < share]
        if not blank:
            return row
        cells = list(row)
        for i in blank:
            cells[i] = ""
        return tuple(cells)
