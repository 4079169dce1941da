"""The built-in carrier files read pages in their carriers' real shapes (written here by hand, after the
public sources named in each data/carriers/*.toml): in transit, delivered, not found, no information yet,
captcha; every UTC time below is computed by hand from the wall time and zone on the page."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tracker.carriers import Page, load_carriers, parse_page
from tracker.carriers.times import TimeReader, zone


@pytest.fixture(scope="module")
def carriers():
    return load_carriers()


def page(body: str | bytes, content_type: str = "application/json") -> Page:
    return Page("http://x/", 200, content_type, body.encode() if isinstance(body, str) else body, "utf-8")


def times(result) -> list[str]:
    return sorted(e["occurred_at"] for e in result.events)


# ---- Cainiao: global.cainiao.com detail.json ----

def cainiao_doc(number: str, events: list[dict], **module) -> str:
    return json.dumps({"module": [{"mailNo": number, "mailNoSource": "AE", "originCountry": "Mainland China",
                                   "destCountry": "Spain", "status": "TRANSITING", "detailList": events, **module}],
                       "success": True})


def cn_event(time_str: str, zone_text: str, code: str, desc: str, epoch_ms: int = 0, **extra) -> dict:
    return {"time": epoch_ms, "timeStr": time_str, "timeZone": zone_text, "actionCode": code, "desc": desc,
            "standerdDesc": desc, "descTitle": "Carrier note:", **extra}


def test_cainiao_reads_each_event_in_its_own_zone(carriers):
    number = "RS0814398526Y"
    events = [  # newest first, as on the real site; two events share a wall time in different zones
        cn_event("2026-10-24 18:30:00", "GMT+02:00", "GTMS_SIGNED", "Delivered", city="MADRID CTM", country="ES",
                 group={"nodeCode": "AE_GROUP_DELIVERED"}),
        cn_event("2026-10-22 10:00:00", "GMT+3", "CC_HO_OUT_SUCCESS", "Leaving customs"),
        cn_event("2026-10-22 10:00:00", "GMT+0", "LH_ARRIVE", "Arrived at linehaul office"),
        cn_event("2026-10-21 03:15:00", "GMT+0800", "LH_DEPART", "Departed from departure country/region"),
        cn_event("2026-10-20 09:00:00", "", "GWMS_ACCEPT", "Order received", epoch_ms=1792458000000),
    ]
    result = parse_page(carriers["cainiao"], page(cainiao_doc(number, events)), number)
    assert result.outcome == "ok" and result.page_number == number
    by_code = {e["raw_code"]: (e["occurred_at"], e["status"]) for e in result.events}
    assert by_code == {
        "GTMS_SIGNED": ("2026-10-24T16:30:00Z", "delivered"),        # 18:30 at +2
        "CC_HO_OUT_SUCCESS": ("2026-10-22T07:00:00Z", "in_transit"),  # 10:00 at +3
        "LH_ARRIVE": ("2026-10-22T10:00:00Z", "in_transit"),          # 10:00 at +0
        "LH_DEPART": ("2026-10-20T19:15:00Z", "in_transit"),          # 03:15 at +8: the day before in UTC
        "GWMS_ACCEPT": ("2026-10-20T01:00:00Z", "info_received"),     # empty zone: China time
    }


def test_cainiao_statuses_without_events(carriers):
    number = "AE010698498"
    not_found = json.dumps({"module": [{"mailNo": number, "mailNoSource": "EXTERNAL", "detailList": []}],
                            "success": True})
    assert parse_page(carriers["cainiao"], page(not_found), number).outcome == "not_found"
    preparing = cainiao_doc(number, [], status="SELLER_PREPARING", statusDesc="Seller preparing")
    result = parse_page(carriers["cainiao"], page(preparing), number)
    assert result.outcome == "no_information" and result.error is None


def test_cainiao_last_mile_number_and_captcha(carriers):
    number = "LP00123456789012"
    doc = cainiao_doc(number, [cn_event("2026-10-22 10:00:00", "GMT+2", "GTMS_ACCEPT", "Handed over")],
                      realMailNo="Latest Tracking Number:\tPQ4F6B0711234560128007B")
    assert parse_page(carriers["cainiao"], page(doc), number).last_mile_number == "PQ4F6B0711234560128007B"
    captcha = page("<html><body><div id='nocaptcha'>Please slide to verify</div></body></html>", "text/html")
    assert parse_page(carriers["cainiao"], captcha, number).outcome == "captcha"


# ---- 4PX: track.4px.com listTrackV3 ----

def fourpx_doc(number: str, tracks: list[dict]) -> str:
    data = [{"queryCode": number, "serverCode": "LV123456789ES", "shipperCode": "", "ctStartCode": "CN",
             "ctEndCode": "ES", "status": 1, "tracks": tracks}] if tracks is not None else []
    return json.dumps({"result": 1, "message": "success", "data": data, "tag": "1"})


def test_4px_needs_no_code(carriers):
    number = "4PX3001518625089CN"
    tracks = [
        {"tkCode": "FPX_S_OK", "tkDesc": "Shipment delivered.", "tkLocation": "Madrid,Spain",
         "tkTimezone": "GMT+01:00", "tkDateStr": "2026-11-02 11:05:00", "tkDate": "2026-11-02 11:05:00"},
        {"tkCode": "FPX_D_SD", "tkDesc": "Scheduled for delivery.", "tkLocation": "Madrid,Spain",
         "tkTimezone": "GMT+01:00", "tkDateStr": "2026-11-02 07:40:00", "tkDate": "2026-11-02 07:40:00"},
        {"tkCode": "FPX_M_DAHK", "tkDesc": "Departed from Hong Kong international airport.",
         "tkLocation": "HONG KONG", "tkTimezone": "GMT+08:00", "tkDateStr": "2026-10-28 23:50:00"},
        {"tkCode": "FPX_L_RPIF", "tkDesc": "Shipment information received", "tkLocation": "",
         "tkTimezone": "", "tkDateStr": "2026-10-26 09:12:00"},
    ]
    result = parse_page(carriers["4px"], page(fourpx_doc(number, tracks)), number)
    assert result.outcome == "ok" and result.page_number == number
    assert [(e["occurred_at"], e["status"]) for e in sorted(result.events, key=lambda e: e["occurred_at"])] == [
        ("2026-10-26T01:12:00Z", "info_received"),
        ("2026-10-28T15:50:00Z", "in_transit"),
        ("2026-11-02T06:40:00Z", "out_for_delivery"),
        ("2026-11-02T10:05:00Z", "delivered"),
    ]
    delivered = max(result.events, key=lambda e: e["occurred_at"])
    assert (delivered["city"], delivered["country"], delivered["raw_code"]) == ("Madrid", "ES", "FPX_S_OK")
    assert parse_page(carriers["4px"], page(fourpx_doc(number, None)), number).outcome == "not_found"


# ---- Yanwen: api.track.yw56.com.cn, events over two lists ----

def test_yanwen_joins_its_two_event_lists(carriers):
    number = "UH183870291YP"
    doc = {"code": 0, "message": "success", "result": [{
        "tracking_number": number, "waybill_number": number, "exchange_number": "00340434511539026190",
        "checkpoints": [
            {"time_stamp": "2026-10-07T09:03:09", "time_zone": "+08", "tracking_status": "OR10",
             "message": "Order processed by shipper", "location": "", "is_last_mile_checkpoint": 0},
            {"time_stamp": "2026-10-10T09:32:00", "time_zone": "+08", "tracking_status": "LH20",
             "message": "Port of departure - Departure", "location": "", "is_last_mile_checkpoint": 0}],
        "last_mile_checkpoints": [
            {"time_stamp": "2026-10-26T09:52:37", "time_zone": "+01", "tracking_status": "LM40",
             "message": "Delivered", "location": "Rodgau (PZ) / Offenbach (BZ)", "is_last_mile_checkpoint": 1}],
        "tracking_status": "LM40", "origin_country": "CN", "destination_country": "DE"}]}
    result = parse_page(carriers["yanwen"], page(json.dumps(doc)), number)
    assert result.outcome == "ok" and result.page_number == number
    assert [(e["occurred_at"], e["status"]) for e in sorted(result.events, key=lambda e: e["occurred_at"])] == [
        ("2026-10-07T01:03:09Z", "info_received"), ("2026-10-10T01:32:00Z", "in_transit"),
        ("2026-10-26T08:52:37Z", "delivered")]
    missing = {"code": 0, "result": [{"tracking_number": number, "checkpoints": [], "tracking_status": "NOTFOUND"}]}
    assert parse_page(carriers["yanwen"], page(json.dumps(missing)), number).outcome == "not_found"


# ---- YunExpress: services.yuntrack.com Track/Query ----

def test_yunexpress_reads_its_query_answer(carriers):
    number = "YT2616912345678901"
    doc = {"ResultList": [{"Id": number, "Status": 1, "TrackInfo": {
        "WaybillNumber": number, "TrackingNumber": "CX123456789ES", "ProviderName": "YunExpress",
        "TrackEventDetails": [
            {"CreatedOn": "2026-10-30T15:20:00", "ProcessLocation": "Madrid, Spain, 28013",
             "ProcessContent": "Delivered to recipient"},
            {"CreatedOn": "2026-10-20T08:00:00", "ProcessLocation": "Shenzhen, China",
             "ProcessContent": "Picked up by YunExpress"}]}}]}
    result = parse_page(carriers["yunexpress"], page(json.dumps(doc)), number)
    assert result.outcome == "ok" and result.last_mile_number == "CX123456789ES"
    assert times(result) == ["2026-10-20T00:00:00Z", "2026-10-30T07:20:00Z"]  # China time (+8)
    empty = {"ResultList": [{"Id": number, "Status": 0, "TrackInfo": None}]}
    assert parse_page(carriers["yunexpress"], page(json.dumps(empty)), number).outcome == "not_found"


# ---- times ----

@pytest.mark.parametrize(("text", "zone_text", "expected"), [
    ("21 Oct 2026, 03:15 GMT+8", None, "2026-10-20T19:15:00"),
    ("24 Oct 2026, 18:30 CEST", None, "2026-10-24T16:30:00"),
    ("24 Oct 2026, 18:30", None, "2026-10-24T16:30:00"),          # Madrid summer time (+2)
    ("26 Oct 2026, 18:30", None, "2026-10-26T17:30:00"),          # after the change back (+1)
    ("2026/11/26 14:05", "UTC+3", "2026-11-26T11:05:00"),
    ("Nov 26, 2026 2:05 PM", "GMT+0800", "2026-11-26T06:05:00"),
    ("26.11.2026 14:05", "+08:00", "2026-11-26T06:05:00"),
    ("2026-11-26T14:05:00Z", None, "2026-11-26T14:05:00"),
    ("2026-11-26T14:05:00+08:00", "CET", "2026-11-26T06:05:00"),  # the offset in the text wins
    ("1795701900", None, "2026-11-26T14:05:00"),                 # epoch seconds
    ("1795701900000", None, "2026-11-26T14:05:00"),              # epoch milliseconds
])
def test_time_forms_and_zones(text, zone_text, expected):
    reader = TimeReader(zone("Europe/Madrid"))
    assert reader.read(text, zone_text).strftime("%Y-%m-%dT%H:%M:%S") == expected


def test_a_date_is_not_mistaken_for_a_zone():
    assert TimeReader(zone("UTC")).read("2026-10-12").isoformat() == "2026-10-12T00:00:00+00:00"


# ---- destination posts ----

USPS = """<?xml version="1.0" encoding="UTF-8"?>
<TrackResponse><TrackInfo ID="9400111899223197428490">
<TrackSummary><EventTime>2:05 pm</EventTime><EventDate>November 3, 2026</EventDate>
<Event>Delivered, In/At Mailbox</Event><EventCity>AUSTIN</EventCity><EventState>TX</EventState>
<EventZIPCode>78701</EventZIPCode><EventCountry/><EventCode>01</EventCode></TrackSummary>
<TrackDetail><EventTime>7:10 am</EventTime><EventDate>November 3, 2026</EventDate><Event>Out for Delivery</Event>
<EventCity>AUSTIN</EventCity><EventState>TX</EventState><EventZIPCode>78701</EventZIPCode><EventCode>OF</EventCode></TrackDetail>
<TrackDetail><EventTime/><EventDate/><Event>Pre-Shipment Info Sent to USPS, USPS Awaiting Item</Event>
<EventCode>MA</EventCode></TrackDetail>
<TrackDetail><EventTime>11:48 pm</EventTime><EventDate>October 31, 2026</EventDate>
<Event>Arrived at USPS Regional Facility</Event><EventCity>CHICAGO IL NETWORK DISTRIBUTION CENTER</EventCity>
<EventCode>10</EventCode></TrackDetail>
</TrackInfo></TrackResponse>"""


def test_usps_xml_joins_date_and_time_and_drops_only_the_undated_row(carriers):
    number = "9400111899223197428490"
    result = parse_page(carriers["usps"], page(USPS, "text/xml"), number)
    assert result.outcome == "ok" and result.page_number == number
    assert result.notes == ["event row 3: no time; row dropped"]
    # US Eastern: 31 Oct is daylight time (-4), 3 Nov is standard time (-5) after the 1 Nov change
    assert [(e["occurred_at"], e["status"]) for e in sorted(result.events, key=lambda e: e["occurred_at"])] == [
        ("2026-11-01T03:48:00Z", "in_transit"), ("2026-11-03T12:10:00Z", "out_for_delivery"),
        ("2026-11-03T19:05:00Z", "delivered")]
    missing = ('<TrackResponse><TrackInfo ID="9400111899223197428490"><Error><Number>-2147219302</Number>'
               "<Description>The Postal Service could not locate the tracking information for your request."
               "</Description></Error></TrackInfo></TrackResponse>")
    assert parse_page(carriers["usps"], page(missing, "text/xml"), number).outcome == "not_found"


def test_correos_reads_spanish_time_across_the_daylight_saving_change(carriers):
    number = "LX123456789ES"
    doc = {"type": "envio", "shipment": [{"shipmentCode": number, "events": [
        {"eventDate": "24/10/2026", "eventTime": "18:30:00", "desPhase": "EN CAMINO",
         "summaryText": "In transit", "extendedText": "Shipment in transit", "codired": "2899694"},
        {"eventDate": "26/10/2026", "eventTime": "09:15:00", "desPhase": "EN ENTREGA",
         "summaryText": "Out for delivery", "extendedText": "Out for delivery", "codired": "2899694"},
        {"eventDate": "26/10/2026", "eventTime": "13:40:00", "desPhase": "ENTREGADO",
         "summaryText": "Delivered", "extendedText": "Delivered", "codired": "2899694"}]}]}
    result = parse_page(carriers["correos"], page(json.dumps(doc)), number)
    assert [(e["occurred_at"], e["status"], e["country"]) for e in result.events] == [
        ("2026-10-24T16:30:00Z", "in_transit", "ES"),         # CEST, +2
        ("2026-10-26T08:15:00Z", "out_for_delivery", "ES"),   # CET, +1
        ("2026-10-26T12:40:00Z", "delivered", "ES")]


def test_laposte_dhl_royal_mail_and_russian_post(carriers):
    laposte = {"returnCode": 200, "shipment": {"idShip": "6A12345678901", "event": [
        {"code": "DI1", "label": "Your parcel has been delivered", "date": "2026-11-05T12:10:00+01:00"},
        {"code": "MD2", "label": "Out for delivery", "date": "2026-11-05T07:45:00+01:00"}]}}
    result = parse_page(carriers["laposte"], page(json.dumps(laposte)), "6A12345678901")
    assert times(result) == ["2026-11-05T06:45:00Z", "2026-11-05T11:10:00Z"]
    assert {e["status"] for e in result.events} == {"delivered", "out_for_delivery"}

    dhl = {"shipments": [{"id": "00340434161094042557", "events": [
        {"timestamp": "2026-11-05T10:20:00", "statusCode": "delivered", "description": "The shipment has been delivered",
         "location": {"address": {"addressLocality": "Berlin", "postalCode": "10115", "countryCode": "DE"}}}]}]}
    result = parse_page(carriers["dhl"], page(json.dumps(dhl)), "00340434161094042557")
    assert [(e["occurred_at"], e["status"], e["city"], e["postcode"]) for e in result.events] == [
        ("2026-11-05T09:20:00Z", "delivered", "Berlin", "10115")]

    royal = {"mailPieces": {"mailPieceId": "AB123456789GB", "events": [
        {"eventCode": "EVKSP", "eventName": "Delivered and Signed", "eventDateTime": "2026-07-14T11:02:00+01:00",
         "locationName": "Hackney Delivery Office"}]}}
    result = parse_page(carriers["royalmail"], page(json.dumps(royal)), "AB123456789GB")
    assert [(e["occurred_at"], e["status"]) for e in result.events] == [("2026-07-14T10:02:00Z", "delivered")]

    soap = """<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body>
    <ns7:getOperationHistoryResponse xmlns:ns3="http://russianpost.org/operationhistory/data"
      xmlns:ns7="http://russianpost.org/operationhistory"><ns3:OperationHistoryData>
    <ns3:historyRecord><ns3:AddressParameters><ns3:OperationAddress><ns3:Index>101000</ns3:Index>
    <ns3:Description>Москва 101000</ns3:Description></ns3:OperationAddress><ns3:CountryOper><ns3:Code2A>RU</ns3:Code2A>
    </ns3:CountryOper></ns3:AddressParameters><ns3:ItemParameters><ns3:Barcode>RA644000001RU</ns3:Barcode></ns3:ItemParameters>
    <ns3:OperationParameters><ns3:OperType><ns3:Id>2</ns3:Id><ns3:Name>Вручение</ns3:Name></ns3:OperType>
    <ns3:OperAttr><ns3:Id>1</ns3:Id><ns3:Name>Вручение адресату</ns3:Name></ns3:OperAttr>
    <ns3:OperDate>2026-11-05T14:55:00.000+03:00</ns3:OperDate></ns3:OperationParameters></ns3:historyRecord>
    </ns3:OperationHistoryData></ns7:getOperationHistoryResponse></S:Body></S:Envelope>"""
    result = parse_page(carriers["russianpost"], page(soap, "application/soap+xml"), "RA644000001RU")
    assert result.page_number == "RA644000001RU"
    assert [(e["occurred_at"], e["status"], e["postcode"], e["country"]) for e in result.events] == [
        ("2026-11-05T11:55:00Z", "delivered", "101000", "RU")]


def test_the_time_cache_stays_small_over_a_long_poll_and_answers_alike():
    """A long poll meets more distinct time texts than it keeps (`CACHED_TEXTS`); what it reads from the cache
    is what it reads anew."""
    from datetime import timedelta

    from tracker.carriers import times

    reader = TimeReader(zone("Asia/Shanghai"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    texts = [(start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(3 * times.CACHED_TEXTS)]
    first = [reader.read(t) for t in texts]
    assert len(reader._cache) <= times.CACHED_TEXTS
    again = [reader.read(t) for t in texts[-100:]]  # the last ones read, cached: the same answers
    assert again == first[-100:]
    fresh = TimeReader(zone("Asia/Shanghai"))
    assert [fresh.read(t) for t in texts[:: times.CACHED_TEXTS // 7]] == first[:: times.CACHED_TEXTS // 7]
    assert first[0] == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 8 hours ahead of UTC
