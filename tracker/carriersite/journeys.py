"""Small hand-made journeys, for tests and benchmarks that do not need the whole generated world."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tracker.timeutil import to_db

# (actionCode, normalised status, English text, where: origin/dest)
STAGES = (
    ("GWMS_ACCEPT", "info_received", "Order information received by the logistics provider", "origin"),
    ("PU_PICKUP_SUCCESS", "in_transit", "Picked up by the carrier", "origin"),
    ("SC_INBOUND_SUCCESS", "in_transit", "Arrived at the sorting center", "origin"),
    ("SC_OUTBOUND_SUCCESS", "in_transit", "Departed from the sorting center", "origin"),
    ("CC_EX_START", "in_transit", "Export customs clearance started", "origin"),
    ("CC_EX_SUCCESS", "in_transit", "Export customs clearance complete", "origin"),
    ("LH_HO_IN_SUCCESS", "in_transit", "Handed over to the airline", "origin"),
    ("LH_DEPART", "in_transit", "Departed from the country of origin", "origin"),
    ("LH_ARRIVE", "in_transit", "Arrived in the destination country", "dest"),
    ("CC_IM_START", "in_transit", "Import customs clearance started", "dest"),
    ("CC_IM_SUCCESS", "in_transit", "Import customs clearance complete", "dest"),
    ("GTMS_ACCEPT", "in_transit", "Received by the local delivery company", "dest"),
    ("GTMS_DO_ARRIVE", "in_transit", "Arrived at the local delivery center", "dest"),
    ("GTMS_DO_DEPART", "out_for_delivery", "Out for delivery", "dest"),
    ("GTMS_SIGNED", "delivered", "Delivered", "dest"),
)

ORIGIN = ("Shenzhen", "518000", "CN")


def make_journey(
    tracking_number: str,
    carrier: str,
    start: datetime,
    *,
    stages: int = len(STAGES),
    dest: tuple[str, str, str] = ("Madrid", "28013", "ES"),
    origin: tuple[str, str, str] = ORIGIN,
    gap: timedelta = timedelta(hours=14),
    last_mile_number: str | None = None,
    codes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The first `stages` scans of a parcel, one every `gap` from `start`, as contract event rows.

    `codes` replaces the stage codes (to test unknown codes); `last_mile_number` rides in the extra of
    the scans handed to the destination's carrier.
    """
    events = []
    chosen = list(STAGES[:stages])
    if codes:
        chosen = [(code, "unknown", f"Carrier event {code}", "dest") for code in codes]
    for i, (code, status, text, where) in enumerate(chosen):
        city, postcode, country = origin if where == "origin" else dest
        extra = None
        if last_mile_number and where == "dest" and code.startswith("GTMS"):
            extra = {"last_mile_number": last_mile_number}
        events.append({
            "tracking_number": tracking_number,
            "carrier": carrier,
            "occurred_at": to_db(start + gap * i),
            "status": status,
            "description": text,
            "raw_code": code,
            "location": f"{city}, {country}",
            "city": city,
            "postcode": postcode,
            "country": country,
            "extra": extra,
        })
    return events
