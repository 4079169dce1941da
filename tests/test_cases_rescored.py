"""A case sync works out an order detection only rescored just when its score, flags or reason moved
(`tracker.cases.picking`): it leaves the same cases, events and deadlines as working every order out in full, on a
generated world after a 1% change with a person's edits in between; and it falls back to the full work whenever its
mark cannot vouch for the stored cases (other settings, an earlier as_of, a detect run whose cases were not synced)."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from test_cases_support import add_flag, add_order, add_score, at, case_of
from worlds import imported_world

from tracker.cases import picking, set_status, sync
from tracker.cases.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AS_OF = at("2026-03-20T12:00:00Z")


def _case_tables(path: Path) -> dict[str, list]:
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
                for table, key in (("cases", "id"), ("case_events", "id"), ("case_deadlines", "case_id, name"))}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def detected_world(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tracker.db import open_db
    from tracker.detection.pipeline import detect
    from tracker.plan import override
    from tracker.world import world

    folder = tmp_path_factory.mktemp("rescored")
    path = imported_world(folder, 4000, 31)
    db = open_db(path)
    try:
        as_of = world._as_of(None)
        with override(cases_whole_store_min=0):  # the path of many orders, as at a million
            detect(db, as_of, full=True)
        assert picking.read_mark(db.conn), "a full run leaves the mark"
    finally:
        db.close()
    return folder, path, as_of


def test_a_rescored_order_is_worked_out_only_when_its_case_would_change(detected_world, monkeypatch, thresholds):
    from bench.changes import write_changes
    from tracker.cases.timeline import update_case
    from tracker.db import open_db
    from tracker.detection.pipeline import detect
    from tracker.importers import import_file

    folder, base, as_of = detected_world
    thresholds(cases_whole_store_min=0)
    changed = folder / "changed.db"
    shutil.copyfile(base, changed)
    write_changes(changed, folder / "changes", as_of, share=0.01, seed=7)
    db = open_db(changed)
    try:
        for kind in ("events", "orders", "messages"):
            import_file(db, kind, folder / "changes" / f"{kind}.csv")
        first, second = (r[0] for r in db.conn.execute("SELECT id FROM cases ORDER BY id LIMIT 2"))
        # a person's work between the runs: a dismissal and a dispute
        set_status(db, first, "dismissed", actor="alice", note="consolidated parcel")
        update_case(db, second, {"dispute_opened_at": "2026-10-20T08:00:00Z"}, actor="alice", as_of=as_of)
        assert picking.read_mark(db.conn), "a person's edits keep the mark"
        with db.conn:  # and scores that moved since (a 1% change at 4,000 orders moves few): those cases must follow
            db.conn.execute("UPDATE cases SET score = score * 0.99 WHERE id % 3 = 0")
    finally:
        db.close()
    twin = folder / "twin.db"
    shutil.copyfile(changed, twin)
    with sqlite3.connect(twin) as conn:  # the twin cannot vouch for its cases: every order worked out in full
        picking.write_mark(conn, None)

    checked: list[tuple[int, int]] = []
    real = sync._moved

    def spy(conn, order_ids, settings):  # noqa: ANN001, ANN202
        moved = real(conn, order_ids, settings)
        checked.append((len(order_ids), len(moved)))
        return moved

    monkeypatch.setattr(sync, "_moved", spy)
    summaries = {}
    for path in (changed, twin):
        db = open_db(path)
        try:
            summaries[path] = detect(db, as_of)
        finally:
            db.close()
    assert len(checked) == 2 and checked[1] == (0, 0), checked  # the twin checked nothing: it did it all
    assert checked[0][0] > checked[0][1] > 0, checked  # some rescored cases moved, most did not
    assert summaries[changed].cases_updated == summaries[twin].cases_updated > 0
    assert summaries[changed].cases_opened == summaries[twin].cases_opened
    assert _case_tables(changed) == _case_tables(twin)
    db = open_db(changed)
    try:
        assert case_of(db, db.conn.execute("SELECT order_id FROM cases WHERE id = ?", [first]).fetchone()[0])[
            "status"] == "dismissed"
        assert db.conn.execute("SELECT dispute_opened_at FROM cases WHERE id = ?", [second]).fetchone()[0] == \
            "2026-10-20T08:00:00Z"
    finally:
        db.close()


def _synced_case(db, thresholds, codes: str = "delivered_not_received"):  # noqa: ANN001, ANN202
    """One order with a high score and no flag, its case opened by a sync of run 'r1' (the mark written)."""
    thresholds(cases_whole_store_min=0)
    add_order(db, "o1")
    add_score(db, "o1", 0.9, codes=codes)
    assert sync.sync_cases(db, {"o1"}, AS_OF, rescored={"o1"}, run="r1") == (1, 0)
    assert picking.read_mark(db.conn)["run"] == "r1"
    return case_of(db, "o1")


def test_a_rescored_case_whose_score_codes_change_its_reason_is_redone(db, thresholds):
    case = _synced_case(db, thresholds)
    assert case["reason"] == "non_delivery"
    add_score(db, "o1", 0.9, codes="early_confirmation")  # the same score, other codes
    assert sync.sync_cases(db, set(), AS_OF, rescored={"o1"}, run="r2", previous_run="r1") == (0, 1)
    assert case_of(db, "o1")["reason"] == "induced_confirmation"
    # unchanged: nothing to do, and the mark moves on to this run
    assert sync.sync_cases(db, set(), AS_OF, rescored={"o1"}, run="r3", previous_run="r2") == (0, 0)
    assert picking.read_mark(db.conn)["run"] == "r3"


def test_a_new_flag_on_a_rescored_order_without_a_case_opens_one(db, thresholds):
    _synced_case(db, thresholds)
    add_order(db, "o2")
    add_flag(db, "o2", "wrong_destination", "high")
    assert sync.sync_cases(db, set(), AS_OF, rescored={"o2"}, run="r2", previous_run="r1") == (1, 0)
    assert case_of(db, "o2")["reason"] == "false_shipment"


@pytest.mark.parametrize("breach", ["previous run", "settings", "earlier as_of", "direct call"])
def test_without_a_mark_that_vouches_for_the_cases_rescored_orders_are_worked_out_in_full(db, thresholds,
                                                                                          breach):
    _synced_case(db, thresholds)
    previous, as_of = "r1", AS_OF
    if breach == "previous run":
        previous = "r0"  # the run before this one did not sync its cases
    elif breach == "settings":
        picking.write_mark(db.conn, {**picking.read_mark(db.conn), "settings": "other"})
    elif breach == "earlier as_of":
        as_of = at("2026-03-19T00:00:00Z")
    elif breach == "direct call":
        previous = None
    mark = picking.read_mark(db.conn)
    assert not picking.mark_holds(mark, picking.settings_digest(load_settings()), sync.to_db(as_of), previous)
    checked = []
    real = sync._moved
    sync._moved = lambda conn, ids, settings: checked.append(ids) or real(conn, ids, settings)
    try:
        sync.sync_cases(db, set(), as_of, rescored={"o1"}, run="r2", previous_run=previous)
    finally:
        sync._moved = real
    assert checked == [[]]  # worked out in full, not checked
    # a sync that works out every case leaves a mark again
    assert picking.read_mark(db.conn)["run"] == "r2"


def test_a_person_editing_a_case_keeps_the_mark_true(db, thresholds):
    from tracker.cases.timeline import update_case

    case = _synced_case(db, thresholds)
    update_case(db, case["id"], {"dispute_opened_at": "2026-03-21T00:00:00Z"}, actor="bob",
                as_of=at("2026-03-25T00:00:00Z"))
    assert picking.read_mark(db.conn)["as_of"] == "2026-03-25T00:00:00Z"  # a sync before it may not trust it
    assert not picking.mark_holds(picking.read_mark(db.conn), picking.settings_digest(load_settings()),
                                  "2026-03-24T00:00:00Z", "r1")
    with db.conn:
        picking.write_mark(db.conn, {**picking.read_mark(db.conn), "settings": "other"})
    update_case(db, case["id"], {"dispute_escalated_at": "2026-03-26T00:00:00Z"}, actor="bob",
                as_of=at("2026-03-26T00:00:00Z"))
    assert picking.read_mark(db.conn) == {}  # worked out under other settings than the mark's: no longer vouched
