"""`tracker.detection.scoring._record`, the write of `scores`: the rows, the meta, the score index and the connection's
cache size after full and incremental runs, and an interrupted write (an exception, or kill -9) that leaves the
previous scores exactly as they were."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from model_fixtures import score_index, stored_scores

from tracker.cases.picking import qualifying_sql
from tracker.db import get_meta, open_db
from tracker.detection import scoring
from tracker.migrations import SCORES_INDEXED_FROM

FIRST = datetime(2026, 11, 1, tzinfo=UTC)
SECOND = datetime(2026, 11, 2, 12, 30, tzinfo=UTC)
INDEX_SQL = "CREATE INDEX idx_scores_high ON scores(score) WHERE score >= 0.05"
REASON = '[{"feature": "flag:early_delivered", "text": "delivered 2 days after shipping", "weight": 0.41}]'


def frame(rows: list[tuple[str, float, str, str]], *, text: str = "str") -> pd.DataFrame:
    """A frame as score_orders hands it over: order ids as objects, codes and reasons as pandas text."""
    ids, scores, codes, reasons = zip(*rows, strict=True) if rows else ((), (), (), ())
    index = np.arange(len(rows)) * 3 + 1  # a filtered frame's index: not 0..n-1
    return pd.DataFrame({
        "order_id": pd.Series(list(ids), index=index, dtype=object),
        "score": np.array(scores, dtype=float),
        "codes": pd.Series(list(codes), index=index, dtype=text),
        "reasons": pd.Series(list(reasons), index=index, dtype=text),
    }, index=index)


ROWS = [
    ("O3", 0.123456789, "", "[]"),
    ("O1", 0.9, "early_delivered", REASON),
    ("O2", 3.04e-07, "", "[]"),
    ("O10", 1.0, "reused_number,early_delivered", "[]"),
    ("O0", 0.55555555, "", REASON),
]


def test_full_write_holds_every_row_rounded_with_model_and_time(db):
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    at = "2026-11-01T00:00:00Z"
    assert stored_scores(db) == [
        ("O0", 0.5555556, "", REASON, "clf-a", at),
        ("O1", 0.9, "early_delivered", REASON, "clf-a", at),
        ("O10", 1.0, "reused_number,early_delivered", "[]", "clf-a", at),
        ("O2", 3e-07, "", "[]", "clf-a", at),
        ("O3", 0.1234568, "", "[]", "clf-a", at),
    ]
    assert get_meta(db, scoring.META_MODEL) == "clf-a"
    assert get_meta(db, scoring.META_AS_OF) == at


def test_full_rewrite_drops_scores_not_in_the_frame_and_untracked_orders(db):
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    scoring._record(db, "clf-b", SECOND, frame([("O1", 0.25, "", "[]"), ("O7", 0.5, "x", "[]")]), True,
                    untracked=["O3"])
    at = "2026-11-02T12:30:00Z"
    assert stored_scores(db) == [("O1", 0.25, "", "[]", "clf-b", at), ("O7", 0.5, "x", "[]", "clf-b", at)]
    assert get_meta(db, scoring.META_MODEL) == "clf-b"
    assert get_meta(db, scoring.META_AS_OF) == at


def test_full_run_with_no_rows_empties_scores_and_keeps_the_index(db):
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    scoring._record(db, "clf-b", SECOND, pd.DataFrame(), True)
    assert stored_scores(db) == []
    assert score_index(db) == INDEX_SQL
    assert get_meta(db, scoring.META_MODEL) == "clf-b"


def test_incremental_write_replaces_its_rows_keeps_the_others_and_the_model_meta(db):
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    scoring._record(db, "clf-b", SECOND, frame([("O2", 0.75, "early_delivered", REASON), ("O9", 0.0, "", "[]")]),
                    False, untracked=["O10", "O-unknown"])
    first, second = "2026-11-01T00:00:00Z", "2026-11-02T12:30:00Z"
    assert stored_scores(db) == [
        ("O0", 0.5555556, "", REASON, "clf-a", first),
        ("O1", 0.9, "early_delivered", REASON, "clf-a", first),
        ("O2", 0.75, "early_delivered", REASON, "clf-b", second),
        ("O3", 0.1234568, "", "[]", "clf-a", first),
        ("O9", 0.0, "", "[]", "clf-b", second),
    ]
    assert get_meta(db, scoring.META_MODEL) == "clf-a"  # an incremental run does not claim the model
    assert get_meta(db, scoring.META_AS_OF) == second


def test_an_incremental_write_updates_a_scored_orders_row_in_place(db):
    """A rescored order keeps its row (its rowid): an update in place, not a row deleted and made anew at the end
    of the table, which changed the primary key's index too; every column is the new one, the index too."""
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    before = dict(db.conn.execute("SELECT order_id, rowid FROM scores"))
    scoring._record(db, "clf-b", SECOND, frame([("O2", 0.75, "early_delivered", REASON), ("O9", 0.0, "", "[]")]),
                    False)
    after = dict(db.conn.execute("SELECT order_id, rowid FROM scores"))
    assert after["O2"] == before["O2"] and set(after) == set(before) | {"O9"}
    assert db.conn.execute("SELECT score, codes, reasons, model_id, scored_at FROM scores WHERE order_id = 'O2'"
                           ).fetchone() == (0.75, "early_delivered", REASON, "clf-b", "2026-11-02T12:30:00Z")
    assert db.conn.execute("SELECT order_id FROM scores INDEXED BY idx_scores_high WHERE score >= 0.05 "
                           "AND score = 0.75").fetchall() == [("O2",)]
    assert db.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_incremental_write_into_an_empty_store_records_the_model(db):
    scoring._record(db, "clf-a", FIRST, frame([("O1", 0.5, "", "[]")]), False)
    assert get_meta(db, scoring.META_MODEL) == "clf-a"
    assert stored_scores(db) == [("O1", 0.5, "", "[]", "clf-a", "2026-11-01T00:00:00Z")]


@pytest.mark.parametrize("text", ["str", "object"])
def test_many_rows_in_any_order_and_any_text_come_back_exactly(db, text):
    """More rows than one INSERT statement takes (and not a multiple of it), shuffled; ids of different
    lengths, sharing long prefixes, non-ASCII, one ending in a NUL character; already sorted frames too."""
    rng = np.random.default_rng(5)
    ids = [f"ORD-{i:07d}" for i in range(0, 700, 3)] + [f"8{i}" for i in range(60)] + ["é1", "Zürich-1", "x\x00"]
    rows = [(o, float(rng.random()), "early_delivered" if i % 7 == 0 else "", REASON if i % 11 == 0 else "[]")
            for i, o in enumerate(ids)]
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    at = "2026-11-01T00:00:00Z"
    expected = sorted((o, float(np.round(s, 7)), c, r, "clf-a", at) for o, s, c, r in rows)
    for given in (shuffled, sorted(rows)):
        scoring._record(db, "clf-a", FIRST, frame(given, text=text), True)
        assert stored_scores(db) == expected
    assert {type(r[0]) for r in stored_scores(db)} == {str}


def test_full_run_rebuilds_the_score_index_the_case_sync_uses(db):
    before = score_index(db)
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    assert score_index(db) == before == INDEX_SQL
    picked = qualifying_sql(1, 0.7)
    plan = " ".join(str(r) for r in db.execute(f"EXPLAIN QUERY PLAN {picked}", [0.7, "high"]))
    assert "idx_scores_high" in plan
    # the index holds the scores from 0.05 on: what the sync picks is right on either side of that bound
    for threshold in (0.7, 0.05, 0.01, 0.0):
        got = {r[0] for r in db.execute(qualifying_sql(1, threshold), [threshold, "high"])}
        assert got == {o for o, score, _, _ in ROWS if score >= threshold}
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_partial_index_bound_is_the_one_the_sync_names(db):
    assert score_index(db).endswith(f"WHERE score >= {SCORES_INDEXED_FROM!r}")


@pytest.mark.parametrize("full", [True, False])
def test_cache_size_is_restored(db, full):
    db.execute("PRAGMA cache_size = -1234")
    scoring._record(db, "clf-a", FIRST, frame(ROWS), full)
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -1234


def test_later_rows_join_the_same_write_and_their_failure_undoes_it(db):
    # the rows that wait for their reasons (worked out in a thread) go in after the others, in one transaction
    scoring._record(db, "clf-a", FIRST, frame(ROWS[:2]), True, later=lambda: frame(ROWS[2:]))
    assert [r[0] for r in stored_scores(db)] == ["O0", "O1", "O10", "O2", "O3"]
    before = stored_scores(db)

    def reasons_failed() -> pd.DataFrame:
        raise ValueError("explain failed")

    with pytest.raises(ValueError, match="explain failed"):
        scoring._record(db, "clf-b", SECOND, frame([("O1", 0.1, "", "[]")]), True, later=reasons_failed)
    assert stored_scores(db) == before
    assert get_meta(db, scoring.META_MODEL) == "clf-a"
    assert score_index(db) is not None


def test_a_failure_mid_write_leaves_the_previous_scores_meta_and_index(db):
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    before = stored_scores(db)
    db.execute("PRAGMA cache_size = -1234")
    # SQLite itself fails the write at its last row: after the delete, the dropped index and the other rows
    db.execute("CREATE TEMP TRIGGER fail_write AFTER INSERT ON main.scores WHEN NEW.order_id = 'O9' "
               "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        scoring._record(db, "clf-b", SECOND, frame([("O1", 0.1, "", "[]"), ("O9", 0.2, "", "[]")]), True)
    assert stored_scores(db) == before
    assert get_meta(db, scoring.META_MODEL) == "clf-a"
    assert get_meta(db, scoring.META_AS_OF) == "2026-11-01T00:00:00Z"
    assert score_index(db) is not None
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -1234
    assert not db.conn.in_transaction


KILLED_WRITER = """
import os, signal, sys
from datetime import datetime, timezone
import pandas as pd
from tracker.detection import scoring
from tracker.db import open_db

db = open_db(sys.argv[1])
# killed inside SQLite at the last row: the other rows are in, the index is dropped, nothing committed
db.conn.create_function("die", 0, lambda: os.kill(os.getpid(), signal.SIGKILL))
db.execute("CREATE TEMP TRIGGER die_writing AFTER INSERT ON main.scores WHEN NEW.order_id = 'N2' BEGIN SELECT die(); END")
rows = pd.DataFrame({"order_id": pd.Series(["N1", "N2"], dtype=object), "score": [0.2, 0.3],
                     "codes": ["", ""], "reasons": ["[]", "[]"]})
scoring._record(db, "clf-b", datetime(2026, 11, 2, tzinfo=timezone.utc), rows, True)
"""


def test_a_writer_killed_mid_write_leaves_the_previous_scores(db, db_path):
    scoring._record(db, "clf-a", FIRST, frame(ROWS), True)
    before = stored_scores(db)
    db.close()
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(db_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    store = open_db(db_path)
    try:
        assert stored_scores(store) == before
        assert get_meta(store, scoring.META_MODEL) == "clf-a"
        assert score_index(store) is not None
        assert store.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


@pytest.mark.parametrize("full", [True, False])
def test_an_incremental_write_journals_its_statements_in_memory(db, full, monkeypatch):
    """A hundred rows per INSERT OR REPLACE journal their pages: an incremental write keeps those journals in
    memory (a temporary file on disk, written page by page, otherwise); a full one leaves them on disk (its index
    sort may not grow in memory). The setting is the connection's own again afterwards."""
    seen = []
    insert = scoring.score_writer.insert_scores
    monkeypatch.setattr(scoring.score_writer, "insert_scores", lambda conn, *a: seen.append(
        conn.execute("PRAGMA temp_store").fetchone()[0]) or insert(conn, *a))
    scoring._record(db, "m1", FIRST, frame([("o1", 0.5, "", "[]"), ("o2", 0.25, "", "[]")]), full)
    assert seen == [0 if full else 2]  # the default (a file) : MEMORY
    assert db.conn.execute("PRAGMA temp_store").fetchone()[0] == 0  # the default again
    assert stored_scores(db)[0][:2] == ("o1", 0.5)


@pytest.mark.parametrize("full", [True, False])
def test_only_a_full_write_rebuilds_the_score_indexes_with_the_sort_cache(db, full, monkeypatch):
    """The small cache a sort is fastest with is for the full write's index rebuild alone: an incremental write,
    which builds no index, keeps its big cache (a small one would write its changed pages out early)."""
    import contextlib

    used = []

    @contextlib.contextmanager
    def watched(conn):  # noqa: ANN001, ANN202
        used.append(True)
        yield

    monkeypatch.setattr(scoring, "sort_cache", watched)
    scoring._record(db, "m1", FIRST, frame(ROWS), full)
    assert used == ([True] if full else [])
    assert len(stored_scores(db)) == len(ROWS)
    assert score_index(db)
