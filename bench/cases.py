"""Benchmark of opening cases from flags and scores, on the generated world as detect left it.

`run(n_orders, workdir)` copies the store the detect area left, removes its cases (so every one opens again) and
times, in this process:

- open: `sync_cases` over every order (the cases stage of `tracker detect --full`: the picked orders read with
  their flags, scores and first delivered scan, the deadlines of the new cases worked out, the cases, their
  'opened' events and deadlines written), the search index already folded;
- again: the same call once more (nothing may change);
- floor: the same cases and 'opened' events written by two INSERT ... SELECT statements with no logic at all;
- listing `tracker cases --due-within 3d` and all cases, and one complaint packet.

Target: at a million orders, opening the cases takes at most 5 s. Run alone: `python -m bench.cases 100000`.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench import store

ROOT = Path(__file__).resolve().parent.parent
CLEAR = ("DELETE FROM case_deadlines", "DELETE FROM case_events", "DELETE FROM cases")


def _clear(path: Path) -> None:
    from tracker.db import open_db
    from tracker.search_index import refresh_search_index

    db = open_db(path)
    with db.conn:
        for sql in CLEAR:
            db.conn.execute(sql)
    refresh_search_index(db.conn)  # the import's queue: folded by the detect that made this store, not timed here
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _floor(path: Path, as_of: str) -> tuple[float, int]:
    from tracker.cases.settings import load_settings
    from tracker.db import open_db

    settings = load_settings()
    db = open_db(path)
    severities = ", ".join("?" * len(settings.open_severities))
    started = time.perf_counter()
    with db.conn:
        db.conn.execute(
            f"""INSERT INTO cases(order_id, status, category, reason, score, flag_codes, opened_at, updated_at)
               SELECT o.order_id, 'new', 'trade_rules', 'false_shipment', s.score, '', ?, ?
               FROM orders o LEFT JOIN scores s ON s.order_id = o.order_id
               WHERE s.score >= ? OR EXISTS (SELECT 1 FROM flags f WHERE f.order_id = o.order_id
                                             AND f.severity IN ({severities}) AND f.resolved_at IS NULL)""",
            [as_of, as_of, settings.score_threshold, *settings.open_severities])
        db.conn.execute("INSERT INTO case_events(case_id, at, actor, kind, to_status) SELECT id, opened_at, "
                        "'detector', 'opened', 'new' FROM cases")
    seconds = time.perf_counter() - started
    count = db.conn.execute("SELECT count(*) FROM cases").fetchone()[0]
    db.close()
    return seconds, count


def run(n_orders: int, workdir: Path) -> dict:
    from tracker.cases.export import export_case
    from tracker.cases.queries import list_cases
    from tracker.cases.sync import sync_cases
    from tracker.db import open_db
    from tracker.timeutil import parse_time

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = store.shared(workdir, n_orders)
    detected = store.store(n_orders, root, store.DETECTED)
    path = store.copy_store(detected, workdir / "cases.db")
    _clear(path)
    bare = store.copy_store(path, workdir / "floor.db")
    floor_s, floor_cases = _floor(bare, store.AS_OF)
    store.remove_store(bare)

    as_of = parse_time(store.AS_OF)
    db = open_db(path)
    order_ids = {r[0] for r in db.conn.execute("SELECT order_id FROM orders")}
    started, cpu = time.perf_counter(), time.process_time()
    opened, updated = sync_cases(db, order_ids, as_of)
    open_s, open_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    again = sync_cases(db, order_ids, as_of)
    again_s = time.perf_counter() - started
    started = time.perf_counter()
    urgent = list_cases(db, due_within=timedelta(days=3), as_of=as_of)
    due_s = time.perf_counter() - started
    started = time.perf_counter()
    every = list_cases(db, as_of=as_of)
    list_s = time.perf_counter() - started
    first = db.conn.execute("SELECT min(id) FROM cases").fetchone()[0]
    shutil.rmtree(workdir / "packet", ignore_errors=True)  # an earlier run's packet: each run writes its own
    started = time.perf_counter()
    if first is not None:
        export_case(db, first, workdir / "packet", as_of=as_of)
    export_s = time.perf_counter() - started
    db.close()
    store.remove_store(path)
    return {
        "orders": n_orders,
        "cases_opened": opened,
        "open_s": round(open_s, 3),
        "open_cpu_s": round(open_cpu, 3),
        "floor_insert_select_s": round(floor_s, 3),
        "floor_cases": floor_cases,
        "open_over_floor": round(open_s / floor_s, 2) if floor_s else None,
        "again_s": round(again_s, 3),
        "again_changes": sum(again),
        "due_within_3d_s": round(due_s, 3),
        "due_within_3d_rows": len(urgent),
        "list_all_s": round(list_s, 3),
        "list_all_rows": len(every),
        "export_one_s": round(export_s, 3),
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(run(n, ROOT / "bench" / "out" / "cases" / str(n)), indent=2))
