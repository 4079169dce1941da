"""`tracker detect --engine dask` on a 2-worker LocalCluster gives the in-process answer: the same flags (every
column), deadlines and cases, scores within 1e-9, on the same store; again after the store changes."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pytest
from test_rules_builders import add_journey, add_message, add_order, s10_number

from tracker.db import open_db
from tracker.detection import pipeline
from tracker.events import insert_events
from tracker.importers import import_file
from tracker.mirror.layout import buckets_of, default_buckets

distributed = pytest.importorskip("distributed")
world = pytest.importorskip("tracker.world.world")

FLAGS = "SELECT order_id, code, severity, explanation, evidence, detected_at, rule_version, resolved_at FROM flags"
CASES = ("SELECT order_id, status, category, reason, score, flag_codes, next_deadline_at, next_deadline_name "
         "FROM cases")


@pytest.fixture(scope="module")
def scheduler():
    """One 2-worker LocalCluster for the module, reached by its address as `--scheduler` reaches one."""
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


def _rows(path, sql):
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(sql).fetchall(), key=repr)
    finally:
        conn.close()


def _same_answer(local, on_cluster):
    assert _rows(local, FLAGS) == _rows(on_cluster, FLAGS)
    assert _rows(local, "SELECT order_id, due_at FROM rule_deadlines") == \
        _rows(on_cluster, "SELECT order_id, due_at FROM rule_deadlines")
    assert _rows(local, CASES) == _rows(on_cluster, CASES)
    a = {r[0]: r[1:] for r in _rows(local, "SELECT order_id, score, codes, reasons, model_id FROM scores")}
    b = {r[0]: r[1:] for r in _rows(on_cluster, "SELECT order_id, score, codes, reasons, model_id FROM scores")}
    assert a.keys() == b.keys() and len(a) > 100
    assert max(abs(a[o][0] - b[o][0]) for o in a) <= 1e-9
    assert {o: a[o][1:] for o in a} == {o: b[o][1:] for o in b}


def _typo(number: str) -> str:
    """The number with a wrong check digit."""
    digits, check = number[2:10], int(number[10])
    return f"{number[:2]}{digits}{(check + 1) % 10}{number[11:]}"


def _corrected_into_a_reuse_cluster(db, buckets: int) -> tuple[str, str]:
    """Two buyers' orders on one number, and a third order whose invalid number a seller message corrects to it,
    from another bucket: judged on the corrected number, it joins that number's reuse cluster."""
    number = s10_number()
    add_order(db, "REUSE-1", buyer="RB1", number=number, city="Kazan", postcode="420066")
    add_order(db, "REUSE-2", buyer="RB2", number=number, city="Omsk", postcode="644000")
    add_journey(db, number)
    typo = next(t for t in (_typo(s10_number()) for _ in range(200))
                if buckets_of([t], buckets)[0] != buckets_of([number], buckets)[0])
    add_order(db, "REUSE-3", buyer="RB3", number=typo, city="Perm", postcode="614000")
    add_message(db, "REUSE-3", f"sorry, wrong number, the correct one is {number}")
    return number, typo


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_cluster_gives_the_in_process_answer(tmp_path, scheduler):
    from tracker.detection import cluster

    world.write_world(tmp_path, 1200, seed=5)
    store = tmp_path / "store.db"
    db = open_db(store)
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, tmp_path / f"{kind}.csv")
    number, typo = _corrected_into_a_reuse_cluster(db, default_buckets(1203))
    db.close()
    local, on_cluster = tmp_path / "local.db", tmp_path / "cluster.db"
    shutil.copy(store, local)
    shutil.copy(store, on_cluster)
    as_of = world._as_of(None)

    a, b = open_db(local), open_db(on_cluster)
    expected = pipeline.detect(a, as_of, full=True)
    got = cluster.detect(b, as_of, scheduler=scheduler, progress=False)
    assert (got.examined, got.flags_raised, got.scored, got.cases_opened) == \
        (expected.examined, expected.flags_raised, expected.scored, expected.cases_opened)
    assert expected.flags_raised > 50 and expected.cases_opened > 10
    _same_answer(local, on_cluster)
    # the corrected order was judged with the corrected number's other orders, on both engines
    reused = {r[0] for r in _rows(on_cluster, "SELECT order_id FROM flags WHERE code = 'tracking_reused'")}
    assert {"REUSE-1", "REUSE-2", "REUSE-3"} <= reused
    assert (tmp_path / "cluster.parquet" / "_detect" / "flags").is_dir()  # the flags came back as Parquet

    # the store changes: a buyer says a delivered parcel never came, a parcel gets new scans
    for db in (a, b):
        delivered = db.conn.execute(
            "SELECT o.order_id, o.tracking_number FROM orders o JOIN shipment_facts f USING (tracking_number) "
            "WHERE f.delivered_jd IS NOT NULL ORDER BY o.order_id LIMIT 1").fetchone()
        with db.conn:
            db.conn.execute("UPDATE orders SET buyer_received = 'no', seq = seq + 100000 WHERE order_id = ?",
                            [delivered[0]])
            insert_events(db, [{"tracking_number": number, "occurred_at": "2026-10-30T10:00:00Z",
                                "status": "returned", "raw_code": "RETURN", "description": "returned to sender",
                                "source": "import"}])
    later = as_of + timedelta(days=1)
    # the reference is a full run: an incremental one keeps a score that moved by less than seller_rescore_delta
    pipeline.detect(a, later, full=True)
    again = cluster.detect(b, later, scheduler=scheduler, progress=False)
    assert again.examined == expected.examined and again.flags_raised >= 1
    _same_answer(local, on_cluster)
    assert _rows(on_cluster, "SELECT tracking_number FROM orders WHERE order_id = 'REUSE-3'") == [(typo,)]
    # who scored and the typical transit are kept as one process keeps them; the seller books of a one-process
    # run no longer match the scores, so the next run in one process rescores every order: the same answer again
    meta = "SELECT key, value FROM meta WHERE key LIKE 'scored_by:%' OR key = 'typical_transit'"
    assert _rows(on_cluster, meta) == _rows(local, meta) != []
    assert _rows(on_cluster, "SELECT value FROM meta WHERE key = 'seller_books.run'") == []
    pipeline.detect(a, later + timedelta(hours=1))
    pipeline.detect(b, later + timedelta(hours=1))
    _same_answer(local, on_cluster)
    a.close()
    b.close()


def test_the_engine_options_are_checked(run_cli, tmp_path):
    bad = run_cli("detect", "--scheduler", "tcp://127.0.0.1:1")
    assert bad.exit_code == 2 and "--engine dask" in bad.output
    memory = run_cli("detect", "--engine", "dask", "--parquet", "memory://mirror")
    assert memory.exit_code == 2 and "memory" in memory.output


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_command_starts_a_local_cluster_and_mirrors_beside_the_store(db_path, tmp_path, run_cli):
    db = open_db(db_path)
    numbers = [add_order(db, f"O{i}", buyer=f"B{i}", received="no" if i == 1 else "yes") for i in range(6)]
    for number in numbers[:4]:
        add_journey(db, number)
    add_message(db, "O2", "please confirm receipt now, the parcel is on its way, I give you coupon")
    db.close()
    shutil.copy(db_path, tmp_path / "local.db")
    result = run_cli("detect", "--engine", "dask", "--as-of", "2026-10-20T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("examined 6 orders:") and len(result.output.splitlines()) == 1
    assert (db_path.parent / "tracker.parquet" / "_tracker_mirror.json").exists()
    local = run_cli("--db", tmp_path / "local.db", "detect", "--full", "--as-of", "2026-10-20T00:00:00Z")
    assert local.output == result.output
    assert _rows(db_path, FLAGS) == _rows(tmp_path / "local.db", FLAGS) != []
