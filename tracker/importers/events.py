"""Tracking events obtained elsewhere: stored once per scan (event_key), status derived when empty."""

from __future__ import annotations

from typing import Any

from tracker.events import insert_events
from tracker.importers import fields
from tracker.importers.base import CarrierGuess, Kind, Writer, extra_json, register_shipments
from tracker.importers.sources import Problem
from tracker.statuses import derive_status


class EventsWriter(Writer):
    def write(self, batch: list[dict[str, Any]]) -> None:
        for event in batch:
            event["ingested_at"] = self.stamp
        added = insert_events(self.db, batch)
        self.inserted += added
        self.unchanged += len(batch) - added
        carriers: dict[str, str | None] = {}
        latest: dict[str, str] = {}
        guess_carrier = self.__dict__.setdefault("guess_carrier", CarrierGuess())
        for event in batch:
            number = event["tracking_number"]
            if carriers.get(number) is None:
                carriers[number] = event["carrier"] or guess_carrier(number)
            if event["occurred_at"] > latest.get(number, ""):
                latest[number] = event["occurred_at"]
        register_shipments(self.conn, self.stamp, carriers)
        # only a later scan moves last_event_at, so a re-import changes nothing
        self.conn.executemany(
            "UPDATE shipments SET last_event_at = ? WHERE tracking_number = ? "
            "AND (last_event_at IS NULL OR last_event_at < ?)",
            [(at, number, at) for number, at in latest.items()],
        )


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
    free_text = ("description", "location")
    writer_class = EventsWriter

    def finish(
        self, line: int, clean: list[Any], values: tuple[str, ...], extras: dict[str, Any] | None, problems: list[Problem]
    ) -> dict[str, Any] | None:
        number, occurred_at, status, description, location, city, postcode, country, carrier, raw_code = clean
        if status is None and description is None and not values[2].strip():
            problems.append(("description", "required when status is empty (the status is derived from it)"))
        if problems:
            return None
        if status is None:
            status = derive_status(description, raw_code, carrier)
        return {
            "tracking_number": number,
            "occurred_at": occurred_at,
            "status": status,
            "description": description,
            "location": location,
            "city": city,
            "postcode": postcode,
            "country": country,
            "carrier": carrier,
            "raw_code": raw_code,
            "source": "import",
            "extra": extra_json(extras),
        }
