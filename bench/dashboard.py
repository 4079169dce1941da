"""Dashboard latency on a big database: My Reports, the cases table with both facets, a case page.

`run(n_orders, workdir)` builds a store of n orders, ~n/10 cases and ~8n tracking events with direct
bulk inserts (synthetic rows; the importers and detectors are not on this path), then times each page
through Datasette's in-process client against the same SQL run bare through sqlite3. Target: p95 of
My Reports and of the faceted cases table at most 300 ms at 1M orders / 100k cases / 8M events.

    .venv/bin/python -c "import bench.dashboard as b, pathlib, json; \
        print(json.dumps(b.run(100_000, pathlib.Path('bench/out/dashboard')), indent=1))"
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
from functools import lru_cache
from pathlib import Path

from tracker.db import open_db

STATUSES = [("new", 30), ("dismissed", 15), ("to_report", 8), ("pending", 12), ("processing", 10),
            ("more_info", 5), ("processed", 8), ("closed", 12)]
CATEGORIES = [("trade_rules", 85), ("ipr", 8), ("prohibited", 4), ("search", 3)]
NO_DEADLINE = {"dismissed", "closed"}
EVENT_STATUSES = ["info_received", "in_transit", "in_transit", "in_transit", "in_transit", "out_for_delivery",
                  "delivered", "in_transit"]
FLAG_CODES = ["tracking_reused", "wrong_destination", "invalid_tracking_number", "no_tracking_progress",
              "accepted_before_order", "delivered_not_received"]
BATCH = 50_000
REPEATS = 25


@lru_cache(maxsize=4096)
def _whole_day(base: int, day: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + day * 86400))


def _day(base: int, offset_days: float) -> str:
    # whole days, cached: formatting 8M timestamps one by one would dominate the build
    return _whole_day(base, int(offset_days))


def build(db_path: Path, n_orders: int, seed: int = 7) -> dict[str, int]:
    """The synthetic store: n orders, n/10 cases (with flags, scores, history), 8 events per order."""
    rng = random.Random(seed)
    db = open_db(db_path)
    conn = db.conn
    # a throwaway bulk load: no fsync and no WAL copy of every page (WAL again before measuring)
    conn.execute("PRAGMA journal_mode=MEMORY")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    base = 1_756_684_800  # 2025-09-01
    statuses = [s for s, w in STATUSES for _ in range(w)]
    categories = [c for c, w in CATEGORIES for _ in range(w)]
    n_cases = max(1, n_orders // 10)
    with conn:
        for start in range(0, n_orders, BATCH):
            rows = []
            for i in range(start, min(n_orders, start + BATCH)):
                # every 50th number is shared by a few orders: reuse clusters for the charts
                number = f"LP{(i - i % 3 if i % 50 < 3 else i):014d}"
                rows.append((f"9{i:011d}", f"buyer-{rng.randrange(n_orders // 3 + 1)}", f"seller-{rng.randrange(2000)}",
                             _day(base, i * 365 / n_orders), "DE", "Berlin", "10115", number, "cainiao",
                             _day(base, i * 365 / n_orders + 1), 30, f"item {i % 997}"))
            conn.executemany(
                "INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country, dest_city, dest_postcode,"
                " tracking_number, carrier, shipped_at, promised_days, item_title) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            events = []
            for i in range(start, min(n_orders, start + BATCH)):
                number = f"LP{i:014d}"
                for k, status in enumerate(EVENT_STATUSES):
                    events.append((number, _day(base, i * 365 / n_orders + 1 + k), status, f"scan {k}",
                                   "Hangzhou, CN", "CN", "cainiao", "SC_INBOUND_SUCCESS", f"{number}:{k}"))
            conn.executemany(
                "INSERT INTO tracking_events(tracking_number, occurred_at, status, description, location, country,"
                " carrier, raw_code, event_key) VALUES (?,?,?,?,?,?,?,?,?)",
                events,
            )
        case_rows, flag_rows, score_rows, history = [], [], [], []
        for c in range(n_cases):
            i = c * 10 + rng.randrange(10)
            if i >= n_orders:
                i = n_orders - 1 - c
            order_id = f"9{i:011d}"
            status = rng.choice(statuses)
            code = rng.choice(FLAG_CODES)
            opened = _day(base, i * 365 / n_orders + 10)
            deadline = None if status in NO_DEADLINE else _day(base, i * 365 / n_orders + 10 + rng.randrange(60))
            case_rows.append((c + 1, order_id, status, rng.choice(categories), "false_shipment", rng.random(), code,
                              opened, opened, deadline, None if deadline is None else "escalation"))
            flag_rows.append((order_id, code, "high", f"synthetic {code}", opened, "bench"))
            score_rows.append((order_id, rng.random(), code, '[{"feature": "x", "contribution": 0.3}]', opened))
            history.append((c + 1, opened, "detect", "opened", None, status))
        conn.executemany(
            "INSERT INTO cases(id, order_id, status, category, reason, score, flag_codes, opened_at, updated_at,"
            " next_deadline_at, next_deadline_name) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            case_rows,
        )
        conn.executemany(
            "INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, rule_version)"
            " VALUES (?,?,?,?,?,?)",
            flag_rows,
        )
        conn.executemany(
            "INSERT OR IGNORE INTO scores(order_id, score, codes, reasons, scored_at) VALUES (?,?,?,?,?)", score_rows
        )
        conn.executemany(
            "INSERT INTO case_events(case_id, at, actor, kind, from_status, to_status) VALUES (?,?,?,?,?,?)",
            history,
        )
    from tracker.search_index import refresh_search_index

    refresh_search_index(conn)  # as `tracker serve` does before serving: search reads the index, never folds
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    db.close()
    return {"orders": n_orders, "cases": n_cases, "events": n_orders * len(EVENT_STATUSES)}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return round(statistics.median(ordered), 1), round(p95, 1)


def _bare(db_path: Path, n_cases: int, rng: random.Random) -> dict[str, list[float]]:
    """The same questions asked of sqlite3 directly: the floor the dashboard stands on."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    questions = {
        "my_reports": [
            ("SELECT status, count(*) FROM cases GROUP BY status", ()),
            ("SELECT category, count(*) FROM cases GROUP BY category", ()),
            ("SELECT id FROM cases WHERE next_deadline_at IS NOT NULL ORDER BY next_deadline_at LIMIT 20", ()),
        ],
        "cases_facets": [
            ("SELECT * FROM cases ORDER BY next_deadline_at, id LIMIT 51", ()),
            ("SELECT count(*) FROM cases", ()),
            ("SELECT status, count(*) FROM cases GROUP BY status", ()),
            ("SELECT category, count(*) FROM cases GROUP BY category", ()),
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in (*questions, "case_page")}
    for _ in range(REPEATS):
        for name, sqls in questions.items():
            started = time.perf_counter()
            for sql, params in sqls:
                conn.execute(sql, params).fetchall()
            timings[name].append((time.perf_counter() - started) * 1000)
        case_id = rng.randrange(1, n_cases + 1)
        started = time.perf_counter()
        order_id = conn.execute("SELECT order_id FROM cases WHERE id = ?", [case_id]).fetchone()[0]
        number = conn.execute("SELECT tracking_number FROM orders WHERE order_id = ?", [order_id]).fetchone()[0]
        conn.execute("SELECT * FROM tracking_events WHERE tracking_number = ? ORDER BY occurred_at", [number]).fetchall()
        conn.execute("SELECT * FROM flags WHERE order_id = ?", [order_id]).fetchall()
        timings["case_page"].append((time.perf_counter() - started) * 1000)
    conn.close()
    return timings


async def _dashboard(db_path: Path, n_cases: int, rng: random.Random) -> dict[str, list[float]]:
    from tracker.dashboard import make_datasette

    ds = make_datasette(db_path, secret="bench", env={})
    signed_in = {"ds_actor": ds.sign({"a": {"id": "bench"}}, "actor")}  # every page needs sign-in
    name = db_path.stem
    pages = {
        "my_reports": lambda: "/-/my-reports",
        "my_reports_category": lambda: "/-/my-reports?category=trade_rules",
        "cases_facets": lambda: f"/{name}/cases",
        "cases_filtered": lambda: f"/{name}/cases?status=pending&category=trade_rules&_sort=next_deadline_at",
        "case_page": lambda: f"/-/case/{rng.randrange(1, n_cases + 1)}",
        "events_table": lambda: f"/{name}/tracking_events",
        "search": lambda: "/-/search?q=item+42",
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
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "dashboard.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    sizes = build(db_path, n_orders)
    build_s = time.perf_counter() - started
    rng = random.Random(11)
    bare = _bare(db_path, sizes["cases"], rng)
    dash = asyncio.run(_dashboard(db_path, sizes["cases"], rng))
    result: dict = {**sizes, "build_s": round(build_s, 1), "repeats": REPEATS}
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
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, Path("bench/out/dashboard")), indent=1))
