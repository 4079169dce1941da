"""How each simulated carrier shows a journey: its own layout, date format and words per stage.

The words here are the carriers'; data/carriers/<name>.toml maps them back to normalised statuses, so
the poller's parsing is exercised for real.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import cache
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from tracker.timeutil import from_db

BEIJING = timezone(timedelta(hours=8))

CHINAPOST_WORDS = {
    "GWMS_ACCEPT": "Electronic information received",
    "PU_PICKUP_SUCCESS": "Posting/Collection",
    "SC_INBOUND_SUCCESS": "Arrival at processing center",
    "SC_OUTBOUND_SUCCESS": "Departure from processing center",
    "CC_EX_START": "Handed over to export customs",
    "CC_EX_SUCCESS": "Export customs clearance completed",
    "LH_HO_IN_SUCCESS": "Handed over to airline",
    "LH_DEPART": "Departure from outward office of exchange",
    "LH_ARRIVE": "Arrival at inward office of exchange",
    "CC_IM_START": "Held by import customs",
    "CC_IM_SUCCESS": "Import customs clearance completed",
    "GTMS_ACCEPT": "Handed over to destination post",
    "GTMS_DO_ARRIVE": "Arrival at delivery office",
    "GTMS_DO_DEPART": "Out for delivery",
    "GTMS_SIGNED": "Delivered",
    "GTMS_DEL_FAILURE": "Unsuccessful delivery attempt",
}

YUNEXPRESS_WORDS = {
    "GWMS_ACCEPT": "Shipment information received",
    "PU_PICKUP_SUCCESS": "Picked up by YunExpress",
    "SC_INBOUND_SUCCESS": "Arrived at sorting center",
    "SC_OUTBOUND_SUCCESS": "Departed sorting center",
    "CC_EX_START": "Export customs declaration submitted",
    "CC_EX_SUCCESS": "Export customs cleared",
    "LH_HO_IN_SUCCESS": "Handed over to airline",
    "LH_DEPART": "Flight departed",
    "LH_ARRIVE": "Flight arrived at destination",
    "CC_IM_START": "Import customs clearance started",
    "CC_IM_SUCCESS": "Import customs cleared",
    "GTMS_ACCEPT": "Received by last-mile carrier",
    "GTMS_DO_ARRIVE": "Arrived at the local delivery center",
    "GTMS_DO_DEPART": "Out for delivery with courier",
    "GTMS_SIGNED": "Delivered to recipient",
    "GTMS_DEL_FAILURE": "Delivery attempt failed, recipient absent",
}

CAINIAO_STANDARD = {
    "GWMS_ACCEPT": "Order received by seller's logistics provider",
    "PU_PICKUP_SUCCESS": "Picked up",
    "SC_INBOUND_SUCCESS": "Arrived at sorting center",
    "SC_OUTBOUND_SUCCESS": "Departed from sorting center",
    "CC_EX_START": "Export customs clearance started",
    "CC_EX_SUCCESS": "Export customs clearance complete",
    "LH_HO_IN_SUCCESS": "Received by line-haul",
    "LH_DEPART": "Departed from departure country/region",
    "LH_ARRIVE": "Arrived at destination country/region",
    "CC_IM_START": "Import customs clearance started",
    "CC_IM_SUCCESS": "Import customs clearance complete",
    "GTMS_ACCEPT": "Received by local delivery company",
    "GTMS_DO_ARRIVE": "Arrived at local delivery center",
    "GTMS_DO_DEPART": "Out for delivery",
    "GTMS_SIGNED": "Delivered",
    "GTMS_DEL_FAILURE": "Delivery attempt failed",
}


def _when(event: dict[str, Any]) -> datetime:
    value = event["occurred_at"]
    return value if isinstance(value, datetime) else from_db(value)  # type: ignore[return-value]


def _extra(event: dict[str, Any]) -> dict[str, Any]:
    extra = event.get("extra")
    if isinstance(extra, str) and extra.strip():
        try:
            extra = json.loads(extra)
        except ValueError:
            return {}
    return extra if isinstance(extra, dict) else {}


_LAST_MILE = re.compile(r"last-mile (?:tracking )?number\s+([A-Z0-9]{8,30})", re.IGNORECASE)


def last_mile_number(event: dict[str, Any]) -> str | None:
    """From the event's extra, or from the world's text ("..., last-mile tracking number CX..ES")."""
    extra = _extra(event)
    found = extra.get("last_mile_number") or extra.get("realMailNo")
    if not found:
        m = _LAST_MILE.search(event.get("description") or "")
        found = m.group(1) if m else None
    return found


# Stages a code alone does not tell (the world reports a pickup point as GTMS_DO_ARRIVE): by status.
CHINAPOST_STATUS_WORDS = {"available_for_pickup": "Available for collection", "returned": "Returned to sender",
                          "exception": "Item could not be delivered"}
YUNEXPRESS_STATUS_WORDS = {"available_for_pickup": "Ready for pickup at service point",
                           "returned": "Returned to sender", "exception": "Delivery exception"}


def word_for(event: dict[str, Any], words: dict[str, str], status_words: dict[str, str]) -> str:
    return (status_words.get(event.get("status") or "") or words.get(event.get("raw_code") or "")
            or event.get("description") or "")


@cache
def country_name(code: str) -> str:
    """How YunExpress prints a country: its common name (the code when the name has a comma)."""
    import pycountry

    country = pycountry.countries.get(alpha_2=code.upper()) if len(code) == 2 else None
    if country is None:
        return code
    name = getattr(country, "common_name", None) or country.name
    return code.upper() if "," in name else name


@cache
def country_zone(code: str) -> ZoneInfo:
    """A country's principal IANA zone (the first zone.tab gives it; tzdata ships the table)."""
    from importlib.resources import files

    for line in files("tzdata").joinpath("zoneinfo", "zone.tab").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] == code.upper():
            return ZoneInfo(parts[2])
    return ZoneInfo("UTC")


def _gmt(offset: timedelta | None) -> str:
    """Cainiao's way of writing a zone: "GMT+8", "GMT+5:30", "GMT-3", "GMT+0"."""
    minutes = int((offset or timedelta(0)).total_seconds() // 60)
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    return f"GMT{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


# top-level module status by the newest event's stage (the values public trackers map)
_CAINIAO_STATUS = {"GWMS": "WAIT_ACCEPT", "PU": "ACCEPTED", "SC": "TRANSITING", "LH": "TRANSITING",
                   "CC": "CLEAR_CUSTOMS", "GTMS_DO_DEPART": "DELIVERING", "GTMS_SIGNED": "SIGNIN"}


def render_cainiao(number: str, events: list[dict[str, Any]]) -> tuple[str, bytes]:
    """global.cainiao.com's detail.json, in its real shape: newest event first; each event's wall time
    (timeStr) in the zone of the place it happened, with that zone (timeZone, empty on warehouse events,
    which are China time); `time` in epoch ms is timeStr read at UTC+8, as on the real site."""
    if not events:
        doc = {"module": [{"mailNo": number, "mailNoSource": "EXTERNAL", "detailList": []}], "success": True}
        return "application/json;charset=UTF-8", json.dumps(doc).encode()
    items, real_mail_no = [], None
    dest = next((e.get("country") for e in reversed(events) if e.get("country")), "") or ""
    for e in sorted(events, key=_when, reverse=True):
        when = _when(e)
        code = e.get("raw_code") or ""
        country = (e.get("country") or "CN").upper()
        local = when.astimezone(BEIJING if country == "CN" else country_zone(country))
        wall = local.replace(tzinfo=None)
        item = {
            "time": int((wall - datetime(1970, 1, 1) - timedelta(hours=8)).total_seconds() * 1000),
            "timeStr": wall.strftime("%Y-%m-%d %H:%M:%S"),
            "desc": e.get("description") or CAINIAO_STANDARD.get(code, ""),
            "standerdDesc": CAINIAO_STANDARD.get(code, e.get("description") or ""),
            "descTitle": "Carrier note:",
            "timeZone": "" if code.startswith("GWMS") else _gmt(local.utcoffset()),
            "actionCode": code,
            "city": e.get("city") or "",
            "postCode": e.get("postcode") or "",
            "country": e.get("country") or "",
        }
        lm = last_mile_number(e)
        if lm:
            item["realMailNo"] = lm
            real_mail_no = real_mail_no or lm
        items.append(item)
    newest = items[0]["actionCode"]
    status = _CAINIAO_STATUS.get(newest) or _CAINIAO_STATUS.get(newest.split("_")[0], "TRANSITING")
    module = {"mailNo": number, "originCountry": "Mainland China", "destCountry": country_name(dest) if dest else "",
              "mailNoSource": "AE", "status": status, "statusDesc": status.replace("_", " ").title(),
              "latestTrace": items[0], "detailList": items}
    if real_mail_no:
        module["copyRealMailNo"] = real_mail_no
        module["realMailNo"] = f"Latest Tracking Number:\t{real_mail_no}"
    return "application/json;charset=UTF-8", json.dumps({"module": [module], "success": True}).encode()


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script>window.analytics = function () {{ /* not parsed: outside the strainer */ }};</script>
</head><body><nav><a href="/">Home</a> | <a href="/help">Help</a></nav>
{content}
<footer>Simulated carrier page served by tracker.carriersite</footer></body></html>"""


def render_chinapost(number: str, events: list[dict[str, Any]]) -> tuple[str, bytes]:
    """China Post, layout A: a table, Beijing time, ISO-like dates, "City, CC" plus a postcode column."""
    if not events:
        content = (f'<div class="result empty"><p class="notice">No tracking information found for this item '
                   f"({escape(number)}). Please check the number or try again later.</p></div>")
    else:
        rows = []
        for e in sorted(events, key=_when, reverse=True):
            word = word_for(e, CHINAPOST_WORDS, CHINAPOST_STATUS_WORDS)
            place = ", ".join(p for p in (e.get("city"), e.get("country")) if p)
            rows.append(
                f'<tr><td class="time">{_when(e).astimezone(BEIJING):%Y-%m-%d %H:%M:%S}</td>'
                f'<td class="place">{escape(place)}</td><td class="postcode">{escape(e.get("postcode") or "")}</td>'
                f'<td class="event">{escape(word)}</td></tr>'
            )
        content = (f'<div class="result"><h2>Item number: {escape(number)}</h2>'
                   '<table class="track-list"><thead><tr><th>Time (Beijing)</th><th>Location</th>'
                   f'<th>Postcode</th><th>Event</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    return "text/html; charset=utf-8", _PAGE.format(title="China Post - Track Item", content=content).encode()


def render_yunexpress(number: str, events: list[dict[str, Any]]) -> tuple[str, bytes]:
    """YunExpress's Track/Query answer (ResultList[].TrackInfo.TrackEventDetails[]), newest first, times in
    China time without a zone, places as "City, Country name, postcode"."""
    if not events:
        doc = {"ResultList": [{"Id": number, "Status": 0, "TrackInfo": None}], "Code": "0000"}
        return "application/json; charset=utf-8", json.dumps(doc).encode()
    details, last_mile = [], None
    for e in sorted(events, key=_when, reverse=True):
        country = country_name(e["country"]) if e.get("country") else None
        where = ", ".join(p for p in (e.get("city"), country, e.get("postcode")) if p)
        details.append({"CreatedOn": f"{_when(e).astimezone(BEIJING):%Y-%m-%dT%H:%M:%S}", "ProcessLocation": where,
                        "ProcessContent": word_for(e, YUNEXPRESS_WORDS, YUNEXPRESS_STATUS_WORDS)})
        last_mile = last_mile or last_mile_number(e)
    dest = next((e.get("country") for e in reversed(events) if e.get("country")), None)
    info = {"WaybillNumber": number, "TrackingNumber": last_mile or number, "ProviderName": "YunExpress",
            "OriginCountryCode": "CN", "DestinationCountryCode": dest, "TrackEventDetails": details}
    return "application/json; charset=utf-8", json.dumps({"ResultList": [{"Id": number, "Status": 1,
                                                                         "TrackInfo": info}], "Code": "0000"}).encode()


# 17TRACK sub-status and stage by the journey's stage code
_17_SUB = {"GWMS_ACCEPT": ("InfoReceived", "InfoReceived"), "PU_PICKUP_SUCCESS": ("InTransit_PickedUp", "PickedUp"),
           "LH_DEPART": ("InTransit_Departure", "Departure"), "LH_ARRIVE": ("InTransit_Arrival", "Arrival"),
           "CC_IM_START": ("InTransit_CustomsProcessing", ""), "CC_IM_SUCCESS": ("InTransit_CustomsReleased", ""),
           "GTMS_DO_DEPART": ("OutForDelivery_Other", "OutForDelivery"), "GTMS_SIGNED": ("Delivered_Other", "Delivered"),
           "GTMS_DEL_FAILURE": ("DeliveryFailure_Other", ""), "GTMS_STA_SIGNED": ("AvailableForPickup_Other", "AvailableForPickup")}
_17_MAIN = {"InfoReceived": "InfoReceived", "OutForDelivery": "OutForDelivery", "Delivered": "Delivered",
            "DeliveryFailure": "DeliveryFailure", "AvailableForPickup": "AvailableForPickup"}


def render_17track_item(number: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One `accepted` item of 17TRACK's gettrackinfo answer for a journey (v2.2 shape): events newest
    first with time_iso in the place's own offset, time_utc and time_raw."""
    out = []
    for e in sorted(events, key=_when, reverse=True):
        when = _when(e)
        country = (e.get("country") or "CN").upper()
        local = when.astimezone(BEIJING if country == "CN" else country_zone(country))
        sub, stage = _17_SUB.get(e.get("raw_code") or "", ("InTransit_Other", ""))
        offset = local.strftime("%z")
        out.append({"time_iso": local.isoformat(), "time_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "time_raw": {"date": f"{local:%Y-%m-%d}", "time": f"{local:%H:%M:%S}",
                                 "timezone": f"{offset[:3]}:{offset[3:]}"},
                    "description": e.get("description") or "", "location": ", ".join(
                        p for p in (e.get("city"), e.get("country")) if p),
                    "stage": stage, "sub_status": sub,
                    "address": {"country": e.get("country"), "state": None, "city": e.get("city"),
                                "street": None, "postal_code": e.get("postcode")}})
    main = _17_MAIN.get(out[0]["sub_status"].split("_")[0], "InTransit") if out else "NotFound"
    latest = {"status": main, "sub_status": out[0]["sub_status"] if out else "NotFound_Other", "sub_status_descr": None}
    return {"number": number, "carrier": 3011, "param": None, "tag": None,
            "track_info": {"latest_status": latest, "latest_event": out[0] if out else None,
                           "misc_info": {"local_number": number},
                           "tracking": {"providers": [{"provider": {"key": 3011, "name": "China Post"},
                                                        "events": out}] if out else []}}}


CAPTCHA = {
    "cainiao": b"<html><head><title>Security check</title></head><body><div id='nocaptcha'>"
               b"Please slide to verify (captcha)</div></body></html>",
    "chinapost": b"<html><body><form><p>Please complete the security check to continue</p></form></body></html>",
    "yunexpress": b"<html><body><div class='cf'><h3>Verify you are human</h3></div></body></html>",
}

RENDERERS = {"cainiao": render_cainiao, "chinapost": render_chinapost, "yunexpress": render_yunexpress}
