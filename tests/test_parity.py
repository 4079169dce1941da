"""The same flags and scores whichever way detection reads the store: the digest `python -m bench.parity`
compares between two versions of the code, here between every fast path (child readers, the child writing
the facts and the scores) and none, on one generated world; and a second run changes nothing."""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3

import pytest

from bench import parity
from tracker.db import open_db
from tracker.detection.pipeline import detect
from tracker.importers import import_file
from tracker.plan import override

world = pytest.importorskip("tracker.world.world")

FAST = {"columnar_min_events": 0, "arrow_min_orders": 0, "child_writer_min_orders": 0,
        "whole_pressure_cache_from": 0, "events_per_slice": 3000, "cases_whole_store_min": 0}


@pytest.mark.slow
def test_every_fast_path_and_none_give_the_same_flags_and_scores(tmp_path, caplog):
    world.write_world(tmp_path, 3000, seed=5)
    imported = tmp_path / "imported.db"
    db = open_db(imported)
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, tmp_path / f"{kind}.csv")
    db.close()
    stores = {}
    for name, limits in (("fast", FAST), ("slow", {"never_children": True})):
        stores[name] = tmp_path / f"{name}.db"
        shutil.copy(imported, stores[name])
        db = open_db(stores[name])
        caplog.clear()
        with override(**limits), caplog.at_level(logging.DEBUG, logger="tracker"):
            detect(db, world._as_of(None), full=True)
        db.close()
        by = "child readers" if name == "fast" else "sql"
        assert f"by='{by}'" in caplog.text and f"orders read ({by})" in caplog.text
        # the fast run's classifier frame is built from the rules' read, the slow one's read through SQL; the fast
        # run's flags are written by the writing child meanwhile, the slow one's by this process
        assert ("scoring: 3000 orders read (child readers (the rules' read))" in caplog.text) == (name == "fast")
        assert bool(re.search(r"for the writing child's \d+ rows", caplog.text)) == (name == "fast")
    # the facts a child wrote from its file are the ones this process wrote itself
    tables = [sqlite3.connect(stores[name]).execute("SELECT * FROM shipment_facts ORDER BY tracking_number").fetchall()
              for name in ("fast", "slow")]
    assert len(tables[0]) > 2900 and tables[0] == tables[1]
    # and so are the rules' deadlines and marks, and every flag, resolved ones and their times included
    for sql in ("SELECT * FROM rule_deadlines ORDER BY order_id",
                "SELECT key, value FROM meta WHERE key LIKE 'detect.%' AND key NOT IN ('detect.run', 'detect.inputs') "
                "ORDER BY key",
                "SELECT order_id, code, severity, explanation, evidence, rule_version, detected_at, resolved_at "
                "FROM flags ORDER BY order_id, code"):
        fast_rows, slow_rows = (sqlite3.connect(stores[name]).execute(sql).fetchall() for name in ("fast", "slow"))
        assert len(fast_rows) > 5 and fast_rows == slow_rows, sql
    fast, slow = parity.digest(stores["fast"]), parity.digest(stores["slow"])
    assert fast["flags"]["rows"] > 100 and fast["scores"]["rows"] > 2900
    assert fast == slow, parity.differences(stores["fast"], stores["slow"])
    # a second full run over the same store, its facts already made, answers the same
    db = open_db(stores["slow"])
    with override(**FAST):
        detect(db, world._as_of(None), full=True)
    db.close()
    assert parity.digest(stores["slow"]) == slow


def test_the_digest_sees_a_changed_score_and_says_which(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    db = open_db(a)
    with db.conn:
        db.conn.execute("INSERT INTO scores(order_id, score, codes, reasons, scored_at) "
                        "VALUES ('O1', 0.5, '', '[]', '2026-01-01T00:00:00Z')")
    db.close()
    shutil.copy(a, b)
    assert parity.digest(a) == parity.digest(b)
    db = open_db(b)
    with db.conn:
        db.conn.execute("UPDATE scores SET score = 0.5000001")
    db.close()
    assert parity.digest(a) != parity.digest(b)
    assert parity.differences(a, b)["scores_changed"] == ["1"]
