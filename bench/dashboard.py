"""Dashboard latency on the generated world as detect left it: My Reports, the cases table with both facets, a case.

`run(n_orders, workdir)` copies the store the detect area left (the world imported, its cases opened), folds the
search queue as `tracker serve` does when it starts, then times each page through Datasette's in-process client
against the same answers read bare through sqlite3 from the same tables (the counts from `case_counts`, which
the dashboard reads, not a recount). Target: p95 of My Reports and of the faceted cases table at most 300 ms.

    .venv/bin/python -m bench.dashboard 100000
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
from pathlib import Path

REPEATS = 25


def prepare(source: Path, db_path: Path) -> dict[str, int]:
    """A copy of the detected store, served as `tracker serve` serves it (search queue folded, counts rebuilt)."""
    from bench import store
    from tracker.dashboard.counts import rebuild_case_counts
    from tracker.search_index import refresh_search_index

    store.copy_store(source, db_path)
    conn = sqlite3.connect(db_path)
    refresh_search_index(conn)
    rebuild_case_counts(conn)
    sizes = {"orders": conn.execute("SELECT count(*) FROM orders").fetchone()[0],
             "cases": conn.execute("SELECT count(*) FROM cases").fetchone()[0],
             "events": conn.execute("SELECT max(id) FROM tracking_events").fetchone()[0]}
    conn.close()
    return sizes


def _percentiles(samples: list[float]) -> tuple[float, float]:
    """Median and 95th percentile of the samples (ms), kept to the microsecond: the bare queries take a few
    hundredths of a millisecond, which a tenth would round to nothing (a floor of 0 ms and no ratio)."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return round(statistics.median(ordered), 3), round(p95, 3)


def _bare(db_path: Path, case_ids: list[int], rng: random.Random) -> dict[str, list[float]]:
    """The same questions asked of sqlite3 directly: the floor the dashboard stands on."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    # the same answers from the same tables: the counts the dashboard reads from case_counts
    questions = {
        "my_reports": [
            ("SELECT status, sum(n) FROM case_counts GROUP BY status", ()),
            ("SELECT category, sum(n) FROM case_counts GROUP BY category", ()),
            ("SELECT id FROM cases WHERE next_deadline_at IS NOT NULL ORDER BY next_deadline_at LIMIT 20", ()),
        ],
        "cases_facets": [
            ("SELECT * FROM cases ORDER BY next_deadline_at, id LIMIT 51", ()),
            ("SELECT sum(n) FROM case_counts", ()),
            ("SELECT status, sum(n) FROM case_counts GROUP BY status", ()),
            ("SELECT category, sum(n) FROM case_counts GROUP BY category", ()),
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in (*questions, "case_page")}
    for _ in range(REPEATS):
        for name, sqls in questions.items():
            started = time.perf_counter()
            for sql, params in sqls:
                conn.execute(sql, params).fetchall()
            timings[name].append((time.perf_counter() - started) * 1000)
        case_id = rng.choice(case_ids)
        started = time.perf_counter()
        order_id = conn.execute("SELECT order_id FROM cases WHERE id = ?", [case_id]).fetchone()[0]
        number = conn.execute("SELECT tracking_number FROM orders WHERE order_id = ?", [order_id]).fetchone()[0]
        conn.execute("SELECT * FROM tracking_events WHERE tracking_number = ? ORDER BY occurred_at", [number]).fetchall()
        conn.execute("SELECT * FROM flags WHERE order_id = ?", [order_id]).fetchall()
        timings["case_page"].append((time.perf_counter() - started) * 1000)
    conn.close()
    return timings


async def _dashboard(db_path: Path, case_ids: list[int], rng: random.Random) -> dict[str, list[float]]:
    from tracker.dashboard import make_datasette

    ds = make_datasette(db_path, secret="bench", env={})
    signed_in = {"ds_actor": ds.sign({"a": {"id": "bench"}}, "actor")}  # every page needs sign-in
    name = db_path.stem
    pages = {
        "my_reports": lambda: "/-/my-reports",
        "my_reports_category": lambda: "/-/my-reports?category=trade_rules",
        "cases_facets": lambda: f"/{name}/cases",
        "cases_filtered": lambda: f"/{name}/cases?status=pending&category=trade_rules&_sort=next_deadline_at",
        "case_page": lambda: f"/-/case/{rng.choice(case_ids)}",
        "events_table": lambda: f"/{name}/tracking_events",
        "search": lambda: "/-/search?q=false_shipment",
    }
    timings: dict[str, list[float]] = {key: [] for key in pages}
    for path in pages.values():  # warm: startup hooks, schema introspection, page cache
        response = await ds.client.get(path(), cookies=signed_in)
        assert response.status_code == 200, (path(), response.status_code)
    for _ in range(REPEATS):
        for key, path in pages.items():
            started = time.perf_counter()
            response = await ds.client.get(path(), cookies=signed_in)
            timings[key].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (key, response.status_code)
    return timings


def run(n_orders: int, workdir: Path) -> dict:
    from bench import store

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "dashboard.db"
    started = time.perf_counter()
    sizes = prepare(store.store(n_orders, store.shared(workdir, n_orders), store.DETECTED), db_path)
    prepare_s = time.perf_counter() - started
    conn = sqlite3.connect(db_path)
    case_ids = [r[0] for r in conn.execute("SELECT id FROM cases")] or [1]
    conn.close()
    rng = random.Random(11)
    bare = _bare(db_path, case_ids, rng)
    dash = asyncio.run(_dashboard(db_path, case_ids, rng))
    result: dict = {**sizes, "prepare_s": round(prepare_s, 1), "repeats": REPEATS}
    for key, samples in dash.items():
        p50, p95 = _percentiles(samples)
        result[f"{key}_p50_ms"] = p50
        result[f"{key}_p95_ms"] = p95
    for key, samples in bare.items():
        p50, p95 = _percentiles(samples)
        result[f"bare_{key}_p50_ms"] = p50
        result[f"bare_{key}_p95_ms"] = p95
        if result.get(f"{key}_p50_ms") and p50:
            result[f"{key}_vs_bare_p50"] = round(result[f"{key}_p50_ms"] / p50, 1)
    result["target_p95_ms"] = 300
    result["meets_target"] = max(result["my_reports_p95_ms"], result["cases_facets_p95_ms"]) <= 300
    store.remove_store(db_path)
    return result


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(run(n, Path("bench/out/dashboard") / str(n)), indent=1))
