"""End to end through the command line on a real SQLite file: orders and their scans imported, `detect` run,
flags and cases read back. Honest parcels of every common carrier raise nothing; the silent parcel after a
hand-over and the three-day "postal" delivery are caught; the look-alikes stay clean."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from detectors.tracking_numbers import make_number, validate

AS_OF = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
FMT = "%Y-%m-%dT%H:%M:%SZ"
PLACES = {
    "CN": ("Shenzhen", "518000"), "ES": ("Madrid", "28013"), "US": ("Chicago", "60601"),
    "DE": ("Berlin", "10115"), "CA": ("Toronto", "M5V 2T6"), "GB": ("Leeds", "LS1 4AP"),
    "FR": ("Lyon", "69001"), "PL": ("Warszawa", "00-001"), "RU": ("Moscow", "101000"),
}
ORDER_COLUMNS = ["order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
                 "tracking_number", "carrier", "shipped_at", "promised_days", "buyer_confirmed_at", "buyer_received"]
EVENT_COLUMNS = ["tracking_number", "occurred_at", "status", "description", "location", "city", "postcode",
                 "country", "carrier", "raw_code"]

# (raw code, status, description, side): a Cainiao-style postal journey, and a courier's own scans
POSTAL = [("GWMS_ACCEPT", "info_received", "Order information received", "origin"),
          ("PU_PICKUP_SUCCESS", "in_transit", "Parcel picked up", "origin"),
          ("SC_OUTBOUND_SUCCESS", "in_transit", "Departed from the sorting center", "origin"),
          ("CC_EX_SUCCESS", "in_transit", "Export customs clearance complete", "origin"),
          ("LH_DEPART", "in_transit", "Departure from outward office of exchange", "origin"),
          ("LH_ARRIVE", "in_transit", "Arrival at inward office of exchange", "dest"),
          ("CC_IM_SUCCESS", "in_transit", "Import customs clearance complete", "dest"),
          ("GTMS_ACCEPT", "in_transit", "Handed over to the last-mile carrier", "dest"),
          ("GTMS_DO_ARRIVE", "in_transit", "Arrived at the delivery office", "dest"),
          ("GTMS_DO_DEPART", "out_for_delivery", "Out for delivery", "dest"),
          ("GTMS_SIGNED", "delivered", "Delivered", "dest")]
COURIER = [("OC", "info_received", "Shipment information sent to the carrier", "origin"),
           ("PU", "in_transit", "Picked up", "origin"),
           ("DP", "in_transit", "Departed facility", "origin"),
           ("AR", "in_transit", "Arrived at destination facility", "dest"),
           ("OD", "out_for_delivery", "On vehicle for delivery", "dest"),
           ("DL", "delivered", "Delivered", "dest")]


class World:
    def __init__(self) -> None:
        self.orders: list[dict] = []
        self.events: list[dict] = []

    def order(self, order_id: str, number: str, carrier: str, origin: str, dest: str, *, shipped_days_ago: float,
              journey=POSTAL, span_days: float = 0.0, received: str = "", confirm: bool = False,
              first_after_days: float = 0.1) -> None:
        shipped = AS_OF - timedelta(days=shipped_days_ago)
        city, postcode = PLACES[dest]
        delivered = None
        steps = max(len(journey) - 1, 1)
        for i, (code, status, text, side) in enumerate(journey):
            at = shipped + timedelta(days=first_after_days + (span_days - first_after_days) * i / steps)
            where_country = origin if side == "origin" else dest
            where_city, where_postcode = PLACES[where_country]
            self.events.append({
                "tracking_number": number, "occurred_at": at.strftime(FMT), "status": status, "description": text,
                "location": f"{where_city}, {where_country}", "city": where_city, "postcode": where_postcode,
                "country": where_country, "carrier": carrier, "raw_code": code,
            })
            delivered = at if status == "delivered" else delivered
        self.orders.append({
            "order_id": order_id, "buyer_id": f"B-{order_id}", "seller_id": f"S-{order_id}",
            "ordered_at": (shipped - timedelta(days=1)).strftime(FMT), "dest_country": dest, "dest_city": city,
            "dest_postcode": postcode, "tracking_number": number, "carrier": carrier,
            "shipped_at": shipped.strftime(FMT), "promised_days": "60",
            "buyer_confirmed_at": (delivered + timedelta(hours=5)).strftime(FMT) if confirm and delivered else "",
            "buyer_received": received,
        })

    def write(self, folder) -> tuple[str, str]:
        paths = []
        for name, rows, columns in (("orders", self.orders, ORDER_COLUMNS), ("events", self.events, EVENT_COLUMNS)):
            path = folder / f"{name}.csv"
            with path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
            paths.append(str(path))
        return paths[0], paths[1]


HONEST = {
    # order id: (format or literal number, carrier column, origin, destination, journey, days in transit)
    "fedex": ("fedex_12", "FedEx", "CN", "US", COURIER, 4),
    "dhl": ("dhl_express", "DHL Express", "CN", "DE", COURIER, 3),
    "amazon": ("amazon_logistics", "Amazon", "US", "US", COURIER, 2),
    "canadapost": ("canada_post", "Canada Post", "CA", "CA", COURIER, 4),
    "yodel": ("yodel", "Yodel", "GB", "GB", COURIER, 2),
    "landmark": ("landmark_global", "Landmark Global", "CN", "GB", POSTAL, 12),
    "usps": ("usps_impb_c", "USPS", "US", "US", COURIER, 3),
    "cainiao_ae": ("AE012345678", "AliExpress Standard Shipping", "CN", "ES", POSTAL, 16),
    "cainiao_y": ("UH0123456789Y", "cainiao-global", "CN", "FR", POSTAL, 14),
    "cainiao_lp": ("LP00068434402473", "Cainiao", "CN", "PL", POSTAL, 18),
}


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    from click.testing import CliRunner

    from tracker.cli import cli

    folder = tmp_path_factory.mktemp("e2e")
    db = str(folder / "tracker.db")
    rng = random.Random(5)
    w = World()
    numbers = {}
    for order_id, (fmt, carrier, origin, dest, journey, days) in HONEST.items():
        number = fmt if fmt[:2].isalpha() and fmt[2:].rstrip("Y").isdigit() else make_number(fmt, rng)
        if order_id == "usps":  # routed to the order's own ZIP+4 (the +4 starting 92-95)
            body = number[12:] if validate(number).best.dest_zip4 else number[8:] if number.startswith("420") else number
            number = f"420{PLACES[dest][1]}9301{body}"
        numbers[order_id] = number
        w.order(order_id, number, carrier, origin, dest, shipped_days_ago=days + 20, journey=journey,
                span_days=days, received="yes", confirm=True)
    # the silent parcel: handed to the airline three days after shipping, nothing for 70 days since
    w.order("stuck", "RB473124829CN", "China Post", "CN", "ES", shipped_days_ago=73, journey=POSTAL[:5], span_days=3)
    # a "postal" parcel delivered in Spain three days after shipping, no customs scan at all
    fake = [s for s in POSTAL if not s[0].startswith(("CC_", "LH_"))]
    w.order("fake_fast", "LP00071653567725", "Cainiao", "CN", "ES", shipped_days_ago=20, journey=fake, span_days=3)
    # look-alikes: untracked after the airline, still within the route's bound; re-labelled at the destination
    # post, within bound; a first scan 12 days late; real express with its whole chain in 2.5 days
    w.order("untracked", "UB473124829CN", "China Post", "CN", "ES", shipped_days_ago=43, journey=POSTAL[:5], span_days=3)
    w.order("relabelled", "RS473124829CN", "China Post", "CN", "FR", shipped_days_ago=48, journey=POSTAL[:8],
            span_days=10)
    w.order("late_scan", "LP00492755414105", "Cainiao", "CN", "PL", shipped_days_ago=40, journey=POSTAL,
            span_days=25, first_after_days=12)
    w.order("express", "EA473124829CN", "EMS", "CN", "ES", shipped_days_ago=10, journey=POSTAL, span_days=2.5,
            received="yes")
    orders, events = w.write(folder)

    def run(*args: str):
        result = CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("import", "orders", orders)
    run("import", "events", events)
    run("detect", "--as-of", AS_OF.strftime(FMT))
    flags: dict[str, dict[str, dict]] = {}
    for f in json.loads(run("flags", "--format", "json").stdout):
        flags.setdefault(f["order_id"], {})[f["code"]] = f
    cases = {c["order_id"] for c in json.loads(run("cases", "--format", "json").stdout)}
    return numbers, flags, cases


def test_the_honest_numbers_are_of_the_carriers_named(detected):
    numbers, _, _ = detected
    for order_id, number in numbers.items():
        v = validate(number)
        assert v.valid, (order_id, number, v.reason())
    assert validate(numbers["fedex"]).best.carrier == "fedex"
    assert validate(numbers["canadapost"]).best.carrier == "canadapost"
    usps = validate(numbers["usps"]).best
    assert (usps.carrier, usps.dest_zip, usps.dest_zip4) == ("usps", "60601", "9301")


@pytest.mark.parametrize("order_id", sorted(HONEST))
def test_honest_orders_get_no_invalid_flag_and_no_case(detected, order_id):
    _, flags, cases = detected
    assert "invalid_tracking_number" not in flags.get(order_id, {}), flags.get(order_id)
    assert flags.get(order_id, {}) == {}
    assert order_id not in cases


def test_the_parcel_silent_70_days_after_export_is_flagged(detected):
    _, flags, _ = detected
    flag = flags["stuck"]["no_tracking_progress"]
    assert "no scan for 70 days" in flag["explanation"]
    assert "Departure from outward office of exchange" in flag["explanation"] and "Shenzhen" in flag["explanation"]
    assert flag["evidence"]["untracked_last_mile_days"] == 45 and flag["evidence"]["route"] == "CN->ES"


def test_a_three_day_postal_delivery_without_customs_is_flagged(detected):
    _, flags, _ = detected
    flag = flags["fake_fast"]["impossible_transit"]
    assert "postal minimum for CN to ES" in flag["explanation"]
    assert flag["evidence"]["service_class"] == "postal" and flag["evidence"]["transit_days"] < 5


@pytest.mark.parametrize("order_id", ["untracked", "relabelled", "late_scan", "express"])
def test_look_alikes_stay_unflagged(detected, order_id):
    _, flags, _ = detected
    assert flags.get(order_id, {}) == {}
