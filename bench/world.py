"""Benchmark of the world generator: `write_world` against a bare CSV writer of as many rows.

`run(n_orders, workdir)` runs each step in its own subprocess, so its time and peak memory are its own:

- baseline: `csv.writer` writing the same number of orders, events, messages and labels rows (one fixed
  row each, the world's shapes), i.e. the cost of the bytes alone;
- world: `tracker.world.write_world(workdir, n_orders)`: people, orders, journeys, chat, labels;
- two workers: the same with `workers=2` (identical files; the second half made by another process).

Figures: seconds (wall and CPU), peak RSS, rows per second, and the ratio world / baseline.
Run alone: `python -m bench.world 100000`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_WORLD = """
import json, resource, sys, time
from tracker.world import write_world
t0, c0 = time.perf_counter(), time.process_time()
counts = write_world(sys.argv[1], int(sys.argv[2]), workers=int(sys.argv[3]))
print(json.dumps({"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "counts": counts,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_BASELINE = """
import csv, json, resource, sys, time
from pathlib import Path
from tracker.world import EVENT_COLUMNS, LABEL_COLUMNS, MESSAGE_COLUMNS, ORDER_COLUMNS
counts = json.loads(sys.argv[2])
rows = {
    "orders": ("3061250778670472", "buyer0000439", "store5488559", "2026-07-23T13:03:54Z", "RU", "Moscow",
               "107011", "RF568242922CN", "chinapost", "2026-07-27T00:43:55Z", "90", "2026-08-22T02:02:36Z",
               "yes", "1527.79", "RUB", "Power Bank 20000mAh PD 22.5W"),
    "events": ("RF568242922CN", "2026-07-27T12:35:11Z", "in_transit", "Arrival at Sorting Center",
               "Guangzhou, CN", "Guangzhou", "510281", "CN", "chinapost", "SC_INBOUND_SUCCESS"),
    "messages": ("3061250778670472", "seller", "2026-07-27T04:29:55Z",
                 "Dear friend, your order has been shipped, tracking number is RF568242922CN, please wait."),
    "labels": ("3061250778670472", "0", "honest"),
}
columns = {"orders": ORDER_COLUMNS, "events": EVENT_COLUMNS, "messages": MESSAGE_COLUMNS, "labels": LABEL_COLUMNS}
t0, c0 = time.perf_counter(), time.process_time()
folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
for kind, n in counts.items():
    with open(folder / f"{kind}.csv", "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(columns[kind])
        row = rows[kind]
        for _ in range(n // 10000):
            out.writerows([row] * 10000)
        out.writerows([row] * (n % 10000))
print(json.dumps({"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _step(code: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(n_orders: int, workdir: Path) -> dict:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    world = _step(_WORLD, str(workdir / "world"), str(n_orders), "1")
    shared = _step(_WORLD, str(workdir / "world2"), str(n_orders), "2")
    counts = world["counts"]
    baseline = _step(_BASELINE, str(workdir / "baseline"), json.dumps(counts))
    rows = sum(counts.values())
    sizes = {kind: (workdir / "world" / f"{kind}.csv").stat().st_size for kind in counts}
    return {
        "orders": counts["orders"],
        "events": counts["events"],
        "messages": counts["messages"],
        "events_per_order": round(counts["events"] / max(1, counts["orders"]), 2),
        "step_s": round(world["s"], 2),
        "world_cpu_s": round(world["cpu_s"], 2),
        "world_peak_mb": round(world["peak_mb"], 1),
        "world_rows_per_s": round(rows / world["s"]),
        "world_mb_written": round(sum(sizes.values()) / 2**20, 1),
        "two_workers_s": round(shared["s"], 2),
        "two_workers_peak_mb_parent": round(shared["peak_mb"], 1),
        "baseline_s": round(baseline["s"], 2),
        "baseline_cpu_s": round(baseline["cpu_s"], 2),
        "baseline_peak_mb": round(baseline["peak_mb"], 1),
        "ratio_world_to_baseline": round(world["s"] / max(baseline["s"], 1e-9), 2),
        "ratio_cpu_world_to_baseline": round(world["cpu_s"] / max(baseline["cpu_s"], 1e-9), 2),
        "bench_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(n, Path(tmp)), indent=2))
