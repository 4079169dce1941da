"""Benchmark of `tracker import orders`: the full importer against a bare csv.reader + executemany.

`run(n_orders, workdir)` writes an n-row orders CSV (from `tracker.world` when it offers a writer, else a
small generator of valid rows here), then, each in its own subprocess so the peak memory is that step's own:

- baseline: `csv.reader` over the file and `executemany` INSERT, 10k rows a batch, into a fresh database
  with a table of the orders table's shape and indexes: no validation, no normalisation, no upsert;
- import: `tracker.importers.import_file(db, "orders", file)` into a fresh migrated store (validation,
  normalisation, carrier guessing, upsert with seq, shipments registration);
- reimport: the same file again into that store (every row compared, nothing written);
- search fold: indexing the rows the import queued for full-text search (done by the dashboard's indexer
  or the next detect, not by the import).

Run alone: `python -m bench.imports 100000`.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detectors.tracking_numbers import s10_check_digit

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    "order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
    "tracking_number", "carrier", "shipped_at", "promised_days", "buyer_confirmed_at", "buyer_received",
    "amount", "currency", "item_title",
)
PLACES = [
    ("RU", "Moscow", "101000", "RUB"), ("ES", "Madrid", "28013", "EUR"), ("BR", "São Paulo", "01310-100", "BRL"),
    ("FR", "Paris", "75001", "EUR"), ("US", "Austin", "78701", "USD"), ("PL", "Warszawa", "00-001", "PLN"),
]
FMT = "%Y-%m-%dT%H:%M:%SZ"


def write_orders(path: Path, n: int, seed: int = 1) -> None:
    """n valid orders as the contract's CSV; tracking numbers spaced and lower-cased as sellers type them."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for i in range(n):
            country, city, postcode, currency = PLACES[i % len(PLACES)]
            ordered = start + timedelta(seconds=rng.randrange(200 * 86400))
            shipped = ordered + timedelta(hours=rng.randrange(12, 120))
            kind = rng.random()
            if kind < 0.6:
                digits = f"{rng.randrange(10**8):08d}"
                number = f"L{rng.choice('ABCDEGHLR')} {digits} {s10_check_digit(digits)}CN"
            elif kind < 0.9:
                number = f"lp{rng.randrange(10**13, 10**14)}"
            else:
                number = ""
            confirmed = (shipped + timedelta(days=rng.randrange(5, 40))).strftime(FMT) if rng.random() < 0.4 else ""
            out.writerow((
                f"8{i:015d}", f"buyer{rng.randrange(n // 3 + 1)}", f"store{rng.randrange(2000)}",
                ordered.strftime(FMT), country.lower() if i % 7 == 0 else country, city, postcode,
                # marketplace exports name the carrier; one in ten leaves it to be guessed, as in the world
                number, ("chinapost" if number[:1] == "L" else "cainiao") if number and rng.random() < 0.9 else "",
                shipped.strftime(FMT) if number else "", rng.choice((15, 30, 45, 60, 90)),
                confirmed, rng.choice(("yes", "no", "")) if confirmed else "",
                f"{rng.uniform(1, 200):.2f}", currency, f"Item {rng.randrange(10000)}",
            ))


def _world_writer():  # noqa: ANN202 - whatever tracker.world offers, if it has landed
    try:
        import tracker.world as world
    except ImportError:
        return None
    return getattr(world, "write_orders_csv", None)


_CHILD_BASELINE = r"""
import csv, itertools, json, resource, sqlite3, sys, time
src, dbfile = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(dbfile)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
conn.execute('''CREATE TABLE orders (order_id TEXT PRIMARY KEY, buyer_id TEXT NOT NULL, seller_id TEXT NOT NULL,
  ordered_at TEXT NOT NULL, dest_country TEXT NOT NULL, dest_city TEXT, dest_postcode TEXT, tracking_number TEXT,
  carrier TEXT, shipped_at TEXT, promised_days INTEGER, buyer_confirmed_at TEXT, buyer_received TEXT, amount REAL,
  currency TEXT, item_title TEXT)''')
for col in ("tracking_number", "buyer_id", "seller_id"):
    conn.execute(f"CREATE INDEX idx_{col} ON orders({col})")
conn.commit()
t = time.perf_counter(); cpu = time.process_time()
with open(src, newline="", encoding="utf-8-sig") as fh:
    reader = csv.reader(fh)
    header = next(reader)
    sql = f"INSERT INTO orders ({', '.join(header)}) VALUES ({', '.join('?' * len(header))})"
    n = 0
    with conn:
        while batch := list(itertools.islice(reader, 10000)):
            conn.executemany(sql, batch)
            n += len(batch)
seconds = time.perf_counter() - t
print(json.dumps({"rows": n, "seconds": seconds, "cpu": time.process_time() - cpu, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_CHILD_IMPORT = r"""
import json, resource, sys, time
from tracker.db import open_db
from tracker.importers import import_file
src, dbfile, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = open_db(dbfile)
out = []
for _ in range(times):
    changes = db.conn.total_changes
    t, cpu = time.perf_counter(), time.process_time()
    r = import_file(db, "orders", src)
    out.append({"seconds": time.perf_counter() - t, "cpu": time.process_time() - cpu, "rows": r.rows, "inserted": r.inserted,
                "unchanged": r.unchanged, "changes": db.conn.total_changes - changes,
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
# what folding the search queue the first import left would add, were imports to fold it themselves
from tracker.search_index import refresh_search_index
t, cpu = time.perf_counter(), time.process_time()
folded = refresh_search_index(db.conn)
out.append({"seconds": time.perf_counter() - t, "cpu": time.process_time() - cpu, "rows": folded})
print(json.dumps(out))
"""


def _child(code: str, *args: str) -> dict | list:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(n_orders: int, workdir: Path) -> dict:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / f"orders-{n_orders}.csv"
    t = time.perf_counter()
    writer = _world_writer()
    if writer is not None:
        try:
            writer(src, n_orders)
        except TypeError:
            writer = None
    if writer is None:
        write_orders(src, n_orders)
    generate_s = time.perf_counter() - t
    for name in ("baseline.db", "import.db"):
        for suffix in ("", "-wal", "-shm"):
            (workdir / (name + suffix)).unlink(missing_ok=True)
    base = _child(_CHILD_BASELINE, str(src), str(workdir / "baseline.db"))
    first, again, fold = _child(_CHILD_IMPORT, str(src), str(workdir / "import.db"), "2")
    rows = first["rows"]
    return {
        "orders": rows,
        "file_mb": round(src.stat().st_size / 2**20, 1),
        "generate_s": round(generate_s, 2),
        "baseline_rows_per_s": round(rows / base["seconds"]),
        "import_rows_per_s": round(rows / first["seconds"]),
        "import_s": round(first["seconds"], 2),
        "import_vs_baseline": round(base["seconds"] / first["seconds"], 3),
        # CPU seconds: steadier than wall time on a shared machine
        "baseline_cpu_s": round(base["cpu"], 2),
        "import_cpu_s": round(first["cpu"], 2),
        "import_vs_baseline_cpu": round(base["cpu"] / first["cpu"], 3),
        # the search index is folded after the import, not in it (tracker.search_index): its cost, apart
        "search_fold_s": round(fold["seconds"], 2),
        "search_fold_cpu_s": round(fold["cpu"], 2),
        "search_fold_rows": fold["rows"],
        "reimport_rows_per_s": round(rows / again["seconds"]),
        "reimport_changes": again["changes"],
        "baseline_peak_rss_mb": round(base["maxrss_kb"] / 1024, 1),
        "import_peak_rss_mb": round(first["maxrss_kb"] / 1024, 1),
        "reimport_peak_rss_mb": round(again["maxrss_kb"] / 1024, 1),
        "world_generator": writer is not None,
    }


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(run(n, ROOT / "bench" / "out" / "imports" / str(n)), indent=2))
