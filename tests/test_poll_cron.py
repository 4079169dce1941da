"""The cron side: the CLI verbs, the run lock, kill -9 in mid-poll, politeness, a carrier from a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_poll_support import (
    FAST_TOML,
    NOW,
    add_journeys,
    carrier_site,
    count,
    journeys,
    run_poll,
    start_poll_midway,
)

from tracker import config
from tracker.carriersite import DEFAULT_ROUTES, CarrierSite, Route
from tracker.carriersite.journeys import make_journey
from tracker.poll import poll, run_lock

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def site():
    yield from carrier_site()


@pytest.fixture
def fast_env(tmp_path, monkeypatch, site):
    """The CLI's settings: fast timeouts and no rate limits, pointed at the local site."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "polling.toml").write_text(FAST_TOML)
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(conf))
    monkeypatch.setenv("TRACKER_CARRIER_BASE_URL", site.base_url)
    config.reload()
    yield conf
    config.reload()


def test_poll_command_prints_one_summary_line(run_cli, db, site, fast_env):
    site.journeys = journeys(1, stages=4)
    add_journeys(db, site.journeys)
    result = run_cli("poll", "--as-of", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("polled 3 of 3 due shipments")
    assert count(db, "SELECT count(*) FROM tracking_events") == 12


def test_poll_command_bad_input_is_exit_2(run_cli, db, fast_env):
    assert run_cli("poll", "--carrier", "pigeon").exit_code == 2
    assert run_cli("poll", "--as-of", "yesterday-ish").exit_code == 2
    assert run_cli("poll", "--limit", "0").exit_code == 2


def test_run_polls_then_detects(run_cli, db, site, fast_env, monkeypatch):
    import tracker.detection.pipeline

    site.journeys = journeys(1, stages=4)
    add_journeys(db, site.journeys)
    calls = []

    class Summary:
        def line(self):
            return "examined 3 orders"

    def fake_detect(database, as_of, **kw):
        calls.append((count(database, "SELECT count(*) FROM tracking_events"), as_of))
        return Summary()

    monkeypatch.setattr(tracker.detection.pipeline, "detect", fake_detect)
    result = run_cli("run", "--as-of", NOW.isoformat())
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [result.output.splitlines()[0], "detect: examined 3 orders"]
    assert result.output.startswith("polled 3 of 3")
    assert calls == [(12, NOW)]  # detect saw what the poll stored, at the same "now"


def test_run_without_a_detector_yet_still_exits_0(run_cli, db, site, fast_env, monkeypatch):
    import tracker.detection.pipeline

    def not_yet(database, as_of, **kw):
        raise NotImplementedError("rules engine not built yet")

    monkeypatch.setattr(tracker.detection.pipeline, "detect", not_yet)
    result = run_cli("run", "--as-of", NOW.isoformat())
    assert result.exit_code == 0 and "detect: skipped" in result.output


def test_a_second_overlapping_run_exits_0_at_once(run_cli, db, db_path, site, fast_env):
    site.journeys = journeys(1, stages=4)
    add_journeys(db, site.journeys)
    with run_lock(db_path):
        t0 = time.monotonic()
        result = run_cli("poll", "--as-of", NOW.isoformat())
        assert time.monotonic() - t0 < 5
    assert result.exit_code == 0 and "another run holds the lock" in result.output
    assert count(db, "SELECT count(*) FROM poll_log") == 0
    assert run_cli("poll", "--as-of", NOW.isoformat()).exit_code == 0  # the lock is free again
    assert count(db, "SELECT count(*) FROM poll_log") == 3


def test_kill_9_mid_poll_then_rerun_loses_nothing_and_duplicates_nothing(db, db_path, site, fast_env):
    site.journeys = journeys(30, stages=8)  # 90 shipments, 720 events
    add_journeys(db, site.journeys)
    site.set_fault("slow", delay=0.02)
    env = {**os.environ, "TRACKER_DB": str(db_path)}
    cmd = [sys.executable, "-m", "tracker", "poll", "--as-of", NOW.isoformat()]
    proc, watch = start_poll_midway(cmd, env, ROOT, db_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_run = watch.execute("SELECT count(*) FROM poll_log").fetchone()[0]
    assert 15 <= first_run < 90  # killed in the middle
    # what was committed is consistent: every logged poll has its events and its shipment update
    assert (
        watch.execute("SELECT count(*) FROM shipments WHERE last_polled_at IS NOT NULL").fetchone()[0]
        == first_run
    )
    assert watch.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == 8 * first_run
    site.clear_faults()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # nothing lost, nothing twice: every shipment polled exactly once overall, every scan stored once
    assert watch.execute("SELECT count(DISTINCT tracking_number), count(*) FROM poll_log").fetchone() == (
        90,
        90,
    )
    assert watch.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == 720
    assert watch.execute("SELECT count(*) FROM shipments WHERE last_polled_at IS NULL").fetchone()[0] == 0
    watch.close()


ACME = """
name = "acmepost"
label = "Acme Post"
adapter = "html"
url = "https://tracking.acmepost.example/parcels/{number}"
number_pattern = '^AC\\d{8}$'
rate_per_second = 20
burst = 1

[html]
rows = "table.track-list tbody tr"
time = "td.time"
description = "td.event"
location = "td.place"
postcode = "td.postcode"
date_formats = ["%Y-%m-%d %H:%M:%S"]
utc_offset = "+08:00"
not_found_markers = ["No tracking information found"]

[location]
pattern = '^(?:(?P<city>.*?),\\s*)?(?P<country>[A-Za-z]{2})$'

[words]
"Electronic information received" = "info_received"
"Posting/Collection" = "in_transit"
"Arrival at processing center" = "in_transit"
"Departure from processing center" = "in_transit"
"""


def test_a_carrier_defined_only_by_a_file_is_polled_at_its_rate(db, tmp_path, monkeypatch):
    folder = tmp_path / "carriers"
    folder.mkdir()
    (folder / "acmepost.toml").write_text(ACME)
    monkeypatch.setenv("TRACKER_CARRIERS_DIR", str(folder))
    numbers = [f"AC{i:08d}" for i in range(36)]
    js = {tn: make_journey(tn, "acmepost", NOW.replace(day=10), stages=4) for tn in numbers}
    routes = [*DEFAULT_ROUTES, Route("acmepost", "/parcels/{number}", "chinapost")]
    with CarrierSite(js, as_of=NOW, routes=routes) as site:
        add_journeys(db, js)
        summary = run_poll(db, site, ignore_rate_limits=False)
        stamps = [r.at for r in site.requests if r.carrier == "acmepost"]
    assert summary.outcomes["ok"] == 36 and summary.events_added == 144
    assert (
        count(db, "SELECT count(*) FROM tracking_events WHERE carrier = 'acmepost' AND status = 'in_transit'")
        == 108
    )
    # politeness, measured at the server: never more than 10% over 20 requests a second
    # one request a number, plus any retry of a connection a loaded machine reset (retries keep the rate too)
    assert 36 <= len(stamps) <= 36 + 4
    window = 10
    for i in range(len(stamps) - window):
        assert stamps[i + window] - stamps[i] >= window / (20 * 1.1)
    assert (len(stamps) - 1) / (stamps[-1] - stamps[0]) <= 20 * 1.1


def test_site_listens_on_loopback_only(site):
    assert site.base_url.startswith("http://127.0.0.1:")
    assert site._server.server_address[0] == "127.0.0.1"


def test_poll_function_takes_the_base_url_as_an_argument(db, site, monkeypatch):
    monkeypatch.delenv("TRACKER_CARRIER_BASE_URL", raising=False)
    site.journeys = journeys(1, stages=2)
    add_journeys(db, site.journeys)
    summary = poll(db, NOW, base_url=site.base_url, ignore_rate_limits=True)
    assert summary.outcomes["ok"] == 3
