"""Builders for the detection tests: orders, scans and messages written straight into a store.

A journey is a list of (raw_code, status, hours after shipping, place) where place is "origin", "export",
"hub" or "dest" (the order's own address unless `dest` is given).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from detectors.tracking_numbers import s10_check_digit
from tracker.db import next_seq
from tracker.events import insert_events

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
FMT = "%Y-%m-%dT%H:%M:%SZ"
_serial = count(10_000_000)

STANDARD = [
    ("GWMS_ACCEPT", "info_received", 2, "origin"),
    ("PU_PICKUP_SUCCESS", "in_transit", 20, "origin"),
    ("SC_OUTBOUND_SUCCESS", "in_transit", 40, "origin"),
    ("CC_EX_SUCCESS", "in_transit", 70, "export"),
    ("LH_DEPART", "in_transit", 90, "export"),
    ("LH_ARRIVE", "in_transit", 120, "hub"),
    ("CC_IM_SUCCESS", "in_transit", 180, "hub"),
    ("GTMS_ACCEPT", "in_transit", 220, "hub"),
    ("GTMS_DO_ARRIVE", "in_transit", 300, "dest"),
    ("GTMS_DO_DEPART", "out_for_delivery", 310, "dest"),
    ("GTMS_SIGNED", "delivered", 314, "dest"),
]


def at(hours: float, base: datetime = T0) -> str:
    return (base + timedelta(hours=hours)).strftime(FMT)


def s10_number(prefix: str = "RR", country: str = "CN") -> str:
    digits = f"{next(_serial):08d}"[-8:]
    return f"{prefix}{digits}{s10_check_digit(digits)}{country}"


def add_order(
    db,
    order_id: str,
    *,
    buyer: str = "B1",
    seller: str = "S1",
    number: str | None = None,
    ordered: str | None = None,
    shipped: str | None = None,
    country: str = "RU",
    city: str | None = "Moscow",
    postcode: str | None = "101000",
    confirmed: str | None = None,
    received: str | None = None,
    carrier: str | None = "chinapost",
) -> str:
    number = s10_number() if number is None else number
    ordered = ordered or at(-24)
    shipped = shipped or at(0)
    with db.conn:
        seq = next_seq(db)
        db.conn.execute(
            "INSERT OR REPLACE INTO orders (order_id, buyer_id, seller_id, ordered_at, dest_country, dest_city, "
            "dest_postcode, tracking_number, tracking_number_raw, carrier, shipped_at, promised_days, "
            "buyer_confirmed_at, buyer_received, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                order_id,
                buyer,
                seller,
                ordered,
                country,
                city,
                postcode,
                number or None,
                number or None,
                carrier,
                shipped,
                60,
                confirmed,
                received,
                seq,
            ],
        )
    return number


def add_journey(
    db,
    number: str,
    journey=STANDARD,
    *,
    base: datetime = T0,
    dest: tuple[str, str, str] | None = None,
    order_place: tuple[str, str, str] = ("Moscow", "101000", "RU"),
    snapshot: str | None = None,
) -> None:
    places = {
        "origin": ("Shenzhen", "518000", "CN"),
        "export": ("Guangzhou", "510000", "CN"),
        "hub": ("Podolsk", "142100", order_place[2]),
        "dest": dest or order_place,
    }
    events = []
    for code, status, hours, where in journey:
        city, postcode, country = places[where]
        events.append(
            {
                "tracking_number": number,
                "occurred_at": at(hours, base),
                "status": status,
                "raw_code": code,
                "description": f"{code} scan",
                "location": f"{city}, {country}",
                "city": city,
                "postcode": postcode,
                "country": country,
                "carrier": "cainiao",
                "source": "import",
                "snapshot_sha256": snapshot,
            }
        )
    with db.conn:
        insert_events(db, events)


def add_message(db, order_id: str, text: str, *, hours: float = 48, sender: str = "seller") -> None:
    with db.conn:
        db.conn.execute(
            "INSERT INTO messages (order_id, sender, sent_at, text, message_key) VALUES (?,?,?,?,?)",
            [order_id, sender, at(hours), text, f"{order_id}-{hours}-{hash(text)}"],
        )


def flags_of(db, order_id: str | None = None, *, active: bool = True) -> dict:
    """{(order_id, code): row} of the flags (active only by default)."""
    sql = "SELECT order_id, code, severity, explanation, evidence, detected_at, rule_version, resolved_at FROM flags"
    rows = db.conn.execute(sql).fetchall()
    out = {}
    for r in rows:
        if order_id is not None and r[0] != order_id:
            continue
        if active and r[7] is not None:
            continue
        out[(r[0], r[1])] = dict(
            zip(
                (
                    "order_id",
                    "code",
                    "severity",
                    "explanation",
                    "evidence",
                    "detected_at",
                    "rule_version",
                    "resolved_at",
                ),
                r,
                strict=True,
            )
        )
    return out


def codes_of(db, order_id: str) -> set[str]:
    return {code for (_, code) in flags_of(db, order_id)}
