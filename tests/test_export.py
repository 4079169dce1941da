"""The complaint packet: the 1000-character complaint, evidence files, picture, manifest, privacy."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import stat

import pytest
from test_cases_support import add_event, add_flag, add_order, add_score, at, case_of

from tracker.cases.complaint import LIMIT, compose_complaint
from tracker.cases.privacy import SECRET_KEY, key_path
from tracker.cases.settings import load_settings
from tracker.cases.sync import sync_cases
from tracker.db import get_meta

NUMBER = "RR123456785CN"
OTHERS = {
    "order": ["ORDER-OTHER-2002", "ORDER-OTHER-3003"],
    "buyer": ["buyer-other-alpha", "buyer-zed-9999"],
    "postcode": ["80331"],
    "address": ["Leopoldstrasse 77, Hinterhaus"],
}
ALL_CODES = [
    "invalid_tracking_number",
    "tracking_reused",
    "wrong_destination",
    "accepted_before_order",
    "impossible_transit",
    "delivered_not_received",
    "early_confirmation",
    "seller_pressure",
    "no_tracking_progress",
]


def _reuse_cluster(db):
    add_order(
        db,
        "8100000000000001",
        buyer_id="buyer-own-1",
        ordered_at="2026-03-02T10:00:00Z",
        tracking_number=NUMBER,
        carrier="chinapost",
        shipped_at="2026-03-03T08:00:00Z",
        promised_days=45,
        dest_city="Berlin",
        dest_postcode="10115",
        buyer_received="no",
    )
    add_order(
        db,
        "ORDER-OTHER-2002",
        buyer_id="buyer-other-alpha",
        tracking_number=NUMBER,
        dest_city="Munich",
        dest_postcode="80331",
        extra={"address_line": "Leopoldstrasse 77, Hinterhaus"},
    )
    add_order(
        db,
        "ORDER-OTHER-3003",
        buyer_id="buyer-zed-9999",
        tracking_number=NUMBER,
        dest_city="Berlin",
        dest_postcode="10115",
    )
    add_order(
        db, "8100000000000009", buyer_id="buyer-own-1", tracking_number=NUMBER
    )  # own consolidated order
    add_event(db, NUMBER, "2026-03-04T02:00:00Z", "in_transit", "Posting/Collection", location="Shenzhen, CN")
    add_event(
        db,
        NUMBER,
        "2026-03-12T09:30:00Z",
        "delivered",
        "Delivered",
        location="Munich, DE",
        city="Munich",
        postcode="80331",
        country="DE",
    )
    add_flag(
        db,
        "8100000000000001",
        "tracking_reused",
        "high",
        "The tracking number RR123456785CN is also on orders ORDER-OTHER-2002 and ORDER-OTHER-3003 of buyers "
        "buyer-other-alpha and buyer-zed-9999.",
        {
            "orders": ["ORDER-OTHER-2002", "ORDER-OTHER-3003"],
            "buyers": ["buyer-other-alpha", "buyer-zed-9999"],
            "reuse_cluster": {"buyer-other-alpha": "ORDER-OTHER-2002"},
        },
    )
    add_flag(
        db,
        "8100000000000001",
        "wrong_destination",
        "high",
        "Delivered in Munich 80331, DE; the order goes to Berlin 10115, DE.",
        {"event_ids": [2]},
    )
    add_flag(
        db, "8100000000000001", "no_tracking_progress", "low", "A low-severity note that should come last."
    )
    add_score(db, "8100000000000001", 0.97, "tracking_reused")
    sync_cases(db, {"8100000000000001"}, at("2026-03-20T00:00:00Z"))
    return case_of(db, "8100000000000001")["id"]


def _packet_text(folder) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(folder.iterdir()))


def test_export_writes_the_whole_packet(db, run_cli, tmp_path):
    case_id = _reuse_cluster(db)
    out = tmp_path / "packet"
    result = run_cli("export", case_id, "--out", out, "--as-of", "2026-03-21T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "complaint.txt",
        "evidence.csv",
        "evidence.json",
        "manifest.json",
        "timeline.png",
    ]
    complaint = (out / "complaint.txt").read_text()
    assert len(complaint) <= LIMIT
    assert complaint.startswith(
        "Order Number: 8100000000000001\nIs your order completed or not? No, not completed."
    )
    assert "Did seller induce you to confirm receipt of delivery before the product arrived? No." in complaint
    assert "Have you received the product or not? No, the product has not arrived." in complaint
    assert f"Tracking number: {NUMBER} (chinapost). The seller claims to have sent the goods" in complaint
    # strongest facts first: both high flags before the low one
    assert complaint.index("is also on orders") < complaint.index("A low-severity note")
    assert complaint.index("Delivered in Munich") < complaint.index("A low-severity note")
    assert complaint.index("is also on orders") < complaint.index(
        "Delivered in Munich"
    )  # data order of flags

    evidence = json.loads((out / "evidence.json").read_text())
    assert {f["code"] for f in evidence["flags"]} == {
        "tracking_reused",
        "wrong_destination",
        "no_tracking_progress",
    }
    assert [e["status"] for e in evidence["tracking_events"]] == ["in_transit", "delivered"]
    assert evidence["order"]["buyer_id"] == "buyer-own-1"  # the case's own buyer may appear
    assert len(evidence["related_orders"]) == 2  # the own consolidated order is not "another buyer"
    rows = list(csv.DictReader(io.StringIO((out / "evidence.csv").read_text())))
    assert [r["kind"] for r in rows].count("flag") == 3 and [r["kind"] for r in rows].count("event") == 2
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_manifest_hashes_match_every_file(db, tmp_path, run_cli):
    case_id = _reuse_cluster(db)
    out = tmp_path / "packet"
    assert run_cli("export", case_id, "--out", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    files = {p.name for p in out.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    (out / "complaint.txt").write_text("tampered")
    assert manifest["files"]["complaint.txt"]["sha256"] != hashlib.sha256(b"tampered").hexdigest()


def test_other_buyers_appear_only_as_keyed_hashes(db, db_path, tmp_path, run_cli):
    case_id = _reuse_cluster(db)
    out = tmp_path / "packet"
    assert run_cli("export", case_id, "--out", out).exit_code == 0
    text = _packet_text(out)
    for kind, values in OTHERS.items():
        for value in values:
            assert value not in text, (kind, value)
            # a plain hash of a known id would let anyone with a list of ids match it: not used
            assert hashlib.sha256(value.encode()).hexdigest()[:16] not in text
    key_file = key_path(db_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert get_meta(db, SECRET_KEY) is None  # never in a table the dashboard could serve
    secret = bytes.fromhex(key_file.read_text())
    expected = "buyer-" + hmac.new(secret, b"buyer:buyer-other-alpha", hashlib.sha256).hexdigest()[:16]
    evidence = json.loads((out / "evidence.json").read_text())
    assert expected in {o["buyer"] for o in evidence["related_orders"]}
    assert expected in evidence["flags"][0]["explanation"] or expected in json.dumps(evidence["flags"])
    # the case's own facts stay readable
    assert "Berlin 10115" in (out / "complaint.txt").read_text()
    # the secret is made once: a second export uses the same pseudonyms
    again = tmp_path / "again"
    assert run_cli("export", case_id, "--out", again).exit_code == 0
    assert key_file.read_text().strip() == secret.hex()
    assert json.loads((again / "evidence.json").read_text())["related_orders"] == evidence["related_orders"]


def test_a_non_empty_folder_is_refused_unless_forced(db, tmp_path, run_cli):
    case_id = _reuse_cluster(db)
    out = tmp_path / "packet"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("export", case_id, "--out", out)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"tracker: error: --out {out}: folder is not empty; use --force to write into it"
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert run_cli("export", case_id, "--out", out, "--force").exit_code == 0
    assert (out / "manifest.json").exists() and (out / "notes.txt").read_text() == "mine"
    file_target = tmp_path / "a-file"
    file_target.write_text("x")
    assert run_cli("export", case_id, "--out", file_target).exit_code == 2


@pytest.mark.parametrize("explanation_length", [10, 300, 5000])
def test_the_longest_possible_case_stays_within_1000_characters(db, tmp_path, run_cli, explanation_length):
    long_id = "9" * 500
    add_order(
        db,
        long_id,
        buyer_id="b" * 300,
        tracking_number="X" * 400,
        carrier="c" * 300,
        buyer_confirmed_at="2026-03-05T00:00:00Z",
        buyer_received="no",
        promised_days=90,
        shipped_at="2026-03-03",
    )
    for i, code in enumerate(ALL_CODES):
        add_flag(
            db,
            long_id,
            code,
            "high",
            f"Fact {i} " + "very long explanation with numbers 12345 " * (explanation_length // 40 + 1),
        )
    sync_cases(db, {long_id}, at("2026-03-20"))
    out = tmp_path / "packet"
    assert run_cli("export", case_of(db, long_id)["id"], "--out", out).exit_code == 0
    complaint = (out / "complaint.txt").read_text()
    assert len(complaint) <= LIMIT
    assert "Did seller induce you to confirm receipt of delivery before the product arrived? Yes" in complaint
    assert "Fact " in complaint  # the facts still make it in, cut to fit


def test_compose_never_exceeds_the_limit_whatever_it_is_given():
    settings = load_settings()
    case = {"order_id": "1" * 2000, "reason": "false_shipment"}
    order = {
        "tracking_number": "T" * 2000,
        "carrier": "z" * 2000,
        "buyer_confirmed_at": "2026-01-01T00:00:00Z",
        "buyer_received": "yes",
    }
    flags = [
        {"code": c, "severity": s, "explanation": "word " * 800, "resolved_at": None}
        for c in ALL_CODES
        for s in ("high", "low")
    ]
    for limit in (1000, 300, 120):
        text = compose_complaint(
            case,
            order,
            flags,
            settings,
            limit=limit,
            scrub=lambda s: s.replace("word", "pseudonym-0123456789abcdef"),
        )
        assert len(text) <= limit


def test_compose_stays_within_the_limit_for_any_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    case_settings = load_settings()
    text = st.text(min_size=0, max_size=1500)

    @settings(max_examples=50, deadline=None)
    @given(
        order_id=st.text(min_size=1, max_size=300),
        tracking=text,
        carrier=text,
        received=st.sampled_from(["yes", "no", "", "maybe"]),
        confirmed=st.sampled_from([None, "2026-01-01T00:00:00Z"]),
        flags=st.lists(
            st.tuples(st.sampled_from(ALL_CODES), st.sampled_from(["high", "medium", "low"]), text),
            max_size=12,
        ),
    )
    def check(order_id, tracking, carrier, received, confirmed, flags):
        order = {
            "tracking_number": tracking,
            "carrier": carrier,
            "buyer_received": received,
            "buyer_confirmed_at": confirmed,
        }
        rows = [{"code": c, "severity": s, "explanation": e, "resolved_at": None} for c, s, e in flags]
        complaint = compose_complaint(
            {"order_id": order_id, "reason": "false_shipment"}, order, rows, case_settings
        )
        assert len(complaint) <= LIMIT
        assert complaint.startswith("Order Number: ")

    check()
