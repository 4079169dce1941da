"""A small, deterministic set of orders, flags and cases for the dashboard's tests and screenshots.

Rows go straight into the tables (no importer, no detector), so the dashboard can be tested on its own.
"""

from __future__ import annotations

import json
import zlib

import sqlite_utils

from tracker.search_index import fold_pending

CARRIER_PAGE = (
    "<html><head><title>China Post tracking</title>"
    "<script>document.title = 'pwned'; window.__ran = true;</script></head>"
    "<body><h1>RB123456785CN</h1><p>Delivered, Lyon 69003 FR</p></body></html>"
)


def build_sample(db: sqlite_utils.Database) -> dict[str, int]:
    """Insert the sample; return the case ids by name (reused, delivered_elsewhere, closed, other_category)."""
    orders = [
        # order_id, buyer, seller, ordered_at, country, city, postcode, tracking, carrier, title
        ("8100000001", "buyer-me", "seller-acme", "2026-09-01T10:00:00Z", "DE", "Berlin", "10115",
         "RB123456785CN", "chinapost", "USB charger"),
        ("8100000002", "buyer-anna", "seller-acme", "2026-09-02T11:00:00Z", "FR", "Lyon", "69003",
         "RB123456785CN", "chinapost", "Phone case"),
        ("8100000003", "buyer-otto", "seller-acme", "2026-09-03T12:00:00Z", "ES", "Madrid", "28001",
         "RB123456785CN", "chinapost", "Cable"),
        ("8100000004", "buyer-me", "seller-zen", "2026-09-05T09:00:00Z", "DE", "Berlin", "10115",
         "LP00123456789012", "cainiao", "Garden lamp"),
        ("8100000005", "buyer-me", "seller-zen", "2026-08-01T09:00:00Z", "DE", "Berlin", "10115",
         "YT1234567890123456", "yunexpress", "Sticker set"),
        ("8100000006", "buyer-me", "seller-brand", "2026-09-07T09:00:00Z", "DE", "Berlin", "10115",
         None, None, "Sneakers (copy)"),
    ]
    with db.conn:
        db.conn.executemany(
            "INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country, dest_city, dest_postcode,"
            " tracking_number, carrier, item_title, shipped_at, promised_days, buyer_received, amount, currency)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 30, 'no', 12.5, 'EUR')",
            [(*row, row[3]) for row in orders],
        )
        sha = "a" * 64
        db.conn.execute(
            "INSERT INTO page_snapshots(sha256, tracking_number, carrier, url, fetched_at, http_status,"
            " content_type, size, body) VALUES (?, 'RB123456785CN', 'chinapost', 'http://127.0.0.1/track',"
            " '2026-09-10T08:00:00Z', 200, 'text/html', ?, ?)",
            [sha, len(CARRIER_PAGE), zlib.compress(CARRIER_PAGE.encode())],
        )
        events = [
            ("RB123456785CN", "2026-08-30T08:00:00Z", "info_received", "Shipment information received",
             "Shenzhen, CN", "CN", "GWMS_ACCEPT", None),
            ("RB123456785CN", "2026-09-06T08:00:00Z", "in_transit", "Departed from sorting center",
             "Guangzhou, CN", "CN", "SC_OUTBOUND_SUCCESS", None),
            ("RB123456785CN", "2026-09-09T08:00:00Z", "delivered", "Delivered", "Lyon, FR", "FR",
             "GTMS_SIGNED", sha),
            ("LP00123456789012", "2026-09-06T08:00:00Z", "info_received", "Order information received",
             "Hangzhou, CN", "CN", "GWMS_ACCEPT", None),
        ]
        db.conn.executemany(
            "INSERT INTO tracking_events(tracking_number, occurred_at, status, description, location, country,"
            " carrier, raw_code, source, snapshot_sha256, event_key) VALUES (?, ?, ?, ?, ?, ?, 'chinapost', ?,"
            " 'poll', ?, ?)",
            [(*e, f"k{i}") for i, e in enumerate(events)],
        )
        flags = [
            ("8100000001", "tracking_reused", "high",
             "Tracking number RB123456785CN is on 3 orders of 3 different buyers (8100000002, 8100000003)."),
            ("8100000001", "wrong_destination", "high",
             "Delivered in Lyon, FR (69003); the order goes to Berlin, DE (10115)."),
            ("8100000001", "accepted_before_order", "medium",
             "First carrier scan 2026-08-30T08:00:00Z is 2 days before the order 2026-09-01T10:00:00Z."),
            ("8100000004", "no_tracking_progress", "medium",
             "Only 'info received' 20 days after shipping; no physical scan."),
            ("8100000006", "invalid_tracking_number", "high", "The order has no valid tracking number."),
        ]
        db.conn.executemany(
            "INSERT INTO flags(order_id, code, severity, explanation, evidence, detected_at, rule_version)"
            " VALUES (?, ?, ?, ?, ?, '2026-09-12T00:00:00Z', 'rules-1')",
            [(*f, json.dumps({"orders": ["8100000002", "8100000003"]})) for f in flags],
        )
        db.conn.execute(
            "INSERT INTO scores(order_id, score, codes, reasons, model_id, scored_at) VALUES"
            " ('8100000001', 0.97, 'tracking_reused,wrong_destination', ?, 'gb-1', '2026-09-12T00:00:00Z')",
            [json.dumps([{"feature": "buyers_sharing_number", "contribution": 0.41},
                         {"feature": "destination_mismatch", "contribution": 0.33}])],
        )
        db.conn.execute(  # what the scorer records of the model that scored (tracker.detection.scoring)
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('scored_by:gb-1', ?)",
            [json.dumps({"model_id": "gb-1", "summary": "the shipped model (generated worlds) 85%, the rules prior 15%",
                         "parts": [{"part": "shipped", "weight": 0.85}, {"part": "prior", "weight": 0.15}],
                         "base_log_odds": -3.1})],
        )
        cases = [
            # order, status, category, reason, score, codes, deadline, deadline name
            ("8100000001", "new", "trade_rules", "false_shipment", 0.97, "tracking_reused,wrong_destination",
             "2026-09-20T00:00:00Z", "escalation"),
            ("8100000004", "pending", "trade_rules", "false_shipment", 0.74, "no_tracking_progress",
             "2026-09-25T00:00:00Z", "decision_due"),
            ("8100000005", "closed", "trade_rules", "non_delivery", 0.2, "", None, None),
            ("8100000006", "more_info", "ipr", None, 0.5, "invalid_tracking_number",
             "2026-09-22T00:00:00Z", "complaint_window"),
        ]
        ids = []
        for c in cases:
            cursor = db.conn.execute(
                "INSERT INTO cases(order_id, status, category, reason, score, flag_codes, opened_at, updated_at,"
                " next_deadline_at, next_deadline_name) VALUES (?, ?, ?, ?, ?, ?, '2026-09-12T00:00:00Z',"
                " '2026-09-12T00:00:00Z', ?, ?)",
                c,
            )
            ids.append(cursor.lastrowid)
        db.conn.execute(
            "INSERT INTO case_events(case_id, at, actor, kind, from_status, to_status, note) VALUES"
            " (?, '2026-09-12T00:00:00Z', 'detect', 'opened', NULL, 'new', 'opened by detect')",
            [ids[0]],
        )
        db.conn.executemany(
            "INSERT INTO messages(order_id, sender, sent_at, text, message_key) VALUES (?, ?, ?, ?, ?)",
            [
                ("8100000001", "seller", "2026-09-10T09:00:00Z",
                 "Please confirm receipt now and I will send a refund by PayPal.", "m1"),
                ("8100000001", "buyer", "2026-09-10T10:00:00Z", "Nothing has arrived in Berlin.", "m2"),
            ],
        )
        fold_pending(db.conn)  # as every writer of cases does at the end of its transaction
    return {"reused": ids[0], "pending": ids[1], "closed": ids[2], "ipr": ids[3]}
