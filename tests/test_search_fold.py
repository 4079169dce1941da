"""A detect run after a big import folds the import's search queue in its writing child while the rules run
(`tracker.detection.search_fold`): the queue is empty once the rules stage ends, the full-text indexes hold
what the cases stage's own fold would have put there, and a failed run ends the child with the queue and the
indexes whole (folded or not, never half)."""

from __future__ import annotations

import pytest
from processes import ended
from worlds import imported_world, opened_copy

world = pytest.importorskip("tracker.world.world")

TABLES = ("orders", "messages", "cases")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return imported_world(tmp_path_factory.mktemp("fold-world"), 1200, 5)


def _pending(db, table: str) -> int:  # noqa: ANN001
    return db.conn.execute(f"SELECT count(*) FROM {table}_fts_pending").fetchone()[0]


def _indexed(db, table: str) -> int:  # noqa: ANN001
    """How many rows the index holds (the index reads its table's rows: a count of it would count the table)."""
    return db.conn.execute(f"SELECT count(*) FROM {table}_fts_docsize").fetchone()[0]


def _index(db) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Each index's every term and where it stands (row, column, offset), and what a search finds in it."""
    from tracker.migrations import SEARCH_INDEXES

    out = {}
    for table in SEARCH_INDEXES:
        db.conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_terms USING fts5vocab(main, {table}_fts, "
                        "instance)")
        out[table] = db.conn.execute(f"SELECT * FROM temp.{table}_terms ORDER BY 1, 2, 3, 4").fetchall()
        out[table + " search"] = db.conn.execute(
            f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH 'tracking OR order OR usb OR phone OR open' ORDER BY rowid"
        ).fetchall()
    return out


def test_the_writing_child_folds_the_queue_during_the_rules(imported, tmp_path, thresholds):
    from tracker.detection.flagging import run_rules
    from tracker.detection.pipeline import detect

    as_of = world._as_of(None)
    thresholds(search_fold_child_min_rows=1)
    db = opened_copy(imported, tmp_path, "child.db")
    assert _pending(db, "orders") == 1200 and _pending(db, "messages") > 100
    run_rules(db, as_of, full=True)
    # the rules stage itself writes no index: the child folded the import's queue before the flags were written
    assert _pending(db, "orders") == 0 and _pending(db, "messages") == 0
    assert _indexed(db, "orders") == 1200
    detect(db, as_of, full=True)
    assert sum(_pending(db, t) for t in TABLES) == 0
    child = _index(db)
    db.close()

    thresholds(search_fold_child_min_rows=10**9)
    plain = opened_copy(imported, tmp_path, "plain.db")
    run_rules(plain, as_of, full=True)
    assert _pending(plain, "orders") == 1200  # below the threshold: left to the cases stage
    detect(plain, as_of, full=True)
    assert sum(_pending(plain, t) for t in TABLES) == 0
    assert _index(plain) == child and child["orders search"] and child["cases"]
    plain.close()


def test_the_writing_child_ends_once_the_fold_is_done_while_the_rules_run(imported, tmp_path, thresholds,
                                                                          monkeypatch):
    """Its memory goes back as soon as its last task is done, not when the rules stage ends."""
    from tracker.detection import flagging, search_fold

    thresholds(search_fold_child_min_rows=1)
    db = opened_copy(imported, tmp_path, "ends.db")
    seen = {}
    real_start, real_collect = search_fold.start, flagging._collect

    def watched(conn, plan, writer):  # noqa: ANN001, ANN202
        seen["folding"], seen["writer"] = real_start(conn, plan, writer), writer
        return seen["folding"]

    def collect(rules, ctx):  # noqa: ANN001, ANN202 - the rules, once the fold is done
        seen["folded"] = seen["folding"].future.result()
        seen["processes"] = seen["writer"].processes()
        seen["ended"] = all(ended(child.pid) for child in seen["processes"])
        return real_collect(rules, ctx)

    monkeypatch.setattr(search_fold, "start", watched)
    monkeypatch.setattr(flagging, "_collect", collect)
    flagging.run_rules(db, world._as_of(None), full=True)
    assert seen["folded"] > 1200 and seen["processes"] and seen["ended"]
    db.close()


def test_a_failed_run_ends_the_child_and_leaves_queue_and_index_whole(imported, tmp_path, thresholds, monkeypatch):
    from tracker.detection import flagging, search_fold
    from tracker.detection.pipeline import detect

    thresholds(search_fold_child_min_rows=1)
    db = opened_copy(imported, tmp_path, "failed.db")
    processes = []
    real_start = search_fold.start

    def watched(conn, plan, writer):  # noqa: ANN001, ANN202
        folding = real_start(conn, plan, writer)
        assert folding.future is not None
        processes.extend(writer.processes())
        return folding

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("a rule failed")

    monkeypatch.setattr(search_fold, "start", watched)
    monkeypatch.setattr(flagging, "_collect", broken)
    with pytest.raises(RuntimeError, match="a rule failed"):
        flagging.run_rules(db, world._as_of(None), full=True)
    assert processes  # the writing child had started
    for child in processes:  # ended with the run, not left running
        assert ended(child.pid)
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the fold is one transaction: either every queued order is indexed, or none is and all still wait
    assert (_indexed(db, "orders"), _pending(db, "orders")) in ((0, 1200), (1200, 0))
    monkeypatch.undo()
    detect(db, world._as_of(None), full=True)  # the next run finishes the job
    assert sum(_pending(db, t) for t in TABLES) == 0
    assert _indexed(db, "orders") == 1200
    db.close()
