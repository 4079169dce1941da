"""A whole-store run hands its flags' transaction to the writing child while the scoring stage builds its frame
(`flagging.FlagWrite`): the scores wait for it, and a write that fails fails the run before any score is written,
leaving the store as it was; the run after it starts over."""

from __future__ import annotations

import logging
import shutil
import sqlite3

import pytest
from worlds import imported_store

from tracker.db import open_db
from tracker.detection.pipeline import detect
from tracker.plan import override

world = pytest.importorskip("tracker.world.world")
pytest.importorskip("adbc_driver_sqlite")

FAST = {"columnar_min_events": 0, "arrow_min_orders": 0, "child_writer_min_orders": 0,
        "whole_pressure_cache_from": 0, "events_per_slice": 2000}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("flag-writes")
    world.write_world(folder, 800, seed=11)
    return imported_store(folder / "imported.db", folder)


def _counts(path) -> dict[str, int]:  # noqa: ANN001
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("flags", "rule_deadlines", "scores")} | {
            "marks": conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'detect.%'").fetchone()[0]}
    finally:
        conn.close()


def test_a_failed_flags_write_in_the_child_fails_the_run_before_any_score(imported, tmp_path, caplog):
    path = tmp_path / "store.db"
    shutil.copy(imported, path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TRIGGER refuse_flags BEFORE INSERT ON flags BEGIN "
                     "SELECT RAISE(ABORT, 'flags refused for the test'); END")
    conn.close()
    before = _counts(path)
    db = open_db(path)
    try:
        with override(**FAST), caplog.at_level(logging.DEBUG, logger="tracker"), \
                pytest.raises(Exception, match="flags refused for the test"):
            detect(db, world._as_of(None), full=True)
    finally:
        db.close()
    # the rules did run (and handed their flags to the child), but nothing of theirs or of the scoring's is stored
    assert "findings in" in caplog.text and "for the writing child's" not in caplog.text
    assert _counts(path) == before == {"flags": 0, "rule_deadlines": 0, "scores": 0, "marks": 0}

    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER refuse_flags")
    conn.close()
    db = open_db(path)
    try:
        with override(**FAST), caplog.at_level(logging.DEBUG, logger="tracker"):
            summary = detect(db, world._as_of(None), full=True)
    finally:
        db.close()
    after = _counts(path)
    assert "for the writing child's" in caplog.text
    assert after["flags"] == summary.flags_raised > 0 and after["scores"] == summary.scored > 0
    assert after["rule_deadlines"] > 0 and after["marks"] >= 5
