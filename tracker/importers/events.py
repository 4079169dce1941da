"""Tracking events obtained elsewhere: stored once per scan (event_key), status derived when empty."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from tracker.events import insert_event_rows, key_of_fields
from tracker.importers import fields
from tracker.importers.base import CarrierGuess, Kind, Writer, extra_json, register_shipments_of_events
from tracker.importers.sources import Problem
from tracker.statuses import derive_status


class EventsWriter(Writer):
    """Inserts scans as the tuples `Events.finish` makes (their key in them), then registers their numbers'
    shipments once, set-based, from the rows this import stored."""

    table = "tracking_events"

    def __init__(self, db: sqlite_utils.Database, stamp: str) -> None:
        super().__init__(db, stamp)
        self.first_new_id = self.conn.execute("SELECT coalesce(max(id), 0) FROM tracking_events").fetchone()[0]

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        added = insert_event_rows(self.conn, batch)
        self.inserted += added
        self.unchanged += len(batch) - added

    def close(self) -> None:
        super().close()
        if self.inserted:
            register_shipments_of_events(self.conn, self.first_new_id, self.stamp, CarrierGuess())


class Events(Kind):
    name = "events"
    columns = (
        "tracking_number", "occurred_at", "status", "description", "location", "city", "postcode", "country",
        "carrier", "raw_code",
    )
    required = ("tracking_number", "occurred_at")
    converters = {
        "tracking_number": fields.tracking_number_value,
        "occurred_at": fields.time_value,
        "status": fields.status_value,
        "country": fields.country_value,
        "carrier": fields.carrier_value,
    }
    repeated = ("status", "country", "carrier")
    free_text = ("description", "location")
    writer_class = EventsWriter

    def finish(
        self, line: int, clean: list[Any], values: tuple[str, ...], extras: dict[str, Any] | None, problems: list[Problem]
    ) -> tuple[Any, ...] | None:
        """The stored row, in `tracker.events.EVENT_COLUMNS` order, its key built here in the same pass."""
        number, occurred_at, status, description, location, city, postcode, country, carrier, raw_code = clean
        if status is None and description is None and not values[2].strip():
            problems.append(("description", "required when status is empty (the status is derived from it)"))
        if problems:
            return None
        if status is None:
            status = derive_status(description, raw_code, carrier)
        # the cleaned values are stripped text or None: exactly what `tracker.events.event_key` hashes
        key = key_of_fields((number, occurred_at, status, description or "", location or "", city or "",
                             postcode or "", country or "", raw_code or ""))
        return (number, occurred_at, status, description, location, city, postcode, country, carrier, raw_code,
                "import", None, extra_json(extras), key, self.stamp)
