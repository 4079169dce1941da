"""Carriers end to end: a new layout added as one TOML file, 17TRACK in batches, pages about another
parcel, adapters from another package, and the hand-polling steps of docs/carriers.md."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_poll_support import FAST, FAST_TOML
from tracker import config
from tracker.carriersite import CarrierSite
from tracker.carriersite.journeys import make_journey
from tracker.poll import poll
from tracker.timeutil import parse_time

ROOT = Path(__file__).resolve().parent.parent


class RecordedSite:
    """Serves fixed pages (path -> (content type, body)) on 127.0.0.1, as a carrier's own site would."""

    def __init__(self, pages: dict[str, tuple[str, bytes]]):
        pages_ = pages

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                found = pages_.get(self.path)
                status, (ctype, body) = (200, found) if found else (404, ("text/html", b"<html>404</html>"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


NEW_LAYOUT = """
name = "acmepost"
label = "Acme Post"
adapter = "html"
url = "https://track.acmepost.example/parcel/{number}"
number_pattern = '^AC\\d{9}ES$'
rate_per_second = 1
timezone = "Europe/Madrid"

[html]
rows = "ul.scans li"
time = ["span.day", "span.hour"]
description = "span.what"
location = "span.where"
page_number = "h1.parcel"
not_found_markers = ["Unknown parcel"]

[location]
pattern = '^(?P<city>.+?)\\s+-\\s+(?P<country>[A-Za-z ]+)$'
country_format = "name"

[words]
"Accepted in origin" = { status = "in_transit", code = "PU_PICKUP_SUCCESS" }
"Arrived in destination country" = { status = "in_transit", code = "CC_IM_START" }
"At the delivery office" = { status = "in_transit", code = "GTMS_DO_ARRIVE" }
"Out for delivery" = { status = "out_for_delivery", code = "GTMS_DO_DEPART" }
"Delivered" = { status = "delivered", code = "GTMS_SIGNED" }
"""

SCANS = [  # (day, hour with zone as printed, text, place)
    ("21 Oct 2026,", "03:15 GMT+8", "Accepted in origin", "SHENZHEN IMC - China"),
    ("23 Oct 2026,", "22:40 CEST", "Arrived in destination country", "MADRID ADUANA - Spain"),
    ("26 Oct 2026,", "07:05", "At the delivery office", "MADRID CTM - Spain"),  # no zone: Madrid, now CET
    ("26 Oct 2026,", "09:30", "Out for delivery", "MADRID CTM - Spain"),
    ("26 Oct 2026,", "12:50 CET", "Delivered", "MADRID CTM - Spain"),
]
EXPECTED_UTC = ["2026-10-20T19:15:00Z", "2026-10-23T20:40:00Z", "2026-10-26T06:05:00Z", "2026-10-26T08:30:00Z",
                "2026-10-26T11:50:00Z"]


def acme_page(number: str) -> bytes:
    items = "".join(f'<li><span class="day">{d}</span> <span class="hour">{h}</span>'
                    f'<span class="what">{w}</span><span class="where">{p}</span></li>' for d, h, w, p in reversed(SCANS))
    return (f'<html><body><h1 class="parcel">Parcel {number}</h1><ul class="scans">{items}</ul></body></html>').encode()


@pytest.fixture
def fast_config(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "polling.toml").write_text(FAST_TOML)
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(folder))
    config.reload()
    yield folder
    config.reload()


def write_orders(path: Path, rows: list[dict]) -> Path:
    columns = ["order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
               "tracking_number", "carrier", "shipped_at", "promised_days", "buyer_received"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def test_a_new_layout_is_one_toml_file_stored_at_the_right_utc_times_with_no_false_flag(
        run_cli, db, tmp_path, fast_config, monkeypatch):
    carriers_dir = tmp_path / "carriers"
    carriers_dir.mkdir()
    (carriers_dir / "acmepost.toml").write_text(NEW_LAYOUT)
    monkeypatch.setenv("TRACKER_CARRIERS_DIR", str(carriers_dir))
    number = "AC123456789ES"
    orders = write_orders(tmp_path / "orders.csv", [{
        "order_id": "O1", "buyer_id": "B1", "seller_id": "S1", "ordered_at": "2026-10-19T10:00:00Z",
        "dest_country": "ES", "dest_city": "Madrid", "dest_postcode": "28013", "tracking_number": number,
        "carrier": "Acme Post", "shipped_at": "2026-10-20T10:00:00Z", "promised_days": "30",
        "buyer_received": "yes"}])
    assert run_cli("import", "orders", str(orders)).exit_code == 0
    with RecordedSite({f"/parcel/{number}": ("text/html; charset=utf-8", acme_page(number))}) as base:
        monkeypatch.setenv("TRACKER_CARRIER_BASE_URL", base)
        result = run_cli("poll", "--as-of", "2026-10-28T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert "1 ok" in result.output
    stored = db.conn.execute("SELECT occurred_at, status, city, country FROM tracking_events "
                             "ORDER BY occurred_at").fetchall()
    assert [r[0] for r in stored] == EXPECTED_UTC
    assert stored[-1][1:] == ("delivered", "MADRID CTM", "ES")
    assert run_cli("detect", "--as-of", "2026-10-28T00:00:00Z").exit_code == 0
    flags = json.loads(run_cli("flags", "--format", "json").output)
    assert [f for f in flags if f["code"] == "wrong_destination"] == []


def test_a_page_about_another_parcel_stores_nothing_and_is_kept(db, tmp_path, fast_config):
    other = "RS0814398526Y"
    journey = make_journey(other, "cainiao", parse_time("2026-09-01T00:00:00Z"))
    asked = ["RS0000000001Y", "RS0000000002Y"]
    with CarrierSite({other: journey}, as_of=parse_time("2026-09-30T00:00:00Z")) as site:
        body = site.page(site.routes[0], other, site.visible_events("cainiao", other))[1]
        site.journeys.update({n: journey for n in asked})  # the host answers every number with that page
        site.page = lambda route, number, events: ("application/json", body)
        db.conn.executemany("INSERT INTO shipments (tracking_number, carrier, state, next_poll_at) "
                            "VALUES (?, 'cainiao', 'pending', '1970-01-01T00:00:00Z')", [(n,) for n in asked])
        db.conn.commit()
        summary = poll(db, parse_time("2026-09-30T00:00:00Z"), base_url=site.base_url, settings=FAST,
                       ignore_rate_limits=True)
    assert summary.outcomes["wrong_parcel"] == 2 and summary.events_added == 0
    assert db.conn.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == 0
    rows = db.conn.execute("SELECT outcome, error, snapshot_sha256 FROM poll_log").fetchall()
    assert all(o == "wrong_parcel" and other in e and sha for o, e, sha in rows)
    assert db.conn.execute("SELECT count(*) FROM page_snapshots WHERE sha256 = ?", [rows[0][2]]).fetchone()[0] == 1


def test_17track_polls_unclaimed_numbers_in_batches_and_registers_them(db, fast_config, monkeypatch):
    start = parse_time("2026-09-01T00:00:00Z")
    numbers = [f"ZZ{i:010d}" for i in range(45)]  # no carrier file claims these
    journeys = {n: make_journey(n, "", start, stages=6) for n in numbers}
    db.conn.executemany("INSERT INTO shipments (tracking_number, state, next_poll_at) "
                        "VALUES (?, 'pending', '1970-01-01T00:00:00Z')", [(n,) for n in numbers])
    db.conn.commit()
    now = parse_time("2026-09-10T00:00:00Z")
    with CarrierSite(journeys, as_of=now) as site:
        monkeypatch.delenv("TRACKER_17TRACK_TOKEN", raising=False)
        skipped = poll(db, now, base_url=site.base_url, settings=FAST, ignore_rate_limits=True)
        assert skipped.polled == 0 and site.track17.calls == []
        assert "17track skipped: 45 due shipments not polled, no API token (set TRACKER_17TRACK_TOKEN)" in skipped.line()

        monkeypatch.setenv("TRACKER_17TRACK_TOKEN", site.track17.token)
        first = poll(db, now, base_url=site.base_url, settings=FAST, ignore_rate_limits=True)
        assert first.routed["17track"] == 45
        # 2 gettrackinfo requests (40 + 5), each followed by one register request
        assert site.track17.calls == [("gettrackinfo", 40), ("register", 40), ("gettrackinfo", 5), ("register", 5)]
        assert first.outcomes["no_information"] == 45 and first.requests["17track"] == 4
        assert first.quota_used["17track"] == 45 and "17track: 4 batched requests, 45 of its daily quota used" in first.line()
        later = now + (parse_time("2026-09-11T00:00:00Z") - now)
        second = poll(db, later, base_url=site.base_url, settings=FAST, ignore_rate_limits=True)
    assert second.outcomes["ok"] == 45 and site.track17.registrations == 45
    stored = db.conn.execute("SELECT count(*), min(occurred_at) FROM tracking_events").fetchone()
    assert stored == (45 * 6, journeys[numbers[0]][0]["occurred_at"])
    assert {r[0] for r in db.conn.execute("SELECT DISTINCT carrier FROM shipments")} == {"17track"}


def test_an_adapter_from_another_package_is_loaded_through_the_entry_points(tmp_path):
    site = tmp_path / "site"
    (site / "pigeonpost").mkdir(parents=True)
    (site / "pigeonpost" / "__init__.py").write_text(
        "from tracker.carriers import ParseResult\n"
        "def parse(carrier, page, number):\n"
        "    return ParseResult('not_found', page_number=number)\n")
    dist = site / "pigeonpost-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pigeonpost\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tracker.adapters]\npigeon = pigeonpost:parse\n")
    carriers_dir = tmp_path / "carriers"
    carriers_dir.mkdir()
    (carriers_dir / "pigeon.toml").write_text(
        'name = "pigeon"\nadapter = "pigeon"\nurl = "https://pigeon.example/{number}"\n'
        "number_pattern = '^PG\\d+$'\nrate_per_second = 1\n")
    code = ("from tracker.carriers import adapters, load_carriers, parse_page, Page\n"
            "c = load_carriers()['pigeon']\n"
            "print('pigeon' in adapters(), parse_page(c, Page('u', 200, 'text/plain', b''), 'PG1').outcome)\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "TRACKER_CARRIERS_DIR": str(carriers_dir)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "not_found"]


def test_a_newly_imported_shipment_is_due_at_once_whatever_as_of_says(run_cli, db, tmp_path):
    orders = write_orders(tmp_path / "orders.csv", [{
        "order_id": "O1", "buyer_id": "B1", "seller_id": "S1", "ordered_at": "2020-01-01T00:00:00Z",
        "dest_country": "ES", "tracking_number": "RR473124829CN", "carrier": "China Post"}])
    assert run_cli("import", "orders", str(orders)).exit_code == 0
    due = db.conn.execute("SELECT count(*) FROM shipments WHERE next_poll_at <= '2020-01-02T00:00:00Z'")
    assert due.fetchone()[0] == 1


def test_the_hand_polling_steps_of_the_docs_work_as_written(tmp_path):
    """docs/carriers.md, "To try the poller by hand", run as written (with rate limits lifted)."""
    env = {**os.environ, "TRACKER_DB": str(tmp_path / "tracker.db"), "TRACKER_CONFIG_DIR": str(tmp_path)}
    env.pop("TRACKER_CARRIER_BASE_URL", None)
    (tmp_path / "polling.toml").write_text("[run]\nignore_rate_limits = true\n")
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen([sys.executable, "-m", "tracker.carriersite", "--orders", "300"], env=env,
                              stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = server.stdout.readline()
        assert line.startswith("export TRACKER_CARRIER_BASE_URL=http://127.0.0.1:")
        base_url = line.split("=", 1)[1].split()[0]
        as_of = line.split("as of ")[1].strip()
        env["TRACKER_CARRIER_BASE_URL"] = base_url

        def tracker(*args: str) -> str:
            out = subprocess.run([str(bin_dir / "tracker"), *args], env=env, cwd=tmp_path, capture_output=True,
                                 text=True, timeout=300)
            assert out.returncode == 0, out.stderr
            return out.stdout

        tracker("generate", "--orders", "300", "--out", "world")
        tracker("import", "orders", "world/orders.csv")
        started = time.monotonic()
        summary = tracker("poll", "--as-of", as_of)
    finally:
        server.terminate()
        server.wait(timeout=10)
    polled, due = summary.split("polled ")[1].split(" due")[0].split(" of ")
    assert int(polled) == int(due) > 200, summary
    assert int(summary.split(": ")[1].split(" ok")[0]) > 200 and time.monotonic() - started < 240
