"""`tracker.detection.score_writer.ChildWrite`: a full run's write of `scores` in a spawned child process. It writes
what the in-process write writes; a killed child, a failed step or a killed scorer leave the previous scores,
meta and index exactly as they were, and no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import AS_OF, build_store, score_index, stored_scores

from tracker.db import get_meta, open_db
from tracker.detection import score_writer, scoring, training
from tracker.timeutil import from_db, to_db

REASON = '[{"feature": "flag:early_delivered", "text": "delivered 2 days after shipping", "weight": 0.41}]'
# awkward ids: out of order, sharing their first 8 bytes, non-ASCII, one a prefix of another
IDS = np.array(["ORDER-0000010", "ORDER-0000002", "Ü-7", "ORDER-00000021", "A", "ORDER-0000001", "ÿ"], dtype=object)
SCORES = np.array([0.123456789, 0.9, 3.04e-07, 1.0, 0.55555555, 0.2, 0.7])
CODES = np.array(["", "early_delivered", "", "reused_number,early_delivered", "", "", "wrong_city"], dtype=object)


def seed_scores(db) -> list[tuple]:
    with db.conn:
        db.conn.executemany("INSERT INTO scores(order_id, score, codes, reasons, model_id, scored_at) "
                            "VALUES (?, 0.5, '', '[]', 'clf-old', '2026-10-01T00:00:00Z')",
                            [("OLD-1",), ("OLD-2",), ("ORDER-0000002",)])
        for key, value in ((scoring.META_MODEL, "clf-old"), (scoring.META_AS_OF, "2026-10-01T00:00:00Z")):
            db.conn.execute(score_writer.META_SQL, [key, value])
    return stored_scores(db)


def child_write(db_path, *, later: bool = True) -> None:
    explained = SCORES >= 0.5
    writer = score_writer.ChildWrite(str(db_path))
    try:
        writer.begin(IDS, ["OLD-2"])
        writer.rows(SCORES, CODES, ~explained, "clf-new", "2026-11-02T00:00:00Z")
        if later:
            writer.later(IDS[explained], SCORES[explained], CODES[explained], [REASON] * int(explained.sum()))
        writer.commit({scoring.META_MODEL: "clf-new", scoring.META_AS_OF: "2026-11-02T00:00:00Z"})
    finally:
        writer.close()
    writer._process.join(60)  # after its commit it checkpoints on its own, then ends
    assert writer._process.exitcode == 0


def test_the_child_writes_what_the_in_process_write_writes(db, db_path, tmp_path):
    seed_scores(db)
    child_write(db_path)
    from_child = stored_scores(db)
    assert get_meta(db, scoring.META_MODEL) == "clf-new"
    assert score_index(db) is not None

    other = open_db(tmp_path / "other.db")
    try:
        seed_scores(other)
        explained = SCORES >= 0.5
        frame = pd.DataFrame({"order_id": IDS, "score": SCORES, "codes": CODES,
                                      "reasons": np.where(explained, REASON, "[]").astype(object)})
        scoring._record(other, "clf-new", from_db("2026-11-02T00:00:00Z"), frame, True, ["OLD-2"])
        assert stored_scores(other) == from_child
    finally:
        other.close()
    # the whole truth of a full run: the old rows are gone, every new one is there, rounded, reasons where due
    assert [r[0] for r in from_child] == sorted(IDS.tolist())
    by_id = {r[0]: r for r in from_child}
    assert by_id["ORDER-0000010"][1] == 0.1234568
    assert by_id["ORDER-0000002"][2:4] == ("early_delivered", REASON)
    assert by_id["ORDER-0000010"][2:4] == ("", "[]")
    assert by_id["A"][2:4] == ("", REASON)


def test_after_its_commit_the_child_copies_the_log_into_the_database_file(db, db_path, tmp_path):
    seed_scores(db)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file holds everything so far; the log is empty
    child_write(db_path)
    alone = tmp_path / "file-only.db"  # the database file without its log: what the checkpoint copied
    alone.write_bytes(db_path.read_bytes())
    copy = open_db(alone, create=False)
    try:
        assert stored_scores(copy) == stored_scores(db)
        assert get_meta(copy, scoring.META_MODEL) == "clf-new"
    finally:
        copy.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=6))
def test_ids_cross_to_the_child_exactly(values):
    ids = np.empty(len(values), dtype=object)
    ids[:] = values
    assert score_writer._unpacked(score_writer._packed(ids)).tolist() == values


def test_a_killed_child_leaves_the_previous_scores(db, db_path):
    before = seed_scores(db)
    writer = score_writer.ChildWrite(str(db_path))
    try:
        writer.begin(IDS, ["OLD-2"])
        writer.rows(SCORES, CODES, np.ones(len(IDS), dtype=bool), "clf-new", "2026-11-02T00:00:00Z")
        time.sleep(0.5)  # let it write (or not): either way nothing is committed
        writer._process.kill()
        with pytest.raises(score_writer.ScoreWriteError, match="ended before it committed"):
            writer.commit({scoring.META_MODEL: "clf-new"})
    finally:
        writer.close()
    assert stored_scores(db) == before
    assert get_meta(db, scoring.META_MODEL) == "clf-old"
    assert score_index(db) is not None
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_failed_step_is_reported_and_undoes_the_write(db, db_path):
    before = seed_scores(db)
    writer = score_writer.ChildWrite(str(db_path))
    try:
        writer.begin(IDS, [])
        writer.rows(SCORES[:3], CODES, np.ones(len(IDS), dtype=bool), "clf-new", "2026-11-02T00:00:00Z")
        with pytest.raises(score_writer.ScoreWriteError, match="writing the scores failed: IndexError"):
            writer.commit({scoring.META_MODEL: "clf-new"})
    finally:
        writer.close()
    assert stored_scores(db) == before
    assert score_index(db) is not None


def test_a_scorer_that_stops_without_committing_leaves_the_previous_scores(db, db_path):
    before = seed_scores(db)
    writer = score_writer.ChildWrite(str(db_path))
    writer.begin(IDS, ["OLD-2"])
    writer.rows(SCORES, CODES, np.ones(len(IDS), dtype=bool), "clf-new", "2026-11-02T00:00:00Z")
    writer.close()  # what score_orders does when explaining or anything else raises
    assert not writer._process.is_alive()
    assert stored_scores(db) == before
    assert score_index(db) is not None
    with db.conn:  # and the write lock is free again
        db.conn.execute("DELETE FROM scores WHERE order_id = 'OLD-1'")


KILLED_SCORER = """
import os, signal, sys, time
import numpy as np
from tracker.detection import score_writer

writer = score_writer.ChildWrite(sys.argv[1])
ids = np.array(["N1", "N2"], dtype=object)
writer.begin(ids, [])
writer.rows(np.array([0.2, 0.3]), np.array(["", ""], dtype=object), np.array([True, True]), "clf-new", "2026-11-02")
time.sleep(1.0)  # the child has taken the write lock and written its rows
print(writer._process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_scorer_leaves_the_previous_scores_and_no_process(db, db_path):
    before = seed_scores(db)
    done = subprocess.run([sys.executable, "-c", KILLED_SCORER, str(db_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.split()[0])
    for _ in range(200):  # the orphaned child sees its pipe close, rolls back and ends
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the writer process outlived the scorer")
    assert stored_scores(db) == before
    assert get_meta(db, scoring.META_MODEL) == "clf-old"
    assert score_index(db) is not None


def test_a_full_run_through_the_child_scores_as_one_in_process(db, quick_model, monkeypatch, thresholds):
    labels = build_store(db, 300)
    training.train_from_labels(db, labels[["order_id", "fraud"]], "test", AS_OF, seed=0)
    with db.conn:  # one order loses its number: a full run drops its score
        db.conn.execute("UPDATE orders SET tracking_number = NULL WHERE order_id = ?", [labels["order_id"][0]])
    scoring.score_orders(db, set(), AS_OF, full=True)
    in_process = stored_scores(db)
    assert get_meta(db, scoring.META_AS_OF) == to_db(AS_OF)
    books = db.conn.execute("SELECT * FROM seller_books ORDER BY part").fetchall()
    next_due = get_meta(db, scoring.META_NEXT_DUE)

    started = []
    real = score_writer.ChildWrite

    def counted(path: str) -> score_writer.ChildWrite:
        started.append(path)
        return real(path)

    thresholds(child_writer_min_orders=0)
    monkeypatch.setattr(score_writer, "ChildWrite", counted)
    with db.conn:  # a different score table before, so the comparison sees the child's rows
        db.conn.execute("UPDATE scores SET score = 0, reasons = '[]', model_id = 'x'")
    scoring.score_orders(db, set(), AS_OF, full=True)
    assert started == [os.fspath(db.conn.execute("PRAGMA database_list").fetchone()[2])]
    assert stored_scores(db) == in_process
    assert len(in_process) == len(labels) - 1
    assert any(r[3] != "[]" for r in in_process)  # reasons came through the later rows
    # the books, made while the child wrote the scores, are those made before the write in this process
    assert db.conn.execute("SELECT * FROM seller_books ORDER BY part").fetchall() == books and books
    assert get_meta(db, scoring.META_NEXT_DUE) == next_due


@pytest.mark.parametrize("by_child", [False, True], ids=["in-process", "child"])
def test_a_full_run_makes_the_books_on_a_thread_and_commits_no_score_when_that_fails(
        db, quick_model, monkeypatch, thresholds, by_child):
    """A full run makes the seller books on a thread of its own while it scores the rows; they are the books the
    run made before it had the thread (byte for byte, as the incremental runs' exactness tests need). When making
    them fails, the run fails with that error before anything is committed: the scores, their meta and the books
    stay as they were."""
    import threading

    from tracker.detection import seller_books

    labels = build_store(db, 300)
    training.train_from_labels(db, labels[["order_id", "fraud"]], "test", AS_OF, seed=0)
    if by_child:
        thresholds(child_writer_min_orders=0)
    made_on: list[str] = []
    of = seller_books.Books.of.__func__
    monkeypatch.setattr(seller_books.Books, "of", classmethod(
        lambda cls, *a: made_on.append(threading.current_thread().name) or of(cls, *a)))
    scoring.score_orders(db, set(), AS_OF, full=True)
    assert made_on == ["books_0"]
    books = db.conn.execute("SELECT * FROM seller_books ORDER BY part").fetchall()
    # the books as the run made them before: from the same entries, in this thread
    monkeypatch.setattr(scoring, "ThreadPoolExecutor", _InThisThread)
    with db.conn:
        db.conn.execute("UPDATE scores SET score = 0")
    scoring.score_orders(db, set(), AS_OF, full=True)
    assert made_on == ["books_0", "MainThread"]
    assert db.conn.execute("SELECT * FROM seller_books ORDER BY part").fetchall() == books and books
    before = (stored_scores(db), db.conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall(), books)
    monkeypatch.undo()
    if by_child:
        thresholds(child_writer_min_orders=0)

    def fails(cls, *a):  # noqa: ANN001, ANN202
        raise MemoryError("no room for the books")

    monkeypatch.setattr(seller_books.Books, "of", classmethod(fails))
    with pytest.raises(MemoryError, match="no room for the books"):
        scoring.score_orders(db, set(), AS_OF + pd.Timedelta(days=1), full=True)
    assert (stored_scores(db), db.conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall(),
            db.conn.execute("SELECT * FROM seller_books ORDER BY part").fetchall()) == before


class _InThisThread:
    """A stand-in for `ThreadPoolExecutor` that runs what is submitted at once, in the calling thread."""

    def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        pass

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc):  # noqa: ANN002, ANN204
        return False

    def submit(self, fn, *args):  # noqa: ANN001, ANN201
        from concurrent.futures import Future

        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed over as the future's error, as a pool would
            done.set_exception(exc)
        return done


def test_a_full_run_with_no_tracked_order_empties_scores_through_the_child(db, db_path):
    seed_scores(db)
    none = np.zeros(0, dtype=object)
    writer = score_writer.ChildWrite(str(db_path))
    try:
        writer.begin(none, ["OLD-1"])
        writer.rows(np.zeros(0), none, np.zeros(0, dtype=bool), "clf-new", "2026-11-02T00:00:00Z")
        writer.later(none, np.zeros(0), none, [])
        writer.commit({scoring.META_MODEL: "clf-new", scoring.META_AS_OF: "2026-11-02T00:00:00Z"})
    finally:
        writer.close()
    assert stored_scores(db) == []
    assert get_meta(db, scoring.META_MODEL) == "clf-new"
    assert score_index(db) is not None
