"""Carrier text -> normalised status (data/statuses.toml)."""

from __future__ import annotations

import pytest

from tracker import config, statuses
from tracker.events import NORMALISED_STATUSES
from tracker.statuses import derive_status, status_from_code, status_from_text


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Delivered", "delivered"),
        ("Delivered to the recipient, Madrid", "delivered"),
        ("Signed for by: IVANOV", "delivered"),
        ("Item delivered - left in mailbox", "delivered"),
        ("Out for delivery", "out_for_delivery"),
        ("The item is out for delivery [Moscow 101000]", "out_for_delivery"),
        ("Arrived at destination country", "in_transit"),
        ("Departed from sorting center", "in_transit"),
        ("Customs clearance completed", "in_transit"),
        ("Import customs clearance started", "in_transit"),
        ("Hand over to airline", "in_transit"),
        ("Accepted by carrier", "in_transit"),
        ("Arrived at delivery office", "in_transit"),
        ("Electronic information received", "info_received"),
        ("Shipment information received", "info_received"),
        ("Shipping label created", "info_received"),
        ("Delivery attempt failed", "delivery_failed"),
        ("Attempted delivery - addressee not available", "delivery_failed"),
        ("Not delivered: recipient absent", "delivery_failed"),
        ("Returned to sender", "returned"),
        ("Item being returned to sender", "returned"),
        ("Awaiting collection at post office", "available_for_pickup"),
        ("Ready for pickup at parcel locker", "available_for_pickup"),
        ("Held by import customs", "in_transit"),
        ("Customs inspection, duties unpaid", "exception"),
        ("Delivery", "delivered"),
        ("Collected by the recipient at the pickup point", "delivered"),
        ("Seller has shipped, awaiting pickup", "info_received"),
        ("Parcel damaged", "exception"),
        ("No information available for this tracking number", "not_found"),
        ("Tracking number not found", "not_found"),
        ("Lorem ipsum", "unknown"),
        ("", "unknown"),
    ],
)
def test_status_from_text(text, status):
    assert status_from_text(text) == status


def test_every_rule_names_a_normalised_status():
    for rule in config.load("statuses")["rules"]:
        assert rule["status"] in NORMALISED_STATUSES
        assert rule["patterns"]


def test_raw_code_is_the_fallback_when_the_text_says_nothing():
    assert status_from_code("GTMS_SIGNED") == "delivered"
    assert status_from_code("gtms_do_depart") == "out_for_delivery"
    assert status_from_code("NEW_CODE") == "unknown"
    assert derive_status("Lorem ipsum", "GTMS_SIGNED") == "delivered"
    assert derive_status("Delivery attempt failed", "GTMS_SIGNED") == "delivery_failed"  # the text wins


def test_carrier_rules_come_first_and_the_map_is_user_overridable(tmp_path, monkeypatch):
    (tmp_path / "statuses.toml").write_text(
        '[[carriers.yunexpress]]\nstatus = "delivered"\npatterns = ["\\\\bPOD\\\\b"]\n'
    )
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path))
    config.reload()
    statuses.clear_cache()
    try:
        assert status_from_text("POD scanned", "yunexpress") == "delivered"
        assert status_from_text("POD scanned") == "in_transit"  # 'scanned' by the shared rules
        assert status_from_text("Returned to sender", "yunexpress") == "returned"
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        config.reload()
        statuses.clear_cache()


def test_a_bad_status_in_the_map_is_bad_input(tmp_path, monkeypatch):
    from tracker.errors import BadInput

    (tmp_path / "statuses.toml").write_text('[[rules]]\nstatus = "teleported"\npatterns = ["x"]\n')
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(tmp_path))
    config.reload()
    statuses.clear_cache()
    try:
        with pytest.raises(BadInput, match="teleported"):
            status_from_text("anything at all")
    finally:
        monkeypatch.delenv("TRACKER_CONFIG_DIR")
        config.reload()
        statuses.clear_cache()
