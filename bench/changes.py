"""A day's changes to a store built from a generated world, as files a user would import: new scans on a share of
its tracking numbers, a share of new orders (placed by the same sellers for their buyers, some shipped), and the
day's chat: a seller's note on each new order shipped, and a new message on a share of the other orders (the
sellers' written by the world's own message writer, typos and all, some of them pressure).

`write_changes(store, folder, as_of, share=0.01)` writes `events.csv`, `orders.csv` and `messages.csv` in the
contract's formats and returns how many rows each holds (the messages name new orders: import them after the
orders). Deterministic for a seed. The benchmark imports them with `tracker import`
and times the next `tracker detect`; the exactness test (tests/test_rescoring.py) does the same on a small world.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from detectors.tracking_numbers import s10_check_digit
from tracker.world.messages import MessageWriter

EVENT_COLUMNS = ("tracking_number", "occurred_at", "status", "description", "location", "city", "postcode", "country",
                 "carrier", "raw_code")
ORDER_COLUMNS = ("order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
                 "tracking_number", "carrier", "shipped_at", "promised_days", "buyer_confirmed_at", "buyer_received",
                 "amount", "currency", "item_title")
MESSAGE_COLUMNS = ("order_id", "sender", "sent_at", "text")
# the day's message on an order already placed: (sender, kind of the message writer's templates), drawn evenly
MESSAGE_KINDS = (("seller", "delay"), ("seller", "review"), ("seller", "reply"), ("seller", "confirm"),
                 ("seller", "before_dispute"), ("seller", "close_dispute"), ("buyer", "ask_where"),
                 ("buyer", "not_received"), ("buyer", "thanks"))
FMT = "%Y-%m-%dT%H:%M:%SZ"
# the next scan of a parcel: (status, description, raw code, at the destination?)
NEXT_SCANS = (
    ("in_transit", "Arrived at sorting center", "SC_INBOUND_SUCCESS", False),
    ("in_transit", "Departed from sorting center", "SC_OUTBOUND_SUCCESS", False),
    ("in_transit", "Arrived at destination country", "CC_IM_SUCCESS", True),
    ("out_for_delivery", "Out for delivery", "GTMS_DO_DEPART", True),
    ("delivered", "Delivered", "GTMS_SIGNED", True),
)


def write_changes(store: str | Path, folder: str | Path, as_of: datetime, share: float = 0.01,
                  seed: int = 19) -> dict[str, int]:
    """New scans on `share` of the store's tracking numbers and `share` new orders, as of `as_of`."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        numbers = conn.execute(
            "SELECT o.tracking_number, o.carrier, o.dest_country, o.dest_city, o.dest_postcode FROM orders o "
            "WHERE coalesce(o.tracking_number, '') <> '' GROUP BY o.tracking_number ORDER BY o.tracking_number"
        ).fetchall()
        orders = conn.execute(f"SELECT {', '.join(c for c in ORDER_COLUMNS)} FROM orders ORDER BY rowid").fetchall()
    finally:
        conn.close()
    scanned = rng.sample(numbers, max(1, int(len(numbers) * share))) if numbers else []
    with open(folder / "events.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(EVENT_COLUMNS)
        for number, carrier, country, city, postcode in scanned:
            status, text, code, there = rng.choice(NEXT_SCANS)
            when = as_of - timedelta(minutes=rng.randrange(30, 24 * 60))
            place = (city or "", postcode or "", country or "") if there else ("Guangzhou", "510000", "CN")
            out.writerow((number, when.strftime(FMT), status, text, f"{place[0]}, {place[2]}".strip(", "), *place,
                          carrier or "cainiao", code))
    templates = rng.sample(orders, max(1, int(len(orders) * share))) if orders else []
    # the chat draws from its own generator: the scans and orders are those of the same seed without it
    writer, chat, talk = MessageWriter(), [], random.Random(f"{seed}-chat")
    with open(folder / "orders.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(ORDER_COLUMNS)
        for i, template in enumerate(templates):
            row = dict(zip(ORDER_COLUMNS, template, strict=True))
            ordered = as_of - timedelta(hours=rng.randrange(2, 72))
            shipped = rng.random() < 0.7
            digits = f"{rng.randrange(10 ** 8):08d}"
            row.update({
                "order_id": f"{row['order_id']}-n{i}", "ordered_at": ordered.strftime(FMT),
                "tracking_number": f"L{rng.choice('ABCDEGHLR')}{digits}{s10_check_digit(digits)}CN" if shipped else "",
                "carrier": "chinapost" if shipped else "", "buyer_confirmed_at": "", "buyer_received": "",
                "shipped_at": (ordered + timedelta(hours=1)).strftime(FMT) if shipped else "",
            })
            if rng.random() < 0.5:  # a buyer new to the store half of the time
                row["buyer_id"] = f"{row['buyer_id']}-new{i}"
            out.writerow(["" if row[c] is None else row[c] for c in ORDER_COLUMNS])
            if shipped:
                chat.append((row["order_id"], "seller", row["shipped_at"],
                             writer.write(talk, "shipped", tracking=row["tracking_number"])))
    talked = talk.sample(orders, max(1, int(len(orders) * share))) if orders else []
    for template in talked:
        sender, kind = talk.choice(MESSAGE_KINDS)
        number = template[ORDER_COLUMNS.index("tracking_number")] or ""
        when = as_of - timedelta(minutes=talk.randrange(30, 24 * 60))
        chat.append((template[0], sender, when.strftime(FMT), writer.write(talk, kind, tracking=number,
                                                                              broken=sender == "seller")))
    with open(folder / "messages.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(MESSAGE_COLUMNS)
        out.writerows(chat)
    return {"events": len(scanned), "orders": len(templates), "messages": len(chat)}
