"""`tracker import events` and `tracker import messages`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from test_import_support import snapshot, write_csv, write_jsonl

from tracker.errors import BadInput
from tracker.importers import import_file

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
EVENT_HEADER = [
    "tracking_number",
    "occurred_at",
    "status",
    "description",
    "location",
    "country",
    "carrier",
    "raw_code",
]
NUMBER = "RR473124829CN"


def events_file(tmp_path, rows, name="e.csv"):  # noqa: ANN001, ANN201
    return write_csv(tmp_path / name, EVENT_HEADER, rows)


def test_events_import_derives_status_and_registers_the_shipment(db, tmp_path):
    path = events_file(
        tmp_path,
        [
            [
                "rr 473 124 829 cn",
                "2026-03-02T08:00:00Z",
                "",
                "Electronic information received",
                "Shenzhen, CN",
                "cn",
                "",
                "",
            ],
            [NUMBER, "2026-03-20 09:30", "", "Arrived at destination country", "Madrid, ES", "ES", "", ""],
            [NUMBER, "2026-03-25T10:00:00+01:00", "DELIVERED", "", "Madrid, ES", "es", "", "GTMS_SIGNED"],
            [NUMBER, "2026-03-24T10:00:00Z", "", "Lorem", "", "", "", "GTMS_DO_DEPART"],
        ],
    )
    result = import_file(db, "events", path, now=NOW)
    assert (result.inserted, result.unchanged) == (4, 0)
    rows = db.conn.execute(
        "SELECT occurred_at, status, country, source, ingested_at FROM tracking_events ORDER BY occurred_at"
    ).fetchall()
    assert rows == [
        ("2026-03-02T08:00:00Z", "info_received", "CN", "import", "2026-04-01T12:00:00Z"),
        ("2026-03-20T09:30:00Z", "in_transit", "ES", "import", "2026-04-01T12:00:00Z"),
        ("2026-03-24T10:00:00Z", "out_for_delivery", None, "import", "2026-04-01T12:00:00Z"),
        ("2026-03-25T09:00:00Z", "delivered", "ES", "import", "2026-04-01T12:00:00Z"),
    ]
    assert db.conn.execute("SELECT DISTINCT tracking_number FROM tracking_events").fetchall() == [(NUMBER,)]
    shipment = db.conn.execute("SELECT carrier, state, last_event_at, next_poll_at FROM shipments").fetchall()
    assert shipment == [("chinapost", "pending", "2026-03-25T09:00:00Z", "1970-01-01T00:00:00Z")]


def test_identical_events_are_stored_once_and_reimport_changes_nothing(db, tmp_path):
    row = [
        NUMBER,
        "2026-03-02T08:00:00Z",
        "in_transit",
        "Departed",
        "Shenzhen, CN",
        "CN",
        "chinapost",
        "LH_DEPART",
    ]
    path = events_file(tmp_path, [row, row, [*row[:1], "2026-03-03T08:00:00Z", *row[2:]]])
    first = import_file(db, "events", path, now=NOW)
    assert (first.inserted, first.unchanged) == (2, 1)
    before, changes = snapshot(db), db.conn.total_changes
    again = import_file(db, "events", path, now=datetime(2026, 5, 1, tzinfo=UTC))
    assert (again.inserted, again.unchanged) == (0, 3)
    assert snapshot(db) == before and db.conn.total_changes == changes


def test_last_event_at_only_moves_forward(db, tmp_path):
    import_file(
        db,
        "events",
        events_file(tmp_path, [[NUMBER, "2026-03-10", "in_transit", "", "", "", "", ""]]),
        now=NOW,
    )
    import_file(
        db,
        "events",
        events_file(tmp_path, [[NUMBER, "2026-03-01", "info_received", "", "", "", "", ""]], "b.csv"),
        now=NOW,
    )
    assert db.conn.execute("SELECT last_event_at FROM shipments").fetchone() == ("2026-03-10T00:00:00Z",)


@pytest.mark.parametrize(
    ("row", "where"),
    [
        (
            ["", "2026-03-01", "in_transit", "", "", "", "", ""],
            "column tracking_number: required value is missing",
        ),
        ([NUMBER, "", "in_transit", "", "", "", "", ""], "column occurred_at: required value is missing"),
        ([NUMBER, "last week", "in_transit", "", "", "", "", ""], "column occurred_at: not an ISO 8601"),
        (
            [NUMBER, "2026-03-01", "teleported", "", "", "", "", ""],
            "column status: 'teleported' is not a normalised status",
        ),
        ([NUMBER, "2026-03-01", "", "", "", "", "", ""], "column description: required when status is empty"),
        (
            [NUMBER, "2026-03-01", "delivered", "", "", "Spain", "", ""],
            "column country: 'Spain' is not an ISO 3166-1",
        ),
    ],
)
def test_event_errors(db, tmp_path, row, where):
    path = events_file(tmp_path, [[NUMBER, "2026-03-01", "in_transit", "", "", "", "", ""], row])
    with pytest.raises(BadInput) as info:
        import_file(db, "events", path, now=NOW)
    assert info.value.problems[0].startswith(f"{path}:3: {where}")
    assert db.conn.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == 0
    assert db.conn.execute("SELECT count(*) FROM shipments").fetchone()[0] == 0


def test_events_missing_columns(db, tmp_path):
    path = write_csv(tmp_path / "e.csv", ["description", "status"], [["Delivered", ""]])
    with pytest.raises(BadInput) as info:
        import_file(db, "events", path, now=NOW)
    assert info.value.problems == [
        f"{path}:1: missing required columns tracking_number, occurred_at (the header has: description, status)"
    ]


def test_events_jsonl_with_unknown_fields_kept(db, tmp_path):
    path = write_jsonl(
        tmp_path / "e.jsonl",
        [
            {
                "tracking_number": "LP00123456789012",
                "occurred_at": "2026-03-01T01:02:03Z",
                "description": "Out for delivery",
                "hub": "MAD-1",
                "weight_kg": 0.4,
            },
        ],
    )
    import_file(db, "events", path, now=NOW)
    status, extra = db.conn.execute("SELECT status, extra FROM tracking_events").fetchone()
    assert status == "out_for_delivery"
    assert json.loads(extra) == {"hub": "MAD-1", "weight_kg": 0.4}
    assert db.conn.execute("SELECT carrier FROM shipments").fetchone() == ("cainiao",)


def test_events_skip_invalid(db, tmp_path):
    path = events_file(
        tmp_path,
        [
            [NUMBER, "2026-03-01", "in_transit", "", "", "", "", ""],
            [NUMBER, "bad", "in_transit", "", "", "", "", ""],
        ],
    )
    result = import_file(db, "events", path, skip_invalid=tmp_path / "rej.csv", now=NOW)
    assert (result.inserted, result.rejected) == (1, 1)
    assert "line,reason" in (tmp_path / "rej.csv").read_text().splitlines()[0]


MESSAGE_HEADER = ["order_id", "sender", "sent_at", "text"]


def test_messages_import_dedupe_and_orphans(db, tmp_path):
    rows = [
        ["A1", "Seller", "2026-03-01T10:00:00Z", "Please confirm receipt, I will refund you on PayPal"],
        ["A1", "buyer", "2026-03-01T11:00:00Z", "It has not arrived"],
        ["A1", "Seller", "2026-03-01T10:00:00Z", "Please confirm receipt, I will refund you on PayPal"],
        ["NO-SUCH-ORDER", "buyer", "2026-03-02", "hello"],
    ]
    path = write_csv(tmp_path / "m.csv", MESSAGE_HEADER, rows)
    first = import_file(db, "messages", path, now=NOW)
    assert (first.inserted, first.unchanged) == (3, 1)
    assert db.conn.execute("SELECT sender, sent_at FROM messages ORDER BY sent_at").fetchall() == [
        ("seller", "2026-03-01T10:00:00Z"),
        ("buyer", "2026-03-01T11:00:00Z"),
        ("buyer", "2026-03-02T00:00:00Z"),
    ]
    before, changes = snapshot(db), db.conn.total_changes
    again = import_file(db, "messages", path, now=NOW)
    assert (again.inserted, again.unchanged) == (0, 4)
    assert snapshot(db) == before and db.conn.total_changes == changes


@pytest.mark.parametrize(
    ("row", "where"),
    [
        (["A1", "admin", "2026-03-01", "hi"], "column sender: must be seller or buyer ('admin')"),
        (["A1", "buyer", "tomorrow", "hi"], "column sent_at: not an ISO 8601"),
        (["A1", "buyer", "2026-03-01", ""], "column text: required value is missing"),
        (["", "buyer", "2026-03-01", "hi"], "column order_id: required value is missing"),
    ],
)
def test_message_errors(db, tmp_path, row, where):
    path = write_csv(tmp_path / "m.csv", MESSAGE_HEADER, [row])
    with pytest.raises(BadInput) as info:
        import_file(db, "messages", path, now=NOW)
    assert info.value.problems[0] == f"{path}:2: {where}" or info.value.problems[0].startswith(
        f"{path}:2: {where}"
    )
    assert db.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_cli_events_and_messages(run_cli, tmp_path):
    events = events_file(tmp_path, [[NUMBER, "2026-03-01", "", "Delivered", "", "", "", ""]])
    result = run_cli("import", "events", events)
    assert result.exit_code == 0 and "events: 1 inserted" in result.output
    messages = write_csv(tmp_path / "m.csv", MESSAGE_HEADER, [["A1", "someone", "2026-03-01", "hi"]])
    bad = run_cli("import", "messages", messages)
    assert bad.exit_code == 2
    assert f"tracker: error: {messages}:2: column sender: must be seller or buyer ('someone')" in bad.output
