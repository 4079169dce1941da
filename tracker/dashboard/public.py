"""A case page as a visitor sees it (`tracker serve --public-read`, not signed in).

Every buyer, this order's included, appears only as the keyed pseudonym complaint packets use; so do
postcodes and address fields, in the order and wherever they turn up in flag explanations and scan texts.
Chat messages (free text between two people) and stored carrier pages (a recipient's name and address)
are left out, and so are who changed the case and their notes. What remains is the evidence: order and
tracking numbers, dates, countries and cities, flags, scores and scans.
"""

from __future__ import annotations

import json
from typing import Any

from tracker.cases.privacy import Scrubber, pseudonym


def visitor_view(data: dict[str, Any], key: bytes) -> dict[str, Any]:
    """`data` from queries.case_page, with the people taken out (see the module's doc)."""
    scrubber = Scrubber(key)
    order = data["order"]
    if order:
        scrubber.add_person(order)
    for person in data.get("people", []):
        scrubber.add_person(person)
    if order:
        order = {
            **order,
            "buyer_id": pseudonym(key, "buyer", str(order["buyer_id"]).strip()),
            "dest_postcode": scrubber.text(order["dest_postcode"]) if order.get("dest_postcode") else None,
            "extra": None,
        }
    flags = [
        {**flag, "explanation": scrubber.text(flag["explanation"]),
         "evidence": json.dumps(scrubber.value(_json(flag["evidence"])))}
        for flag in data["flags"]
    ]
    events = [
        {**event, "description": scrubber.text(event["description"] or ""),
         "location": scrubber.text(event["location"] or ""), "snapshot_sha256": None}
        for event in data["events"]
    ]
    history = [{**entry, "actor": "", "note": None} for entry in data["history"]]
    return {**data, "order": order, "flags": flags, "events": events, "snapshots": [], "chat": [],
            "history": history, "people": []}


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}
