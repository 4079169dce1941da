"""Benchmark of `tracker detect --engine dask` against the in-process `tracker detect --full`, side by side.

`run(n_orders, workdir)` copies the store this size's run imported from the generated world (`bench.store`: its
reuse clusters, sellers and chat; built now if no earlier area left one), then, each in a fresh process:

- in process: `tracker detect --full` (facts, rules, scores, cases) on one copy;
- on a cluster: `tracker detect --engine dask` on another copy, a LocalCluster of 2 worker processes (one thread
  each) on this machine: the first export of the Parquet mirror, then every stage on the workers, the merge
  into the store and the cases; then once more, the mirror's export now incremental (nothing changed).
  Dask's task stream gives the worker seconds each stage computed (what a bigger cluster shares out);
- one bucket: the largest bucket's tasks one after another in a fresh process, its peak memory (Linux's
  VmHWM, reset before them) over the process's own after its imports and models (what a worker needs per task
  at this bucket size).

Both answers are compared (`bench.parity.digest`: flags and scores). Peak memory is that of the whole process
tree (`bench.store.OwnTreeMemory`: the cluster's scheduler and workers included), sampled from a process of its
own: a sampling thread in this process slowed the in-process run by several seconds. On 2 cores a cluster of 2
workers shares them with its scheduler and the client; what it shows is the cost of going through Parquet and
Dask, not a speed-up. Run alone: `python -m bench.dask 100000`.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _as_of() -> Any:
    from bench.store import AS_OF
    from tracker.timeutil import parse_time

    return parse_time(AS_OF)


def _base(workdir: Path, n_orders: int) -> tuple[Path, dict]:
    """The store this size's run imported from the generated world, and its orders and scans."""
    import sqlite3

    from bench import store

    base = store.store(n_orders, store.shared(workdir, n_orders))
    conn = sqlite3.connect(base)
    sizes = {"orders": conn.execute("SELECT count(*) FROM orders").fetchone()[0],
             "events": conn.execute("SELECT count(*) FROM tracking_events").fetchone()[0]}
    conn.close()
    return base, sizes


class _Tree:
    """The peak memory of this process and every child it starts, while the block runs."""

    def __enter__(self) -> _Tree:
        from bench.store import OwnTreeMemory

        self.memory = OwnTreeMemory()  # from a process of its own: a thread here would slow what it measures
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mb = self.memory.stop()


def _in_process(path: str) -> dict:
    from tracker.db import open_db
    from tracker.detection import pipeline

    db = open_db(path)
    t = time.perf_counter()
    with _Tree() as tree:
        summary = pipeline.detect(db, _as_of(), full=True)
    seconds = time.perf_counter() - t
    db.close()
    return {"local_s": round(seconds, 2), "local_peak_rss_mb": round(tree.peak_mb, 1),
            "local_stages_s": {k: round(v, 2) for k, v in summary.seconds.items()}, "flags": summary.flags_raised,
            "scored": summary.scored}


def _compute_seconds(tasks: list[dict]) -> dict[str, float]:
    """Worker seconds spent computing, by stage (the task's function), from Dask's task stream."""
    stages = {"facts_and_candidates": "facts", "lookups": "corrections", "rules": "rules", "scores": "scores"}
    out: dict[str, float] = {}
    for task in tasks:
        name = str(task.get("key", ""))
        name = name[0] if isinstance(task.get("key"), tuple) else name
        stage = next((v for k, v in stages.items() if name.startswith(k)), "dataframes (route, totals)")
        seconds = sum(s["stop"] - s["start"] for s in task.get("startstops", ()) if s.get("action") == "compute")
        out[stage] = out.get(stage, 0.0) + seconds
    return {k: round(v, 2) for k, v in sorted(out.items())}


def _on_cluster(path: str, workers: int) -> dict:
    import logging

    from distributed import Client, LocalCluster, get_task_stream

    from tracker.db import open_db
    from tracker.detection import cluster

    db = open_db(path)
    as_of = _as_of()
    out: dict = {"workers": workers}
    with _Tree() as tree:
        t = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as local, Client(local):
            out["cluster_start_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            with get_task_stream() as stream:
                first = cluster.detect(db, as_of, scheduler=local.scheduler_address, progress=False)
            out["dask_s"] = round(time.perf_counter() - t, 2)
            out["worker_compute_s"] = _compute_seconds(stream.data)
            out["dask_stages_s"] = first.seconds
            t = time.perf_counter()
            again = cluster.detect(db, as_of, scheduler=local.scheduler_address, progress=False)
            out["dask_again_s"] = round(time.perf_counter() - t, 2)
            out["dask_again_stages_s"] = again.seconds
    out["dask_peak_rss_mb"] = round(tree.peak_mb, 1)
    out["flags"], out["scored"] = first.flags_raised, first.scored
    db.close()
    mirror = Path(path).with_suffix(".parquet")
    sizes = {folder.name: round(sum(f.stat().st_size for f in folder.rglob("*.parquet")) / 2**20, 1)
             for folder in mirror.iterdir() if folder.is_dir()}
    out["mirror_mb"] = round(sum(v for k, v in sizes.items() if k != "_detect"), 1)
    out["mirror_mb_by_table"] = {k: v for k, v in sizes.items() if k != "_detect"}
    out["run_results_mb"] = sizes.get("_detect", 0.0)
    return out


def _rows(destination: Any, manifest: Any, table: str, bucket: int) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(destination.path(p), filesystem=destination.fs).metadata.num_rows
               for p in manifest.paths(table, bucket))


def _one_bucket(path: str) -> dict:
    """The largest bucket's tasks one after another in this (fresh) process: its peak memory over the process's
    own after its imports, what one worker needs per task at this bucket size."""
    from tracker import config
    from tracker.db import open_db
    from tracker.detection import bucket_tasks, flagging, readers, registry, store
    from tracker.detection.buckets import Run
    from tracker.mirror.layout import Destination

    db = open_db(path)
    dest = str(Path(path).with_suffix(".parquet"))
    destination = Destination(dest)
    manifest = destination.read_manifest()
    rules = flagging.all_rules()
    run = Run(dest, manifest, _as_of(), flagging.load_settings(),
              dict(config.load("model").get("scoring", {})), tuple((r.code, r.version) for r in rules),
              store.disputes(db.conn, None))
    sizes = {b: _rows(destination, manifest, "orders", b) for b in range(run.buckets)}  # from the files' footers
    bucket = max(sizes, key=sizes.get)
    model, messages = registry.load_active_model(db).model, registry.message_model()
    typical = readers.kept_typical_transit(db.conn) or readers.typical_transit(db.conn)  # the cluster's run kept it
    base = _resident_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # the peak (VmHWM) from here on: the tasks', not the set-up's
        fh.write("5")
    t = time.perf_counter()
    bucket_tasks.facts_and_candidates(bucket, run)
    bucket_tasks.rules(bucket, run, bucket_tasks.Corrections(), messages)
    bucket_tasks.book(bucket, run, typical)
    bucket_tasks.scores(bucket, run, model, typical)
    seconds = time.perf_counter() - t
    events = _rows(destination, manifest, "events", bucket)
    db.close()
    return {"bucket_orders": sizes[bucket], "bucket_events": events, "bucket_tasks_s": round(seconds, 2),
            "bucket_task_peak_mb": round(_resident_mb("VmHWM") - base, 1), "worker_base_mb": round(base, 1)}


def _resident_mb(field: str) -> float:
    """This process's resident memory (VmRSS) or its peak since the last reset (VmHWM), from /proc."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024


def run(n_orders: int, workdir: Path, workers: int = 2) -> dict:
    from bench import parity, store

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    base, sizes = _base(workdir, n_orders)
    build_s = time.perf_counter() - t
    stores = {}
    for name in ("local", "dask"):
        stores[name] = workdir / f"{name}-{n_orders}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{stores[name]}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(stores[name].with_suffix(".parquet"), ignore_errors=True)
        store.copy_store(base, stores[name])
    # fresh processes for clean memory figures (not Pool workers: those are daemons, and detect starts children)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        local = pool.submit(_in_process, str(stores["local"])).result()
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        dask = pool.submit(_on_cluster, str(stores["dask"]), workers).result()
    same = parity.digest(stores["local"]) == parity.digest(stores["dask"])
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        dask |= pool.submit(_one_bucket, str(stores["dask"])).result()
    for path in stores.values():
        store.remove_store(path)
        shutil.rmtree(path.with_suffix(".parquet"), ignore_errors=True)
    return {"orders": sizes["orders"], "events": sizes["events"], "build_s": round(build_s, 2),
            "store_mb": round(base.stat().st_size / 2**20, 1), **local,
            **{k: v for k, v in dask.items() if k not in ("flags", "scored")},
            "dask_over_local": round(dask["dask_s"] / local["local_s"], 2) if local["local_s"] else None,
            "same_flags_and_scores": same}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    figures = run(n, Path(sys.argv[2]) if len(sys.argv) > 2 else Path("bench/out/dask"))
    for key, value in figures.items():
        print(f"{key}: {value}")
