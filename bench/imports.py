"""Benchmark of `tracker import`: the generated world's orders, scans and messages, each against its floor.

`run(n_orders, workdir)` imports the world (`bench.store.world_files`) into a new store kind by kind with
`tracker import KIND FILE`, as a user runs it (a subprocess: start-up included), and measures in the same run
each kind's floor in a fresh process: `csv.reader` over the same file, one key per row (the order id; for a
scan or a message the SHA-256 of its fields), `executemany` in batches of 100,000 rows in one transaction into
a table of the file's columns with a UNIQUE key and a (number, time) index ((order, time) for messages), with
the page cache sized as the importer sizes it. No validation, no normalisation, no upsert, no shipments.

On a shared machine a noisy minute lands on one side of a comparison only, so a kind's floor and import run in
turns, `REPEATS` times (the orders and messages three times; the scans, most of the world, once), and each
side's best time counts (the store each import of a turn but the last goes into is a copy of the one it would
have found; the last builds the run's store). Figures per kind: rows, seconds, rows per second, the floor's, the
floor's seconds over the import's (the target is at least 0.8), every turn's seconds, and peak memory; and a
re-import of the orders (nothing may change). The store it built is the one the later areas of this run copy.
Run alone: `python -m bench.imports 100000`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bench import store

ROOT = Path(__file__).resolve().parent.parent

_FLOOR = r"""
import csv, hashlib, itertools, json, os, resource, sqlite3, sys, time
from tracker.importers import cache_kib
kind, src, dbfile = sys.argv[1], sys.argv[2], sys.argv[3]
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(dbfile + suffix):
        os.unlink(dbfile + suffix)
conn = sqlite3.connect(dbfile)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=NORMAL")
with open(src, newline="", encoding="utf-8-sig") as fh:
    header = next(csv.reader(fh))
key, number, when = {"orders": ("order_id", "tracking_number", "ordered_at"),
                     "events": (None, "tracking_number", "occurred_at"),
                     "messages": (None, "order_id", "sent_at")}[kind]
columns = ", ".join(f"{c} TEXT" for c in header)
conn.execute(f"CREATE TABLE t ({columns}{'' if key else ', row_key TEXT NOT NULL'}, UNIQUE({key or 'row_key'}))")
conn.execute(f"CREATE INDEX t_number_time ON t({number}, {when})")
conn.commit()
conn.execute(f"PRAGMA cache_size = -{cache_kib(conn, src)}")
sql = f"INSERT OR IGNORE INTO t VALUES ({', '.join('?' * (len(header) + (0 if key else 1)))})"
sha = hashlib.sha256
started, cpu = time.perf_counter(), time.process_time()
n = 0
with open(src, newline="", encoding="utf-8-sig") as fh:
    reader = csv.reader(fh)
    next(reader)
    with conn:
        while batch := list(itertools.islice(reader, 100_000)):
            rows = batch if key else [(*r, sha("\x1f".join(r).encode()).hexdigest()[:32]) for r in batch]
            conn.executemany(sql, rows)
            n += len(rows)
print(json.dumps({"rows": n, "s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
_COUNTS = re.compile(r"(\d+) inserted, (\d+) updated, (\d+) unchanged, (\d+) rejected")


def floor(kind: str, src: Path, scratch: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _FLOOR, kind, str(src), str(scratch)], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Each kind's import and floor run in turns, this many times, and each side's best time counts: on a shared
# machine a noisy minute would otherwise land on one side only. The scans, the bulk of the world, run once.
REPEATS = {"orders": 3, "events": 1, "messages": 3}


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["s"])


def run(n_orders: int, workdir: Path, repeats: dict[str, int] | None = None) -> dict:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    repeats = {**REPEATS, **(repeats or {})}
    root = store.shared(workdir, n_orders)
    for name in (store.STORE, store.DETECTED):  # this run's stores start here
        store.remove_store(root / name)
    folder = store.world_files(n_orders, root)
    path = root / store.STORE  # the store this run builds, kind by kind: the later areas copy it
    before = workdir / "before.db"  # the store as the kind's import finds it, for the turns before the last
    trial = workdir / "trial.db"
    for name in (before, trial):
        store.remove_store(name)
    out: dict = {"orders": n_orders}
    for kind in store.KINDS:
        src = folder / f"{kind}.csv"
        turns = max(1, int(repeats.get(kind, 1)))
        if turns > 1 and path.exists():
            store.copy_store(path, before)
        floors, imports = [], []
        for turn in range(turns):
            floors.append(floor(kind, src, workdir / "floor.db"))
            last = turn == turns - 1
            target = path if last else trial
            if not last:
                if before.exists():
                    store.copy_store(before, trial)
                else:
                    store.remove_store(trial)
            imports.append(store.command(target, "import", kind, str(src)))
        for name in (before, trial):
            store.remove_store(name)
        bare, mine = _best(floors), _best(imports)
        rows = bare["rows"]
        out[kind] = {
            "rows": rows,
            "file_mb": round(src.stat().st_size / 2**20, 1),
            "turns": turns,
            "import_s": round(mine["s"], 2),
            "import_rows_per_s": round(rows / mine["s"]),
            "floor_s": round(bare["s"], 2),
            "floor_rows_per_s": round(rows / bare["s"]),
            "floor_over_import": round(bare["s"] / mine["s"], 3),
            "import_s_each": [round(r["s"], 2) for r in imports],
            "floor_s_each": [round(r["s"], 2) for r in floors],
            "import_cpu_s": round(mine["cpu_s"], 2),
            "floor_cpu_s": round(bare["cpu_s"], 2),
            "import_peak_mb": round(max(r["peak_mb"] for r in imports), 1),
            "floor_peak_mb": round(max(r["peak_mb"] for r in floors), 1),
        }
    again = store.command(path, "import", "orders", str(folder / "orders.csv"))
    counts = _COUNTS.search(again["out"])
    out["reimport_orders_s"] = round(again["s"], 2)
    out["reimport_orders_written"] = int(counts.group(1)) + int(counts.group(2)) if counts else None
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(json.dumps(run(n, ROOT / "bench" / "out" / "imports" / str(n)), indent=2))
