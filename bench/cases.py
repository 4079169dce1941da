"""Case tracker: opening ~n/10 cases from flags and scores, re-running idempotently, listing, exporting.

`run(n_orders, workdir)` builds a store of n orders with ~10% high-severity flags, a score per order and
two tracking events per order (one in three delivered), by direct bulk inserts. It then times
`sync_cases` over every order (opening the cases, their deadlines and 'opened' events), a second
`sync_cases` (nothing to change), `tracker cases --due-within 3d`, and one export; the bare baseline is
the same cases and events written by two INSERT … SELECT statements with no logic at all.
Target: 100k cases over 1M orders in seconds.

    .venv/bin/python -c "import bench.cases as b, pathlib, json; \
        print(json.dumps(b.run(100_000, pathlib.Path('bench/out/cases')), indent=1))"
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from tracker.db import open_db
from tracker.timeutil import parse_time, to_db

CODES = ["invalid_tracking_number", "tracking_reused", "wrong_destination", "accepted_before_order",
         "impossible_transit", "delivered_not_received", "early_confirmation", "seller_pressure",
         "no_tracking_progress"]
AS_OF = parse_time("2026-06-01T00:00:00Z")


def _build(path: Path, n: int) -> None:
    rng = random.Random(6)
    db = open_db(path)
    start = parse_time("2026-01-01T00:00:00Z")
    orders, flags, scores, events = [], [], [], []
    for i in range(n):
        ordered = start + timedelta(minutes=7 * i % (150 * 24 * 60))
        number = f"LP{i:014d}"
        orders.append((f"o{i}", f"b{i % (n // 3 + 1)}", f"s{i % 997}", to_db(ordered), "DE", number,
                       to_db(ordered + timedelta(days=2)), rng.choice([15, 30, 45, 60, 90]), i))
        roll = rng.random()
        if roll < 0.10:
            flags.append((f"o{i}", rng.choice(CODES), "high", "synthetic high finding", "{}", to_db(AS_OF), "1"))
        elif roll < 0.15:
            flags.append((f"o{i}", rng.choice(CODES), "medium", "synthetic medium finding", "{}", to_db(AS_OF), "1"))
        scores.append((f"o{i}", rng.random() ** 6, "", "[]", to_db(AS_OF)))  # ~5% at or above 0.7
        events.append((number, to_db(ordered + timedelta(days=3)), "in_transit", f"{number}|1"))
        if i % 3 == 0:
            events.append((number, to_db(ordered + timedelta(days=12)), "delivered", f"{number}|2"))
    with db.conn:
        db.conn.executemany(
            "INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country, tracking_number,"
            " shipped_at, promised_days, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)
        db.conn.executemany(
            "INSERT INTO flags(order_id, code, severity, explanation, evidence, detected_at, rule_version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", flags)
        db.conn.executemany(
            "INSERT INTO scores(order_id, score, codes, reasons, scored_at) VALUES (?, ?, ?, ?, ?)", scores)
        db.conn.executemany(
            "INSERT INTO tracking_events(tracking_number, occurred_at, status, event_key) VALUES (?, ?, ?, ?)",
            events)
    db.close()


def _baseline(path: Path) -> tuple[float, float, int]:
    """The same case rows and 'opened' events, written with no logic: the floor for any implementation."""
    db = open_db(path)
    t0, c0 = time.perf_counter(), time.process_time()
    with db.conn:
        db.conn.execute(
            """INSERT INTO cases(order_id, status, category, reason, score, flag_codes, opened_at, updated_at)
               SELECT o.order_id, 'new', 'trade_rules', 'false_shipment', s.score, '', :now, :now
               FROM orders o LEFT JOIN scores s ON s.order_id = o.order_id
               WHERE s.score >= 0.7 OR EXISTS (SELECT 1 FROM flags f WHERE f.order_id = o.order_id
                                               AND f.severity = 'high' AND f.resolved_at IS NULL)""",
            {"now": to_db(AS_OF)})
        db.conn.execute(
            "INSERT INTO case_events(case_id, at, actor, kind, to_status) SELECT id, opened_at, 'detector', 'opened',"
            " 'new' FROM cases")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    count = db.execute("SELECT count(*) FROM cases").fetchone()[0]
    db.close()
    return seconds, cpu, count


def run(n_orders: int, workdir: Path) -> dict:
    from tracker.cases.export import export_case
    from tracker.cases.queries import list_cases
    from tracker.cases.sync import sync_cases

    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=workdir))
    try:
        store, bare = scratch / "cases.db", scratch / "baseline.db"
        t0 = time.perf_counter()
        _build(store, n_orders)
        build_s = time.perf_counter() - t0
        shutil.copy(store, bare)
        baseline_s, baseline_cpu_s, baseline_cases = _baseline(bare)

        db = open_db(store)
        order_ids = {f"o{i}" for i in range(n_orders)}
        t0, c0 = time.perf_counter(), time.process_time()
        opened, updated = sync_cases(db, order_ids, AS_OF)
        sync_s, sync_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        again = sync_cases(db, order_ids, AS_OF)
        resync_s, resync_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        urgent = list_cases(db, due_within=timedelta(days=3), as_of=AS_OF)
        due_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        all_cases = list_cases(db, as_of=AS_OF)
        list_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        export_case(db, 1, scratch / "packet", as_of=AS_OF)
        export_s = time.perf_counter() - t0
        deadlines = db.execute("SELECT count(*) FROM case_deadlines").fetchone()[0]
        db.close()
        return {
            "n_orders": n_orders,
            "cases_opened": opened,
            "cases_updated_first_run": updated,
            "deadlines_written": deadlines,
            "build_s": round(build_s, 3),
            "sync_s": round(sync_s, 3),
            "sync_cpu_s": round(sync_cpu_s, 3),  # the machine is shared: CPU time is the steadier figure
            "sync_cases_per_s": round(opened / sync_s) if sync_s else None,
            "resync_s": round(resync_s, 3),
            "resync_cpu_s": round(resync_cpu_s, 3),
            "resync_changes": sum(again),
            "baseline_insert_select_s": round(baseline_s, 3),
            "baseline_insert_select_cpu_s": round(baseline_cpu_s, 3),
            "baseline_cases": baseline_cases,
            "sync_vs_baseline": round(sync_s / baseline_s, 2) if baseline_s else None,
            "sync_vs_baseline_cpu": round(sync_cpu_s / baseline_cpu_s, 2) if baseline_cpu_s else None,
            "due_within_3d_s": round(due_s, 3),
            "due_within_3d_rows": len(urgent),
            "list_all_s": round(list_s, 3),
            "list_all_rows": len(all_cases),
            "export_one_s": round(export_s, 3),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
