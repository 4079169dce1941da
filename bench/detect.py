"""Benchmark of `tracker detect` as a user runs it, on the generated world: full, after 1% changed, nothing new.

`run(n_orders, workdir)` copies the store the imports area built from the generated world (with its reuse
clusters, sellers and chat) and times, each as a `python -m tracker` subprocess (start-up included), with the
stage split it logs (rules, scoring, cases) and the peak memory of its whole process tree:

- full: `tracker detect --full` on the new store (every number's facts computed and stored, every rule over every
  order, every order scored and its seller books written, the cases opened);
- after 1% changed: new scans on 1% of the tracking numbers and 1% new orders (`bench.changes`), imported with
  `tracker import`, then `tracker detect` (three times on the same store state, the median reported: `repeated`);
- after the day's chat: the seller's note on each new order shipped and a message on 1% of the other orders,
  imported, then `tracker detect` (new texts for the message model, new pressure for the rules and features); a
  copy of the store then gets `tracker detect --full` and the two stores' flags and scores are compared (they
  must be identical);
- nothing new: `tracker detect` again, at the same time, and an hour later (ages crossing a threshold of the
  model are rescored then; the median of three, as after 1% changed);
- floor: a bare SQL GROUP BY over the scans of the same facts (per number: scans, physical ones, first and last
  scan, delivery), in this process.

The store after the full run is left for the model, cases and dashboard areas. Run alone:
`python -m bench.detect 100000`.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench import store
from tracker.timeutil import parse_time, to_db

ROOT = Path(__file__).resolve().parent.parent
FLOOR_SQL = """SELECT tracking_number, count(*), sum(status IN ('in_transit', 'out_for_delivery', 'available_for_pickup',
    'delivery_failed', 'delivered', 'exception', 'returned')), min(occurred_at), max(occurred_at),
    min(CASE WHEN status = 'delivered' THEN occurred_at END) FROM tracking_events GROUP BY tracking_number"""
REPEATS = 3  # runs of the cases users run every hour (after 1% changed, an hour later), the median reported
TABLES = {"flags": "SELECT order_id, code, severity, explanation, evidence, resolved_at FROM flags ORDER BY 1, 2",
          "scores": "SELECT order_id, score, codes, reasons FROM scores ORDER BY 1"}


def floor_s(path: Path) -> float:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        conn.execute(FLOOR_SQL).fetchall()
        return time.perf_counter() - started
    finally:
        conn.close()


def digest(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        for table, sql in TABLES.items():
            h = hashlib.sha256()
            for row in conn.execute(sql):
                h.update(repr(row).encode())
            out[table] = h.hexdigest()
        return out
    finally:
        conn.close()


def _count(text: str, word: str) -> int | None:
    """The number before `word` in detect's summary line ("examined 1000 orders: ..., 66 scored, ...")."""
    found = re.findall(rf"(\d+) {word}\b", text)
    return int(found[-1]) if found else None


def _figures(result: dict) -> dict:
    out = {"s": round(result["s"], 3), "cpu_s": round(result["cpu_s"], 2), "peak_mb": round(result["peak_mb"], 1),
           **{key: round(result[key], 2) for key in ("main_cpu_s", "children_cpu_s", "idle_core_s") if key in result}}
    out.update({f"{stage}_s": round(seconds, 3) for stage, seconds in result["stages"].items()})
    for word in ("orders", "scored"):
        value = _count(result["out"], word)
        if value is not None:
            out["examined" if word == "orders" else word] = value
    return out


def repeated(path: Path, spare: Path, *args: str, times: int | None = None) -> dict:
    """`tracker ARGS` timed `times` times (`REPEATS`) on the same state of the store, each run on it afresh (a copy
    kept in `spare`, written to disk before each run as `store.copy_store` does): the figures of the run of median
    time, and every run's seconds (`runs_s`). A single run on this shared machine moves by a fifth from one minute to
    the next; the median of a few is what a change of a tenth can be read against. The store is left as the last run
    left it (every run leaves it the same)."""
    times = REPEATS if times is None else times
    if times <= 1:
        return _figures(store.command(path, *args))
    store.copy_store(path, spare)
    results = []
    for k in range(times):
        if k:
            store.copy_store(spare, path)
        results.append(store.command(path, *args))
    store.remove_store(spare)
    median = sorted(results, key=lambda r: r["s"])[len(results) // 2]
    return {**_figures(median), "runs_s": [round(r["s"], 3) for r in results]}


def run(n_orders: int, workdir: Path) -> dict:
    from bench.changes import write_changes

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = store.shared(workdir, n_orders)
    path = store.copy_store(store.store(n_orders, root), workdir / "detect.db")
    as_of = parse_time(store.AS_OF)
    out: dict = {"orders": n_orders, "floor_group_by_s": round(floor_s(path), 3)}

    full = store.command(path, "detect", "--full", "--as-of", store.AS_OF)
    out["full"] = _figures(full)
    store.copy_store(path, root / store.DETECTED)  # for the model, cases and dashboard areas

    changes = write_changes(path, workdir / "changes", as_of, share=0.01)
    out["changed_scans"], out["changed_orders"] = changes["events"], changes["orders"]
    out["changed_messages"] = changes["messages"]
    for kind in ("events", "orders"):
        store.command(path, "import", kind, str(workdir / "changes" / f"{kind}.csv"))
    out["one_percent"] = repeated(path, workdir / "spare.db", "detect", "--as-of", store.AS_OF)
    # then the day's chat: the seller's note on each new order shipped, a message on 1% of the other orders
    store.command(path, "import", "messages", str(workdir / "changes" / "messages.csv"))
    out["days_chat"] = _figures(store.command(path, "detect", "--as-of", store.AS_OF))
    twin = store.copy_store(path, workdir / "detect-full.db")  # both changes, detected in full
    store.command(twin, "detect", "--full", "--as-of", store.AS_OF)
    out["one_percent_same_as_full"] = digest(path) == digest(twin)
    store.remove_store(twin)

    out["nothing_new"] = _figures(store.command(path, "detect", "--as-of", store.AS_OF))
    later = to_db(as_of + timedelta(hours=1))
    out["an_hour_later"] = repeated(path, workdir / "spare.db", "detect", "--as-of", later)
    full_s = out["full"]["s"]
    out["one_percent_over_full"] = round(out["one_percent"]["s"] / full_s, 4)
    out["full_over_floor"] = round(full_s / max(out["floor_group_by_s"], 1e-9), 1)
    store.remove_store(path)
    return out


if __name__ == "__main__":
    import json

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(run(n, ROOT / "bench" / "out" / "detect" / str(n)), indent=2))
