"""`tracker detect` is incremental end to end and exact: after a 1% change (new scans on 1% of the numbers and 1%
new orders) on a generated world with its reuse clusters, sellers and messages, the incremental run leaves the same
flags and the same scores (score, codes, reasons, bit for bit) as a full rescore of the same store, while it
rescores only a part of the orders; so does a run days later (ages crossing the model's thresholds: the same
scores, and the same flags, though an active time-based flag's day count is the one of its last examination), and
a run after the books were lost."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from worlds import imported_world

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.changes import write_changes  # noqa: E402
from tracker.db import open_db  # noqa: E402
from tracker.detection.pipeline import detect  # noqa: E402
from tracker.importers import import_file  # noqa: E402


def _tables(path: Path) -> dict[str, dict]:
    conn = sqlite3.connect(path)
    try:
        return {
            "scores": {r[0]: r[1:] for r in conn.execute("SELECT order_id, score, codes, reasons FROM scores")},
            "flags": {(r[0], r[1]): r[2:] for r in conn.execute(
                "SELECT order_id, code, severity, explanation, evidence, resolved_at IS NULL FROM flags")},
        }
    finally:
        conn.close()


def _same(incremental: Path, full: Path, *, flag_texts: bool = True) -> None:
    got, want = _tables(incremental), _tables(full)
    if not flag_texts:  # a time-based flag's text counts days; it is refreshed when the order is next examined
        for tables in (got, want):
            tables["flags"] = {k: (v[0], v[3]) for k, v in tables["flags"].items()}
    for table in ("flags", "scores"):
        differ = [k for k in set(got[table]) | set(want[table]) if got[table].get(k) != want[table].get(k)]
        assert not differ, f"{table}: {len(differ)} rows differ, e.g. {[(k, got[table].get(k), want[table].get(k)) for k in differ[:2]]}"


def _run(path: Path, as_of, *, full: bool = False):  # noqa: ANN001, ANN202
    db = open_db(path)
    try:
        return detect(db, as_of, full=full)
    finally:
        db.close()


@pytest.fixture(scope="module")
def scored_world(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tracker.world import world

    folder = tmp_path_factory.mktemp("rescoring")
    path = imported_world(folder, 4000, 31)
    as_of = world._as_of(None)
    _run(path, as_of, full=True)
    return folder, path, as_of


def _changed(scored_world, name: str) -> tuple[Path, Path]:  # noqa: ANN001
    """A copy of the scored store with a 1% change imported, and a second copy of it."""
    folder, base, as_of = scored_world
    path = folder / f"{name}.db"
    shutil.copyfile(base, path)
    counts = write_changes(path, folder / name, as_of, share=0.01, seed=7)
    assert counts["events"] >= 30 and counts["orders"] >= 30 and counts["messages"] >= 30
    db = open_db(path)
    for kind in ("events", "orders", "messages"):
        import_file(db, kind, folder / name / f"{kind}.csv")
    db.close()
    twin = folder / f"{name}-full.db"
    shutil.copyfile(path, twin)
    return path, twin


def test_a_one_percent_change_is_rescored_exactly_and_only_in_part(scored_world, monkeypatch) -> None:  # noqa: ANN001
    from tracker.detection import quick_scores

    found = []
    rescore = quick_scores.rescore
    monkeypatch.setattr(quick_scores, "rescore", lambda *a, **k: found.append(rescore(*a, **k)) or found[-1])
    path, twin = _changed(scored_world, "one-percent")
    as_of = scored_world[2]
    summary = _run(path, as_of)
    # orders whose seller's or buyer's statistics moved were worked out from their bins, some with reasons, and only
    # those whose stored row changed were written
    (quick,) = found
    assert quick is not None and quick.worked_out > len(quick.written) > 0
    assert (quick.written["reasons"] != "[]").any()
    _run(twin, as_of, full=True)
    _same(path, twin)
    orders = sqlite3.connect(path).execute("SELECT count(*) FROM orders").fetchone()[0]
    assert 0 < summary.examined < orders / 5
    assert 0 < summary.scored < orders / 2  # part of the store, not every seller's whole book


def test_days_later_the_ages_that_crossed_a_threshold_are_rescored_exactly(scored_world) -> None:  # noqa: ANN001
    path, twin = _changed(scored_world, "days-later")
    as_of = scored_world[2]
    _run(path, as_of)
    later = as_of + timedelta(days=3, hours=5)
    summary = _run(path, later)
    _run(twin, later, full=True)
    _same(path, twin, flag_texts=False)
    orders = sqlite3.connect(path).execute("SELECT count(*) FROM orders").fetchone()[0]
    assert 0 < summary.scored < orders


def test_nothing_new_is_told_from_the_marks_alone(scored_world) -> None:  # noqa: ANN001
    path, _ = _changed(scored_world, "nothing-new")
    as_of = scored_world[2]
    _run(path, as_of)
    before = _tables(path)
    summary = _run(path, as_of)
    assert summary.seconds.keys() == {"check"} and summary.scored == 0
    assert _tables(path) == before


def _rescored_whole_after(scored_world, name: str, *statements: str):  # noqa: ANN001, ANN202
    """A changed copy of the scored world, these statements run on it: its next run rescores every order with a
    number, and gives a full rescore's flags and scores. Returns (path, twin, as_of, orders with a number)."""
    path, twin = _changed(scored_world, name)
    as_of = scored_world[2]
    conn = sqlite3.connect(path)
    with conn:
        for sql in statements:
            conn.execute(sql)
    orders = conn.execute("SELECT count(*) FROM orders WHERE coalesce(tracking_number, '') <> ''").fetchone()[0]
    conn.close()
    assert _run(path, as_of).scored == orders
    _run(twin, as_of, full=True)
    _same(path, twin)
    return path, twin, as_of, orders


def test_books_that_do_not_match_the_scores_mean_a_full_rescore(scored_world) -> None:  # noqa: ANN001
    """A run killed between writing the scores and the books leaves books naming another run."""
    _rescored_whole_after(scored_world, "lost-books",
                          "UPDATE meta SET value = 'another run' WHERE key = 'seller_books.run'")


def test_a_store_with_books_of_the_former_layout_is_rescored_whole_then_incrementally(scored_world) -> None:  # noqa: ANN001
    """A store scored before the books were kept in parts (one row per seller, layout 2): its next run rescores
    every order (the migration makes the table anew), and the run after that is incremental again; both exact."""
    path, twin, as_of, orders = _rescored_whole_after(
        scored_world, "former-layout",
        "DROP TABLE seller_books",
        "CREATE TABLE seller_books (seller_id TEXT PRIMARY KEY, orders BLOB NOT NULL, median REAL, "
        "median_relative REAL, bins BLOB)",
        "INSERT INTO seller_books VALUES ('S1', x'00', 1.0, 0.5, NULL)",
        "UPDATE meta SET value = '2' WHERE key = 'seller_books.format'",
        "DELETE FROM _migrations WHERE name = '014_seller_books_in_parts'")
    later = as_of + timedelta(days=2)
    summary = _run(path, later)
    assert 0 < summary.scored < orders
    _run(twin, later, full=True)
    _same(path, twin, flag_texts=False)


def test_a_run_appends_its_changes_to_the_books(scored_world) -> None:  # noqa: ANN001
    from tracker.detection.seller_books import ENTRY

    path, _ = _changed(scored_world, "parts")
    _run(path, scored_world[2])
    conn = sqlite3.connect(path)
    parts = [len(r[0]) // ENTRY.itemsize for r in conn.execute("SELECT entries FROM seller_books ORDER BY part")]
    orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    conn.close()
    assert len(parts) == 2 and parts[0] < orders and 0 < parts[1] < orders / 2


def test_successive_changes_stay_exact_though_the_books_keep_only_the_bytes_an_order_was_read_with(
        scored_world) -> None:  # noqa: ANN001
    """An order worked out again from its bytes leaves them as they were (its seller and buyer columns are binned
    anew from the books' statistics before every use): run after run, the scores stay a full rescore's."""
    folder, base, as_of = scored_world
    path = folder / "successive.db"
    shutil.copyfile(base, path)
    for k in range(3):
        write_changes(path, folder / f"successive-{k}", as_of, share=0.01, seed=11 + k)
        db = open_db(path)
        for kind in ("events", "orders", "messages"):
            import_file(db, kind, folder / f"successive-{k}" / f"{kind}.csv")
        db.close()
        _run(path, as_of)
    twin = folder / "successive-full.db"
    shutil.copyfile(path, twin)
    _run(twin, as_of, full=True)
    _same(path, twin)


def test_due_times_are_the_same_worked_out_a_few_rows_at_a_time(scored_world, monkeypatch) -> None:  # noqa: ANN001
    """`rescoring.due_times` works the features out again `DUE_ROWS` frame rows at a time (a million rows' at once
    cost hundreds of MB): the same due times and timed features as all rows at once, and the frame left as it was."""
    import numpy as np
    import pandas as pd

    from tracker.detection import rescoring

    folder, base, as_of = scored_world
    path = folder / "due-rows.db"
    shutil.copyfile(base, path)
    real, compared = rescoring.due_times, []

    def both(transform, frame, rows, features, as_of_jd, edges):  # noqa: ANN001, ANN202
        before = frame.copy()
        monkeypatch.setattr(rescoring, "DUE_ROWS", 10**9)
        whole = real(transform, frame, rows, features, as_of_jd, edges)
        monkeypatch.setattr(rescoring, "DUE_ROWS", 37)
        parts = real(transform, frame, rows, features, as_of_jd, edges)
        np.testing.assert_array_equal(parts[0], whole[0])
        assert parts[1] == whole[1] and whole[1]
        pd.testing.assert_frame_equal(frame, before)
        compared.append(len(rows))
        return parts

    monkeypatch.setattr(rescoring, "due_times", both)
    _run(path, as_of + timedelta(days=2), full=True)
    assert compared and compared[0] > 1000


def test_the_books_and_first_frame_are_read_while_the_classifiers_libraries_may_still_be_importing(scored_world,  # noqa: ANN001
                                                                                    monkeypatch) -> None:  # noqa: ANN001
    """The seller books and the scoring's first frame need no scikit-learn: an incremental run reads them once,
    before it waits for the thread importing the classifier's libraries, and the scoring stage uses them (the same
    scores as a full rescore)."""
    from tracker.detection import preload, scoring, seller_books

    calls: list[str] = []
    load, wait, first = seller_books.Books.load, preload.wait, scoring._first_frame
    monkeypatch.setattr(seller_books.Books, "load", classmethod(
        lambda cls, *a, **k: calls.append("books") or load(*a, **k)))
    monkeypatch.setattr(preload, "wait", lambda: calls.append("wait") or wait())
    monkeypatch.setattr(scoring, "_first_frame", lambda *a, **k: calls.append("frame") or first(*a, **k))
    path, twin = _changed(scored_world, "books-early")
    as_of = scored_world[2]
    _run(path, as_of)
    assert calls.count("books") == 1 and calls.count("frame") == 1
    assert calls.index("books") < calls.index("frame") < calls.index("wait")
    monkeypatch.undo()
    _run(twin, as_of, full=True)
    _same(path, twin)


def test_an_incremental_run_reads_the_store_mapped_and_a_full_run_does_not(scored_world, monkeypatch) -> None:  # noqa: ANN001
    """An incremental run reads the store memory-mapped (`sqlite_pragmas.mapped`) until it ends, the connection's
    setting put back after; a full run maps nothing (its children read the store, and its own resident size would
    count every page it scans). The same scores as a full rescore."""
    from tracker.detection import flagging

    seen: list[int] = []
    run_rules = flagging.run_rules

    def rules(db, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(db.conn.execute("PRAGMA mmap_size").fetchone()[0])
        return run_rules(db, *a, **k)

    monkeypatch.setattr(flagging, "run_rules", rules)
    path, twin = _changed(scored_world, "mapped")
    as_of = scored_world[2]
    db = open_db(path)
    try:
        db.conn.execute("PRAGMA mmap_size = 0")
        detect(db, as_of)
        assert db.conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
    finally:
        db.close()
    _run(twin, as_of, full=True)
    assert len(seen) == 2 and seen[0] > 0 and seen[1] == 0
    _same(path, twin)


def test_a_store_in_memory_is_detected_incrementally_as_its_file_is(scored_world) -> None:  # noqa: ANN001
    """SQLite maps no file of a store in memory (`PRAGMA mmap_size` answers nothing there): the incremental run
    leaves that setting alone and gives the flags and scores a run on the store's file gives."""
    import sqlite_utils

    path, twin = _changed(scored_world, "in-memory")
    as_of = scored_world[2]
    memory = sqlite3.connect(":memory:")
    source = sqlite3.connect(twin)
    source.backup(memory)
    source.close()
    summary = detect(sqlite_utils.Database(memory), as_of)
    assert summary.examined > 0 and summary.scored > 0
    saved = sqlite3.connect(twin)
    memory.backup(saved)
    saved.close()
    _run(path, as_of)
    _same(path, twin)


def test_the_scoring_takes_the_examined_orders_as_the_rules_read_them(scored_world, monkeypatch) -> None:  # noqa: ANN001
    """An incremental run reads each examined order once: the scoring's first frame takes the rows the rules read
    (`readers.ScopeRows`) and reads only the orders whose time came; the same scores as a full rescore. Where the
    facts moved after the rules' read, the scoring reads every order of its frame again."""
    import json

    from tracker.detection import readers, scoring, shipment_facts

    read = readers.OrderRead._read
    reads: list[tuple[bool, set[str]]] = []  # (a read of the scoring's frame, the ids read)

    def recording(self, ids=None):  # noqa: ANN001, ANN202
        reads.append((self.with_side, set(json.loads(ids if ids is not None else self.ids))))
        return read(self, ids)

    monkeypatch.setattr(readers.OrderRead, "_read", recording)
    path, twin = _changed(scored_world, "read-once")
    as_of = scored_world[2]
    summary = _run(path, as_of)
    rules_reads = [ids for side, ids in reads if not side]
    assert len(rules_reads) == 1 and len(rules_reads[0]) >= summary.examined > 0
    examined = rules_reads[0]
    scoring_reads = [ids for side, ids in reads if side]
    assert not any(ids & examined for ids in scoring_reads)
    monkeypatch.undo()
    _run(twin, as_of, full=True)
    _same(path, twin)

    # the facts moved since the rules read them: the first frame reads the examined orders again
    path, _ = _changed(scored_world, "facts-moved")
    reads.clear()
    monkeypatch.setattr(readers.OrderRead, "_read", recording)
    refresh, first = shipment_facts.refresh, scoring._first_frame
    given: list[object] = []

    def first_frame(conn, books, examined, as_of, scorer, plan, known=None):  # noqa: ANN001, ANN202
        given.append(known)
        return first(conn, books, examined, as_of, scorer, plan, known)

    monkeypatch.setattr(scoring, "_first_frame", first_frame)
    monkeypatch.setattr(shipment_facts, "refresh", lambda *a, **k: refresh(*a, **k)._replace(numbers=1))
    _run(path, as_of)
    assert given == [None]
    examined = next(ids for side, ids in reads if not side)
    assert any(ids & examined for side, ids in reads if side)


def test_a_quoted_value_counts_as_moved_only_where_its_phrase_reads_differently() -> None:
    import numpy as np

    from tracker.detection.rescoring import phrase_moved

    names = ["seller_flag_rate", "seller_reuse_share", "buyer_flagged_other", "n_flags"]
    old = {"seller_flag_rate": np.array([0.312, 0.312, 0.1, np.nan, 0.5]),
           "seller_reuse_share": np.array([0.0, 0.0, 0.0, 0.0, 0.2]),
           "seller_pressure_share": np.array([0.0, 0.5, 0.0, 0.0, 0.0]),  # not one the model reads
           "buyer_flagged_other": np.array([1.0, 1.0, 1.0, 1.0, 1.0])}
    new = {"seller_flag_rate": np.array([0.314, 0.318, 0.1, 0.1, 0.5]),
           "seller_reuse_share": np.array([0.0, 0.0, 0.0, 0.0, 0.2]),
           "seller_pressure_share": np.array([0.0, 0.9, 0.0, 0.0, 0.0]),
           "buyer_flagged_other": np.array([1.0, 1.0, 2.0, 1.0, 1.0])}
    # 31% -> 31%: the same words; 31% -> 32%; another group's count; none -> 10%; a feature the model does not read
    np.testing.assert_array_equal(phrase_moved(old, new, names), [False, True, True, True, False])
    only = np.array([True, False, True, False, False])
    np.testing.assert_array_equal(phrase_moved(old, new, names, only), [False, False, True, False, False])


def test_a_store_first_detected_before_most_parcels_arrived_is_rescored_when_its_typical_transit_moves(tmp_path):
    """The first run of a store sees a few deliveries, and keeps the typical transit they give. Once the rest of
    the scans are in, a full run would take a new one (it moved by more than TYPICAL_DRIFT): the next run, though
    it rescores only what changed otherwise, scores every order again with it, the same as a full rescore."""
    from tracker.detection import readers
    from tracker.world import world

    folder = tmp_path / "world"
    world.write_world(folder, 600, seed=41)
    as_of = world._as_of(None)
    events = (folder / "events.csv").read_text().splitlines(keepends=True)
    early = [events[0]] + [row for row in events[1:] if row.split(",")[1] < "2026-09-01"]  # occurred_at
    assert 30 < len(early) < len(events) / 2
    (folder / "early.csv").write_text("".join(early))
    path = tmp_path / "store.db"
    db = open_db(path)
    import_file(db, "orders", folder / "orders.csv")
    import_file(db, "events", folder / "early.csv")
    import_file(db, "messages", folder / "messages.csv")
    db.close()
    _run(path, as_of - timedelta(days=60))
    first = readers.kept_typical_transit(sqlite3.connect(path))
    db = open_db(path)
    import_file(db, "events", folder / "events.csv")
    db.close()
    twin = tmp_path / "twin.db"
    shutil.copyfile(path, twin)
    summary = _run(path, as_of)
    _run(twin, as_of, full=True)
    now = readers.kept_typical_transit(sqlite3.connect(path))
    assert now != first and now == readers.kept_typical_transit(sqlite3.connect(twin))
    orders = sqlite3.connect(path).execute("SELECT count(*) FROM orders WHERE tracking_number != ''").fetchone()[0]
    assert summary.scored >= orders * 0.95  # every order with a number and a frame row
    _same(path, twin)


def test_an_incremental_runs_books_are_read_by_a_thread_while_its_rules_run(scored_world, monkeypatch) -> None:  # noqa: ANN001
    """An incremental run reads the seller books on a thread of its own that starts before the rules (before the
    run imports the detection modules), so the scoring stage finds them read; a full run reads none ahead. The same
    flags and scores as a full rescore."""
    import threading

    from tracker.detection import books_ahead, flagging, seller_books

    readers: list[str] = []
    events: list[str] = []
    load, run_rules, start = seller_books.Books.load, flagging.run_rules, books_ahead.LoadAhead.__init__
    monkeypatch.setattr(seller_books.Books, "load", classmethod(
        lambda cls, *a, **k: readers.append(threading.current_thread().name) or load(*a, **k)))
    monkeypatch.setattr(flagging, "run_rules", lambda *a, **k: events.append("rules") or run_rules(*a, **k))
    monkeypatch.setattr(books_ahead.LoadAhead, "__init__",
                        lambda self, *a: events.append("ahead") or start(self, *a))
    path, twin = _changed(scored_world, "books-ahead")
    as_of = scored_world[2]
    _run(path, as_of)
    assert readers == ["seller-books"] and events == ["ahead", "rules"]
    readers.clear()
    events.clear()
    _run(twin, as_of, full=True)
    assert readers == [] and events == ["rules"]
    _same(path, twin)


def test_a_run_that_turns_out_to_examine_every_order_lets_the_books_read_ahead_go(scored_world,  # noqa: ANN001
                                                                                   monkeypatch) -> None:  # noqa: ANN001
    """The books are read ahead before the rules know whether they examine only what changed; a run that then
    examines every order (here, one as of a day before the last run) lets them go before it reads any order, hands
    nothing over from that thread and scores every order, as a full run does: the same flags and scores."""
    from tracker.detection import books_ahead, readers

    events: list[str] = []
    handed: list[object] = []
    start, books, drop = books_ahead.LoadAhead.__init__, books_ahead.LoadAhead.books, books_ahead.LoadAhead.drop
    rule_frame = readers.rule_frame
    monkeypatch.setattr(books_ahead.LoadAhead, "__init__", lambda self, *a: events.append(a[1]) or start(self, *a))
    monkeypatch.setattr(books_ahead.LoadAhead, "books", lambda self, run: handed.append(run) or books(self, run))
    monkeypatch.setattr(books_ahead.LoadAhead, "drop", lambda self: events.append("dropped") or drop(self))
    monkeypatch.setattr(readers, "rule_frame", lambda *a, **k: events.append("orders read") or rule_frame(*a, **k))
    path, twin = _changed(scored_world, "earlier")
    as_of = scored_world[2] - timedelta(days=1)
    summary = _run(path, as_of)
    conn = sqlite3.connect(path)
    orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    conn.close()
    assert events == ["scores_run", "dropped", "orders read"] and handed == []
    assert summary.examined == orders
    _run(twin, as_of, full=True)
    _same(path, twin)


def test_an_incremental_run_leaves_copying_its_log_back_to_a_thread_and_a_full_run_does_not(scored_world,  # noqa: ANN001
                                                                                          monkeypatch) -> None:  # noqa: ANN001
    """An incremental run's commits copy nothing of the write-ahead log back (`checkpoints.behind`: a thread does,
    while the run goes on); a full run's child processes keep their own way. The same flags and scores as a full
    rescore."""
    from tracker import checkpoints

    seen: list[tuple[str, int]] = []
    behind = checkpoints.behind

    def recorded(conn, path):  # noqa: ANN001, ANN202
        seen.append((path, conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]))
        return behind(conn, path)

    monkeypatch.setattr(checkpoints, "behind", recorded)
    path, twin = _changed(scored_world, "checkpoints")
    as_of = scored_world[2]
    db = open_db(path)
    try:
        detect(db, as_of)
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # put back after the run
    finally:
        db.close()
    assert seen == [(str(path), 1000)]
    _run(twin, as_of, full=True)
    assert len(seen) == 1
    _same(path, twin)


def test_the_books_a_run_makes_are_copied_into_memory_a_thread_made_ahead(scored_world,  # noqa: ANN001
                                                                         monkeypatch) -> None:
    """A thread copies the seller books, with room for the orders new to them, while the run reads its first
    frame; the scoring writes its entries over those copies (a later run whose orders' time came), or merges the
    new orders into that memory (after a 1% change). The same flags and scores as a full rescore either way."""
    from tracker.detection import seller_books

    started: list[tuple[int, int]] = []
    taken: list[tuple[str, bool]] = []  # (what for: the books' own rows or a merge, whether the copies served)
    copy_ahead, room = seller_books.Books.copy_ahead, seller_books.Books._room
    monkeypatch.setattr(seller_books.Books, "copy_ahead",
                        lambda self, extra=0: started.append((len(self.entries), extra)) or copy_ahead(self, extra))

    def spied_room(self, n: int):  # noqa: ANN001, ANN202
        got = room(self, n)
        taken.append(("in place" if n == len(self.entries) else "merge", got is not None))
        return got

    monkeypatch.setattr(seller_books.Books, "_room", spied_room)
    folder, base, as_of = scored_world
    path, twin = folder / "hourly.db", folder / "hourly-full.db"
    shutil.copyfile(base, path)
    shutil.copyfile(base, twin)
    later = as_of + timedelta(days=3, hours=5)
    assert _run(path, later).scored > 0
    orders = sqlite3.connect(path).execute("SELECT count(*) FROM orders").fetchone()[0]
    assert started == [(orders, 0)] and taken == [("in place", True)]
    _run(twin, later, full=True)
    _same(path, twin, flag_texts=False)
    started.clear()
    taken.clear()
    changed, changed_twin = _changed(scored_world, "copied-new-orders")
    conn = sqlite3.connect(changed)
    new = conn.execute("SELECT count(*) FROM orders").fetchone()[0] - orders
    conn.close()
    _run(changed, as_of)
    assert new > 0 and started == [(orders, new)] and taken == [("merge", True)]
    _run(changed_twin, as_of, full=True)
    _same(changed, changed_twin)
