"""Benchmark of `tracker detect`'s rules: a full run, a second one, and an incremental run after 1% of orders changed.

`run(n_orders, workdir)` builds a store of `n_orders` orders with about 8 tracking events each (directly,
with executemany, so the figure measures detection, not importing; built once and copied for later runs),
then times:

- baseline: one bare `SELECT count(*), max(occurred_at) FROM tracking_events GROUP BY tracking_number`
  (the floor any per-number aggregation pays);
- full: `run_rules(full=True)` on the new store: every number's shipment facts computed (and stored), then
  every rule over every order;
- full again: the same once more, the facts already stored (what `detect --full` costs from then on);
- incremental: after touching 1% of orders (new events on their numbers), `run_rules()`.

A big store's whole-store reads run in two child processes (`tracker.detection.arrow`): their CPU is reported
apart, and peak memory is that of the whole process tree, sampled every 20 ms from /proc (with, beside it,
the bound of the process's own peak plus both readers at their peak at once). Run alone: `python -m bench.detect 100000`.
"""

from __future__ import annotations

import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CITIES = {
    "RU": [("Moscow", "101000"), ("Kazan", "420066"), ("Saint Petersburg", "190000"), ("Novosibirsk", "630099")],
    "ES": [("Madrid", "28013"), ("Málaga", "29001"), ("Barcelona", "08001")],
    "BR": [("São Paulo", "01310-100"), ("Rio de Janeiro", "20040-020")],
    "FR": [("Paris", "75001"), ("Lyon", "69001")],
    "US": [("New York", "10001"), ("Austin", "78701")],
}
FMT = "%Y-%m-%dT%H:%M:%SZ"
START = datetime(2026, 6, 1, tzinfo=UTC)
JOURNEY = [  # raw_code, status, hours after shipping (min, max), where
    ("GWMS_ACCEPT", "info_received", (0, 6), "origin"),
    ("PU_PICKUP_SUCCESS", "in_transit", (12, 48), "origin"),
    ("SC_OUTBOUND_SUCCESS", "in_transit", (30, 72), "origin"),
    ("CC_EX_SUCCESS", "in_transit", (60, 120), "origin"),
    ("LH_DEPART", "in_transit", (80, 160), "origin"),
    ("CC_IM_SUCCESS", "in_transit", (200, 400), "capital"),
    ("GTMS_DO_ARRIVE", "in_transit", (300, 500), "dest"),
    ("GTMS_SIGNED", "delivered", (320, 560), "dest"),
]


def synth(db, n_orders: int, seed: int = 7, chunk: int = 50_000) -> dict[str, int]:  # noqa: ANN001
    """Fill the store with n_orders orders (about 8 scans each, grouped by parcel as an import writes them)
    and some seller messages; about 4% carry fraud. In chunks, so memory stays flat at any size."""
    totals = {"orders": 0, "events": 0, "messages": 0}
    for first in range(0, n_orders, chunk):
        part = _synth_chunk(db, first, min(chunk, n_orders - first), seed + first)
        for key, value in part.items():
            totals[key] += value
    with db.conn:
        db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", [str(n_orders)])
    return totals


def _synth_chunk(db, first: int, n: int, seed: int) -> dict[str, int]:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    places = [(c, city, pc) for c, cities in CITIES.items() for city, pc in cities]
    countries = list(CITIES)
    offsets = np.cumsum([0] + [len(CITIES[c]) for c in countries])[:-1]
    sizes = np.array([len(CITIES[c]) for c in countries])
    country_idx = rng.integers(0, len(countries), n)
    place_idx = offsets[country_idx] + (rng.random(n) * sizes[country_idx]).astype(int)
    start = int(START.timestamp())
    ordered = start + rng.integers(0, 90 * 86400, n)
    shipped = ordered + rng.integers(4 * 3600, 96 * 3600, n)
    kind = rng.random(n)
    digits = rng.integers(0, 10**8, n)
    weights = np.array((8, 6, 4, 2, 3, 5, 9, 7))
    digit_matrix = (digits[:, None] // 10 ** np.arange(7, -1, -1)) % 10
    check = 11 - (digit_matrix @ weights) % 11
    check = np.where(check == 10, 0, np.where(check == 11, 5, check))
    check = np.where(kind < 0.01, (check + 1) % 10, check)  # invalid numbers
    letters = rng.choice(list("ABCDEGHLR"), n)
    use_lp = (rng.random(n) < 0.5) & (kind >= 0.01)
    lp_serial = rng.integers(0, 10**10, n)
    numbers = [f"LP00{lp_serial[i]:010d}" if use_lp[i] else f"R{letters[i]}{digits[i]:08d}{check[i]}CN" for i in range(n)]
    order_ids = [f"O{first + i:08d}" for i in range(n)]

    def text(seconds: np.ndarray) -> np.ndarray:
        return np.char.add(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s"), "Z")

    stage_times = np.stack([shipped + (rng.uniform(lo, hi, n) * 3600).astype(np.int64)
                            for _, _, (lo, hi), _ in JOURNEY], axis=1)
    stage_text = text(stage_times.ravel()).reshape(n, len(JOURNEY))
    delivered_at = stage_times[:, -1]
    confirmed = delivered_at + (rng.uniform(0.5, 5, n) * 86400).astype(np.int64)
    wrong_dest = (kind >= 0.01) & (kind < 0.02)
    never_moves = (kind >= 0.02) & (kind < 0.03)
    received = np.where((kind >= 0.03) & (kind < 0.04), "no", "yes")

    orders, events, messages = [], [], []
    ordered_text, shipped_text, confirmed_text = text(ordered), text(shipped), text(confirmed)
    eid = first * 10
    for i in range(n):
        country, city, postcode = places[place_idx[i]]
        capital_city, capital_pc = CITIES[country][0]
        dest = (city, postcode + "9" if wrong_dest[i] else postcode, country)
        number = numbers[i]
        stages = JOURNEY[:1] if never_moves[i] else JOURNEY
        for j, (code, status, _, where) in enumerate(stages):
            place = ("Shenzhen", "518000", "CN") if where == "origin" else \
                (capital_city, capital_pc, country) if where == "capital" else dest
            eid += 1
            events.append((number, stage_text[i, j], status, code, code, f"{place[0]}, {place[2]}", place[0],
                           place[1], place[2], "cainiao", "import", f"k{eid}"))
        if kind[i] < 0.05 or kind[i] > 0.8:
            pressure = kind[i] < 0.05
            messages.append((order_ids[i], "seller", shipped_text[i],
                             "Dear friend, please confirm receipt now and give 5 stars" if pressure
                             else "Your parcel has been shipped, thank you", f"m{first + i}"))
        orders.append((order_ids[i], f"B{first + i:08d}", f"S{(first + i) % 2000:05d}", ordered_text[i], country,
                       city, postcode, number, number, "cainiao", shipped_text[i], 60,
                       None if never_moves[i] else confirmed_text[i], received[i], first + i + 1))
    with db.conn:
        db.conn.executemany(
            "INSERT INTO orders (order_id, buyer_id, seller_id, ordered_at, dest_country, dest_city, dest_postcode,"
            " tracking_number, tracking_number_raw, carrier, shipped_at, promised_days, buyer_confirmed_at,"
            " buyer_received, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", orders)
        db.conn.executemany(
            "INSERT INTO tracking_events (tracking_number, occurred_at, status, raw_code, description, location,"
            " city, postcode, country, carrier, source, event_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", events)
        db.conn.executemany(
            "INSERT INTO messages (order_id, sender, sent_at, text, message_key) VALUES (?,?,?,?,?)", messages)
    return {"orders": len(orders), "events": len(events), "messages": len(messages)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeMemory:
    """Samples the RSS of this process plus all its descendants (from /proc) every few milliseconds: the
    memory detect really holds at once, its child readers included."""

    def __init__(self, every_s: float = 0.02):
        import threading

        self.every_s, self.peak_mb = every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree_rss_mb() -> float:
        import os

        parent_of: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        parent_of[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, grown = {os.getpid()}, True
        while grown:
            more = {pid for pid, ppid in parent_of.items() if ppid in tree} - tree
            tree |= more
            grown = bool(more)
        total = 0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, self._tree_rss_mb())

    def __enter__(self) -> TreeMemory:
        self.peak_mb = self._tree_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _children() -> tuple[float, float]:
    """CPU seconds of the finished child processes (detect's readers) and the largest one's peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _detect_phase(path: str, n_orders: int) -> dict:
    """Full run, then an incremental run after 1% of orders changed; in a fresh process for a clean RSS."""
    from tracker.db import open_db
    from tracker.detection import flagging
    from tracker.events import insert_events

    db = open_db(path)
    as_of = START + timedelta(days=150)
    t = time.perf_counter()
    db.conn.execute("SELECT count(*), max(occurred_at) FROM tracking_events GROUP BY tracking_number").fetchall()
    baseline_s = time.perf_counter() - t

    # the message model's import (scikit-learn, seconds) is paid once per process, not per order
    t = time.perf_counter()
    try:
        from tracker.detection import registry

        registry.message_pressure(["warm up"])
    except Exception:  # noqa: BLE001 - the baseline is used then
        pass
    model_load_s = time.perf_counter() - t

    rss_before = _rss_mb()
    child_cpu_before, _ = _children()
    t, cpu = time.perf_counter(), time.process_time()
    with TreeMemory() as tree:
        full = flagging.run_rules(db, as_of, full=True)
    full_s, full_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    rss_full = _rss_mb()
    child_cpu, child_rss = _children()
    child_cpu -= child_cpu_before

    t = time.perf_counter()
    flagging.run_rules(db, as_of, full=True)
    again_s = time.perf_counter() - t

    rng = random.Random(1)
    changed = rng.sample(range(n_orders), max(1, n_orders // 100))
    numbers = [db.conn.execute("SELECT tracking_number FROM orders WHERE order_id = ?", [f"O{i:08d}"]).fetchone()[0]
               for i in changed]
    with db.conn:
        insert_events(db, [{"tracking_number": n, "occurred_at": (as_of - timedelta(hours=1)).strftime(FMT),
                            "status": "in_transit", "description": "re-scan", "city": "Shenzhen",
                            "country": "CN", "raw_code": "SC_INBOUND_SUCCESS", "source": "import"} for n in numbers])
    t = time.perf_counter()
    inc = flagging.run_rules(db, as_of + timedelta(hours=1))
    inc_s = time.perf_counter() - t
    db.close()
    return {
        "baseline_group_by_s": round(baseline_s, 3),
        "model_load_s": round(model_load_s, 2),
        "full_s": round(full_s, 3),
        "full_cpu_s": round(full_cpu_s, 3),  # the detecting process itself
        "full_children_cpu_s": round(child_cpu, 3),  # its child readers (two at a time) and the facts' writer
        "full_over_baseline": round(full_s / baseline_s, 2) if baseline_s else None,
        "full_flags_raised": full.raised,
        "full_again_s": round(again_s, 3),  # the facts stored by the first run
        "incremental_examined": len(inc.order_ids),
        "incremental_s": round(inc_s, 3),
        "incremental_over_full": round(inc_s / full_s, 4) if full_s else None,
        # the detecting process and its readers together, sampled every 20 ms during the full run (and never
        # less than the process's own peak, which a sample may fall just short of)
        "detect_peak_rss_mb": round(max(tree.peak_mb, rss_full, _rss_mb()), 1),
        "detect_process_peak_rss_mb": round(max(rss_full, _rss_mb()), 1),
        "reader_peak_rss_mb": round(child_rss, 1),
        # a bound that needs no sampling: the process's peak plus both readers at their peak at once
        "detect_peak_bound_mb": round(max(rss_full, _rss_mb()) + 2 * child_rss, 1),
        "rss_before_detect_mb": round(rss_before, 1),
    }


def run(n_orders: int, workdir: Path) -> dict:
    import hashlib
    import inspect
    import json
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    from tracker.db import open_db

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"detect-{n_orders}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    # the synthetic store is deterministic: built once per version of its builder, then copied for each run
    recipe = hashlib.sha256((inspect.getsource(synth) + inspect.getsource(_synth_chunk)).encode()).hexdigest()[:12]
    base = workdir / f"detect-{n_orders}-{recipe}.base.db"
    sizes_file = base.with_suffix(".json")
    t = time.perf_counter()
    if base.exists() and sizes_file.exists():
        sizes = json.loads(sizes_file.read_text())
    else:
        for old in workdir.glob(f"detect-{n_orders}-*.base.*"):
            old.unlink()
        db = open_db(base)
        sizes = synth(db, n_orders)
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        sizes_file.write_text(json.dumps(sizes))
    shutil.copyfile(base, path)
    build_s = time.perf_counter() - t
    # a fresh process for a clean RSS; not a Pool worker: those are daemons, and detect starts its own children
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        figures = pool.submit(_detect_phase, str(path), n_orders).result()
    path.unlink(missing_ok=True)  # the base stays for the next run
    return {"orders": sizes["orders"], "events": sizes["events"], "build_s": round(build_s, 2), **figures}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    out = run(n, Path(sys.argv[2]) if len(sys.argv) > 2 else Path("bench/out"))
    for key, value in out.items():
        print(f"{key}: {value}")
