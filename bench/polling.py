"""Benchmark of `tracker poll` against the local carrier site, rate limits lifted.

`run(n_orders, workdir)` serves journeys for the three carriers from a local carrier site in a child
process (so the server's CPU is not the poller's), then measures in the same run:

- bare: one requests.Session request per page + lxml parse (json.loads for the JSON carriers) + executemany of the
  rows into a scratch table: no scheduling, no retries, no caps, no snapshots, no politeness;
- poll: `tracker.poll.poll` over the same pages (lanes per carrier host, lxml + cssselect
  adapters, snapshots, poll log, state, one transaction per batch);
- parse: ms per page of the HTML adapter against bare lxml, and of the JSON adapter against bare json.loads
  plus a loop over its events, on the same page bodies in memory;
- cpu: CPU ms per page of this process and of the site in each phase (less noisy than wall time on a
  shared machine);
- memory: RSS of the polling process at a quarter of a long poll and at its end (flat = no growth
  with the number of shipments).

Polling a page costs milliseconds, so sizes are capped (throughput 2,000 pages, memory 10,000 shipments
by default; BENCH_POLL_PAGES / BENCH_POLL_MEMORY override) to finish in a couple of minutes at any
n_orders. Run alone: `python -m bench.polling 20000`.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import random
import resource
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CARRIERS = ("cainiao", "chinapost", "yunexpress")
NOW = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)
DESTS = [("Madrid", "28013", "ES"), ("Paris", "75001", "FR"), ("Austin", "78701", "US"), ("Seoul", "04524", "KR"),
         ("Warszawa", "00-001", "PL"), ("São Paulo", "01310-100", "BR")]


def number(carrier: str, i: int) -> str:
    return {"cainiao": f"LP{i:014d}", "yunexpress": f"YT{i:016d}"}.get(carrier, f"RR{i:09d}CN")


def shipments(n: int) -> list[tuple[str, str]]:
    return [(number(CARRIERS[i % 3], i), CARRIERS[i % 3]) for i in range(n)]


def build_journeys(n: int) -> dict[str, list[dict[str, Any]]]:
    from tracker.carriersite.journeys import make_journey

    rng = random.Random(11)
    out = {}
    for tn, carrier in shipments(n):
        start = NOW - timedelta(days=rng.uniform(3, 25))
        out[tn] = make_journey(tn, carrier, start, stages=rng.randint(5, 15), dest=rng.choice(DESTS),
                               gap=timedelta(hours=rng.uniform(8, 30)))
    return out


def _serve(n: int, conn: Any) -> None:
    from tracker.carriersite import CarrierSite

    # no page cache: the bare loop and the poller each make the site render every page
    site = CarrierSite(build_journeys(n), as_of=NOW, cache_pages=False).start()
    conn.send(site.base_url)
    conn.recv()  # until told to stop
    site.stop()


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default): a figure the machine's other load
    moves far less than wall time does."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reaped_children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished (waited-for) child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _bare_rows(carrier: str, tn: str, body: bytes) -> list[tuple[str, str, str, str]]:
    import lxml.html

    if carrier == "cainiao":
        doc = json.loads(body)
        return [(tn, d["timeStr"], d["desc"], d["city"]) for d in doc["module"][0]["detailList"]]
    if carrier == "yunexpress":
        doc = json.loads(body)
        return [(tn, d["CreatedOn"], d["ProcessContent"], d["ProcessLocation"])
                for d in (doc["ResultList"][0]["TrackInfo"] or {}).get("TrackEventDetails", [])]
    tree = lxml.html.fromstring(body)
    return [(tn, *(td.text_content() for td in tr.xpath("td")[0:4:1][:3]))
            for tr in tree.xpath("//table[@class='track-list']/tbody/tr")]


def bare_loop(base_url: str, items: list[tuple[str, str]], workdir: Path) -> tuple[float, list]:
    """Pages a second of the simplest possible poller; also returns (carrier, tn, body) for the parse bench."""
    import requests

    from tracker.carriers import load_carriers

    carriers = load_carriers()
    conn = sqlite3.connect(workdir / "bare.db")
    conn.execute("DROP TABLE IF EXISTS events")
    conn.execute("CREATE TABLE events (tracking_number TEXT, at TEXT, description TEXT, place TEXT)")
    session = requests.Session()
    bodies = []
    t0 = time.perf_counter()
    rows: list = []
    for i, (tn, carrier) in enumerate(items):
        request = carriers[carrier].request(tn, base_url)
        body = session.request(request.method, request.url, data=request.body, headers=request.headers,
                               timeout=10).content
        rows.extend(_bare_rows(carrier, tn, body))
        if i < 600:
            bodies.append((carrier, tn, body))
        if len(rows) >= 2000:
            with conn:
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)
            rows = []
    with conn:
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)
    seconds = time.perf_counter() - t0
    conn.close()
    return len(items) / seconds, bodies


def parse_times(bodies: list) -> dict[str, float]:
    from tracker.carriers import Page, load_carriers, parse_page

    carriers = load_carriers()
    pages = [(carriers[c], tn, Page("u", 200, "text/html" if c == "chinapost" else "application/json", b, "utf-8"),
              c) for c, tn, b in bodies]
    html = [p for p in pages if p[3] == "chinapost"]
    t0 = time.perf_counter()
    for carrier, tn, page, _ in html:
        parse_page(carrier, page, tn)
    ours = (time.perf_counter() - t0) / len(html) * 1000
    t0 = time.perf_counter()
    for _carrier, tn, page, name in html:
        _bare_rows(name, tn, page.body)
    bare = (time.perf_counter() - t0) / len(html) * 1000
    # the same carrier file with lxml's own tree instead of BeautifulSoup's (`parser = "lxml"`)
    lxml_carrier = dataclasses.replace(carriers["chinapost"], cache={}, settings={
        **carriers["chinapost"].settings, "html": {**carriers["chinapost"].settings["html"], "parser": "lxml"}})
    t0 = time.perf_counter()
    for _carrier, tn, page, _ in html:
        parse_page(lxml_carrier, page, tn)
    ours_lxml = (time.perf_counter() - t0) / len(html) * 1000
    js = [p for p in pages if p[3] != "chinapost"]
    t0 = time.perf_counter()
    for carrier, tn, page, _ in js:
        parse_page(carrier, page, tn)
    ours_json = (time.perf_counter() - t0) / len(js) * 1000
    t0 = time.perf_counter()
    for _carrier, tn, page, name in js:
        _bare_rows(name, tn, page.body)
    bare_json = (time.perf_counter() - t0) / len(js) * 1000
    return {"parse_html_ms_per_page": round(ours, 3), "parse_html_bare_lxml_ms_per_page": round(bare, 3),
            "parse_html_ratio_ours_over_bare": round(ours / bare, 2),
            "parse_html_lxml_parser_ms_per_page": round(ours_lxml, 3),
            "parse_html_lxml_parser_ratio_over_bare": round(ours_lxml / bare, 2),
            "parse_json_ms_per_page": round(ours_json, 3), "parse_json_bare_ms_per_page": round(bare_json, 3),
            "parse_json_ratio_ours_over_bare": round(ours_json / bare_json, 2)}


def fresh_store(path: Path, items: list[tuple[str, str]]):  # noqa: ANN201
    from tracker.db import open_db

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = open_db(path)
    with db.conn:
        db.conn.executemany("INSERT INTO shipments (tracking_number, carrier, state, first_seen_at, next_poll_at) "
                            "VALUES (?, ?, 'pending', '2026-09-01T00:00:00Z', '2026-09-01T00:00:00Z')", items)
    return db


def run(n_orders: int, workdir: Path) -> dict:
    from tracker.poll import poll

    workdir.mkdir(parents=True, exist_ok=True)
    n_pages = min(n_orders, int(os.environ.get("BENCH_POLL_PAGES", 2000)))
    n_memory = min(n_orders, int(os.environ.get("BENCH_POLL_MEMORY", 10000)))
    n_site = max(n_pages, n_memory)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(n_site, child), daemon=True)
    server.start()
    base_url = parent.recv()
    result: dict[str, Any] = {"n_orders": n_orders, "throughput_pages": n_pages, "memory_shipments": n_memory}
    try:
        items = shipments(n_pages)
        cpu0, server0 = cpu_seconds(), cpu_seconds(server.pid)
        bare_rate, bodies = bare_loop(base_url, items, workdir)
        cpu1, server1 = cpu_seconds(), cpu_seconds(server.pid)
        db = fresh_store(workdir / "poll.db", items)
        cpu2, server2, kids2 = cpu_seconds(), cpu_seconds(server.pid), reaped_children_cpu_seconds()
        summary = poll(db, NOW, base_url=base_url, ignore_rate_limits=True)
        cpu3, server3, kids3 = cpu_seconds(), cpu_seconds(server.pid), reaped_children_cpu_seconds()
        db.close()
        ours_rate = summary.polled / summary.seconds
        result.update({
            "bare_pages_per_s": round(bare_rate, 1),
            "poll_pages_per_s": round(ours_rate, 1),
            "poll_ratio_to_bare": round(ours_rate / bare_rate, 3),
            # diagnostics: CPU per page of this (client) process and of the carrier site, each phase
            "bare_client_cpu_ms_per_page": round((cpu1 - cpu0) / n_pages * 1000, 3),
            "poll_client_cpu_ms_per_page": round((cpu3 - cpu2) / n_pages * 1000, 3),
            # the poller's parse worker process (reaped when the poll ends; 0 when it parsed in-process)
            "poll_worker_cpu_ms_per_page": round((kids3 - kids2) / n_pages * 1000, 3),
            "bare_site_cpu_ms_per_page": round((server1 - server0) / n_pages * 1000, 3),
            "poll_site_cpu_ms_per_page": round((server3 - server2) / n_pages * 1000, 3),
            "poll_ok": summary.outcomes["ok"],
            "poll_events_added": summary.events_added,
        })
        result.update(parse_times(bodies))

        # memory: one long poll; RSS sampled as batches are written
        db = fresh_store(workdir / "memory.db", shipments(n_memory))
        samples: list[tuple[int, float]] = []
        rss_start = rss_mb()
        summary = poll(db, NOW, base_url=base_url, ignore_rate_limits=True,
                       progress=lambda done, due: samples.append((done, rss_mb())))
        db.close()
        quarter = next((rss for done, rss in samples if done >= n_memory // 4), rss_start)
        result.update({
            "memory_poll_pages_per_s": round(summary.polled / summary.seconds, 1),
            "rss_start_mb": round(rss_start, 1),
            "rss_at_quarter_mb": round(quarter, 1),
            "rss_end_mb": round(rss_mb(), 1),
            "rss_peak_sampled_mb": round(max([r for _, r in samples] or [rss_start]), 1),
            "rss_growth_quarter_to_end_mb": round(rss_mb() - quarter, 1),
        })
    finally:
        parent.send("stop")
        server.join(timeout=10)
        if server.is_alive():
            server.kill()
    return result


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    print(json.dumps(run(n, Path(sys.argv[2]) if len(sys.argv) > 2 else Path("bench/out/polling")), indent=2))
