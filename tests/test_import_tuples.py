"""Scans go from the reader to the store as tuples, their key built in the same pass; their numbers' shipments
are registered by one statement per import."""

from __future__ import annotations

import csv

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.events import EVENT_COLUMNS, event_key
from tracker.importers import import_file
from tracker.importers.events import Events

HEADER = ("tracking_number", "occurred_at", "status", "description", "location", "city", "postcode", "country",
          "carrier", "raw_code")
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.tuples(st.sampled_from(["RR123456785CN", "LP00123456789012", "ab 12-34"]),
                 st.sampled_from(["2026-05-01T10:00:00Z", "2026-05-01 10:00", "2026-05-01"]),
                 st.sampled_from(["", "in_transit", "DELIVERED"]), text, text, text, text,
                 st.sampled_from(["", "ru", "CN"]), st.sampled_from(["", "cainiao", "China Post"]), text))
def test_the_key_built_in_the_row_pass_is_the_key_of_the_stored_scan(cells) -> None:
    kind = Events()
    problems: list = []
    row = kind.clean(2, tuple(cells), None, problems)
    if problems:
        return
    stored = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert stored["event_key"] == event_key(stored)  # what the poller computes for the same scan


def _write(path, rows) -> None:  # noqa: ANN001
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        out.writerows(rows)


def test_shipments_registered_once_per_import_with_the_earliest_named_carrier(db, tmp_path) -> None:
    first = tmp_path / "first.csv"
    _write(first, [
        ("RR123456785CN", "2026-05-03T10:00:00Z", "in_transit", "", "", "", "", "", "chinapost", ""),
        ("RR123456785CN", "2026-05-01T10:00:00Z", "info_received", "", "", "", "", "", "", ""),
        ("RR123456785CN", "2026-05-02T10:00:00Z", "in_transit", "", "", "", "", "", "cainiao", ""),
        ("LP00123456789012", "2026-05-02T10:00:00Z", "in_transit", "", "", "", "", "", "", ""),
    ])
    import_file(db, "events", first)
    shipments = {r[0]: r[1:] for r in db.conn.execute(
        "SELECT tracking_number, carrier, state, last_event_at FROM shipments")}
    assert shipments["RR123456785CN"] == ("cainiao", "pending", "2026-05-03T10:00:00Z")  # earliest scan naming one
    assert shipments["LP00123456789012"][0] == "cainiao"  # none named: the number's format's carrier
    changes = db.conn.total_changes
    import_file(db, "events", first)
    assert db.conn.total_changes == changes  # a re-import writes nothing

    later = tmp_path / "later.csv"
    _write(later, [("RR123456785CN", "2026-05-09T10:00:00Z", "delivered", "", "", "", "", "", "chinapost", ""),
                   ("RR123456785CN", "2026-04-01T10:00:00Z", "info_received", "", "", "", "", "", "", "")])
    db.conn.execute("UPDATE shipments SET state = 'in_transit' WHERE tracking_number = 'RR123456785CN'")
    db.conn.commit()
    import_file(db, "events", later)
    assert db.conn.execute("SELECT carrier, state, last_event_at FROM shipments WHERE tracking_number = "
                           "'RR123456785CN'").fetchone() == ("cainiao", "in_transit", "2026-05-09T10:00:00Z")


def test_a_small_import_into_a_big_store_registers_only_its_numbers(db, tmp_path) -> None:
    """A small import takes its own rows by id (not the whole number index): the same outcome either way."""
    big = tmp_path / "big.csv"
    _write(big, [(f"LP{i:014d}", "2026-05-01T10:00:00Z", "in_transit", "", "", "", "", "", "cainiao", "")
                 for i in range(200)])
    import_file(db, "events", big)
    small = tmp_path / "small.csv"
    _write(small, [("LP00000000000003", "2026-05-05T10:00:00Z", "delivered", "", "", "", "", "", "", ""),
                   ("RR123456785CN", "2026-05-05T10:00:00Z", "in_transit", "", "", "", "", "", "", "")])
    import_file(db, "events", small)
    rows = dict(db.conn.execute("SELECT tracking_number, last_event_at FROM shipments"))
    assert len(rows) == 201
    assert rows["LP00000000000003"] == "2026-05-05T10:00:00Z"
    assert rows["LP00000000000004"] == "2026-05-01T10:00:00Z"


def _indexes(db, table: str) -> set[str]:  # noqa: ANN001
    return {r[0] for r in db.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                          "AND sql IS NOT NULL", [table])}


def test_a_first_import_builds_the_indexes_once_and_a_refused_one_leaves_them(db, tmp_path) -> None:
    import pytest

    from tracker.errors import BadInput

    before = _indexes(db, "tracking_events")
    assert before  # the number index
    bad = tmp_path / "bad.csv"
    _write(bad, [("RR123456785CN", "2026-05-03T10:00:00Z", "in_transit", "", "", "", "", "", "", ""),
                 ("RR123456785CN", "not a time", "in_transit", "", "", "", "", "", "", "")])
    with pytest.raises(BadInput):
        import_file(db, "events", bad)
    assert _indexes(db, "tracking_events") == before
    assert db.conn.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == 0
    good = tmp_path / "good.csv"
    _write(good, [("RR123456785CN", f"2026-05-0{d}T10:00:00Z", "in_transit", "", "", "", "", "", "", "")
                  for d in range(1, 6)])
    import_file(db, "events", good)
    assert _indexes(db, "tracking_events") == before
    plan = db.conn.execute("EXPLAIN QUERY PLAN SELECT * FROM tracking_events WHERE tracking_number = 'x' "
                           "ORDER BY occurred_at").fetchall()
    assert "idx_events_tracking" in repr(plan)
