"""README screenshots of a real database: `python -m tracker.dashboard.screenshots --db DB --out DIR`.

Starts `tracker serve` on a free loopback port, signs in with the printed root link, and saves
my-reports.png, case.png (the case with the largest reuse cluster, or --case) and charts.png.
Needs Chromium at /usr/bin/chromium. The README's images come from `tracker demo --orders 2000`.
"""

from __future__ import annotations

import argparse
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _busiest_case(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT c.id FROM cases c JOIN orders o ON o.order_id = c.order_id "
            "JOIN orders other ON other.tracking_number = o.tracking_number "
            "GROUP BY c.id ORDER BY count(*) DESC, c.id LIMIT 1"
        ).fetchone()
        return row[0] if row else 1
    finally:
        conn.close()


def take(db: Path, out: Path, case_id: int | None = None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    case_id = case_id or _busiest_case(db)
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "tracker", "--db", str(db), "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        link = ""
        while not link:
            line = server.stdout.readline() if server.stdout else ""
            if not line:
                raise RuntimeError("tracker serve stopped before printing its sign-in link")
            if "/-/auth-token?token=" in line:
                link = line.split(": ", 1)[1].strip()
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/-/login", timeout=2)  # the one page open before signing in
                break
            except OSError:
                time.sleep(0.2)
        out.mkdir(parents=True, exist_ok=True)
        shots = [out / "my-reports.png", out / "case.png", out / "charts.png"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(link)
            page.goto(base + "/-/my-reports")
            page.screenshot(path=str(shots[0]), full_page=True)
            page.goto(f"{base}/-/case/{case_id}")
            page.screenshot(path=str(shots[1]), full_page=True)
            page.goto(base + "/-/dashboards/tracker")
            page.wait_for_function("document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length >= 4")
            page.screenshot(path=str(shots[2]), full_page=True)
            browser.close()
        return shots
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--out", default=Path("docs/screenshots"), type=Path)
    parser.add_argument("--case", type=int, default=None, help="case id for case.png (default: largest reuse cluster)")
    args = parser.parse_args()
    for path in take(args.db, args.out, args.case):
        print(path)


if __name__ == "__main__":
    main()
