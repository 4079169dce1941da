"""The importers accept everything the world generator writes, and a second import changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_import_support import snapshot

from tracker.importers import import_file

world = pytest.importorskip("tracker.world")

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_generated_world_imports_cleanly_and_idempotently(db, tmp_path):
    files = world.generate(300, seed=3).write(tmp_path)
    results = {kind: import_file(db, kind, files[kind], now=NOW) for kind in ("orders", "events", "messages")}
    assert all(r.rejected == 0 for r in results.values())
    assert results["orders"].inserted == 300
    assert results["events"].inserted > 300
    # every number on an order or an event is known to the poller
    assert db.conn.execute(
        "SELECT count(*) FROM (SELECT tracking_number FROM orders WHERE tracking_number IS NOT NULL "
        "UNION SELECT tracking_number FROM tracking_events) WHERE tracking_number NOT IN (SELECT tracking_number FROM shipments)"
    ).fetchone() == (0,)
    # statuses the world wrote survive; those it left to us are derived, never left empty
    assert db.conn.execute(
        "SELECT count(*) FROM tracking_events WHERE status IS NULL OR status = ''"
    ).fetchone() == (0,)
    before, changes = snapshot(db), db.conn.total_changes
    for kind in ("orders", "events", "messages"):
        again = import_file(db, kind, files[kind], now=NOW)
        assert again.inserted == again.updated == 0
    assert snapshot(db) == before and db.conn.total_changes == changes


def test_statuses_derived_from_the_worlds_carrier_texts_match_its_own(db, tmp_path):
    from test_import_support import write_csv

    events = world.generate(300, seed=4).events
    header = list(world.EVENT_COLUMNS)
    rows = [[("" if c == "status" else e[c]) for c in header] for e in events]
    import_file(db, "events", write_csv(tmp_path / "events.csv", header, rows), now=NOW)
    derived = dict(
        db.conn.execute("SELECT tracking_number || occurred_at || description, status FROM tracking_events")
    )
    wrong = [
        (e["description"], e["status"])
        for e in events
        if derived[e["tracking_number"] + e["occurred_at"] + e["description"]] != e["status"]
    ]
    assert wrong == []


def test_every_carrier_text_of_the_world_maps_to_its_stage_status():
    import tomllib

    from tracker.config import data_path
    from tracker.statuses import status_from_text

    path = data_path("world", "stages.toml")
    if not path.exists():
        pytest.skip("no world stages file")
    stages = tomllib.loads(path.read_text())
    wrong = [
        (carrier, text, stage["status"], status_from_text(text, carrier))
        for stage in [*stages.get("stage", []), *stages.get("extra", {}).values()]
        for carrier, texts in stage.get("text", {}).items()
        for text in texts
        if status_from_text(text, carrier) != stage["status"]
    ]
    assert wrong == []
