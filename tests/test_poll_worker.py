"""Big runs parse HTML pages in a worker process: same stored answers as in-process, and a dead worker is
a recorded error on the pages it held, never a crash of the run."""

from __future__ import annotations

import logging
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
    journeys,
    number,
    run_poll,
    start_poll_midway,
)

from tracker.carriers import _ADAPTERS, Page, ParseResult, carrier_from_settings, load_carriers
from tracker.carriers.html import parse_html
from tracker.db import open_db
from tracker.plan import Thresholds
from tracker.poll import parsing

ROOT = Path(__file__).resolve().parent.parent

TABLES = {
    "tracking_events": "SELECT tracking_number, occurred_at, status, description, location, city, postcode, "
                       "country, carrier, raw_code FROM tracking_events ORDER BY 1, 2, 3, 4",
    "page_snapshots": "SELECT tracking_number, sha256 FROM page_snapshots ORDER BY 1, 2",
    "poll_log": "SELECT tracking_number, http_status, outcome, error, events_added FROM poll_log ORDER BY 1",
    "shipments": "SELECT tracking_number, state, last_status, consecutive_failures, next_poll_at FROM shipments "
                 "ORDER BY 1",
}
FAULTS = {"garbage": number("chinapost", 2), "deep": number("chinapost", 5), "cut": number("chinapost", 3),
          "truncated": number("chinapost", 1), "binary": number("chinapost", 4)}


@pytest.fixture
def site():
    yield from carrier_site()


@pytest.fixture
def parses_here(monkeypatch):
    """Tracking numbers parsed in this process (the worker's own module is not patched)."""
    seen: list[str] = []
    real = parsing.parse_page

    def spy(carrier, page, tracking_number):  # noqa: ANN001, ANN202
        seen.append(tracking_number)
        return real(carrier, page, tracking_number)

    monkeypatch.setattr(parsing, "parse_page", spy)
    return seen


def dump(db) -> dict[str, list[tuple]]:
    return {name: db.conn.execute(sql).fetchall() for name, sql in TABLES.items()}


def poll_store(tmp_path, name, site, faults=FAULTS, **kw):  # noqa: ANN001, ANN201
    db = open_db(tmp_path / f"{name}.db")
    add_journeys(db, site.journeys)
    site.clear_faults()
    for kind, tn in faults.items():
        site.set_fault(kind, number=tn, times=1)
    summary = run_poll(db, site, **kw)
    return db, summary


def test_the_worker_stores_exactly_what_in_process_parsing_stores(tmp_path, site, thresholds, parses_here):
    site.journeys = journeys(5, stages=10)
    here, _ = poll_store(tmp_path, "here", site)
    assert {tn[:2] for tn in parses_here} == {"LP", "RR", "YT"}  # below the threshold: all parsed here
    parses_here.clear()
    thresholds(parse_worker_min_pages=1, parse_here_until_ready=False)  # every HTML page to the worker
    worker, summary = poll_store(tmp_path, "worker", site)
    # only the JSON (Cainiao, YunExpress) pages were parsed here; HTML went to the worker
    assert sorted(parses_here) == sorted(number(c, i + 1) for c in ("cainiao", "yunexpress") for i in range(5))
    assert dump(worker) == dump(here)
    errors = {tn: err for tn, _status, outcome, err, _n in dump(worker)["poll_log"] if outcome == "error"}
    assert set(errors) == set(FAULTS.values())  # every hostile page is a recorded error, in both runs
    assert summary.outcomes["ok"] == 10


HOSTILE = [
    b"<html><body>" + b"<div>" * 50_000 + b"</body></html>",  # deeply nested
    b"<html><body><table class=",  # truncated
    bytes(range(256)) * 40,  # binary
    "<html><body>caf\u00e9 \u00fcber</body></html>".encode("utf-16"),  # wrong encoding
    b"<<<>>>&&&</</ <html>" * 1000 + b"</html>",  # garbage
]


@pytest.fixture(scope="module")
def chinapost_worker():
    carrier = load_carriers()["chinapost"]
    parser = parsing.Parser(parsing.worker_carriers({"chinapost": carrier}))
    assert parser.pool is not None and parser.ready.result(timeout=60)  # the worker takes the pages
    yield carrier, parser
    parser.close()


@pytest.mark.parametrize("body", HOSTILE, ids=["deep", "truncated", "binary", "utf16", "garbage"])
def test_a_hostile_page_in_the_worker_is_the_same_result_as_in_process(body, chinapost_worker):
    carrier, parser = chinapost_worker
    page = Page("http://x/", 200, "text/html", body)
    here = parsing.parse_page(carrier, page, "RR000000001CN")
    there = parser.parse(carrier, page, "RR000000001CN")
    assert parser.pool is not None  # still the worker: a hostile page does not kill it
    assert isinstance(there, ParseResult) and there == here and here.outcome != "ok"


def _die(*args):  # noqa: ANN002, ANN202
    """Stands in for the worker's parse function: the worker process ends on every page."""
    os._exit(3)


def test_a_dead_worker_is_a_recorded_error_and_later_pages_parse_in_process(
        tmp_path, site, monkeypatch, parses_here, caplog, thresholds):
    site.journeys = journeys(8, stages=6)
    thresholds(parse_worker_min_pages=1, parse_here_until_ready=False)  # every HTML page to the worker
    monkeypatch.setattr(parsing, "_worker_parse", _die)
    with caplog.at_level(logging.WARNING, logger="tracker.poll.parsing"):
        db, summary = poll_store(tmp_path, "dies", site, faults={})
    died = db.conn.execute("SELECT tracking_number, error FROM poll_log WHERE outcome = 'error'").fetchall()
    # each of the two breaks fails the pages in flight (one per HTML lane at most); the rest parse here
    assert 2 <= len(died) <= 4
    assert all("parse worker died" in err for _tn, err in died)
    assert summary.polled == 24 and summary.outcomes["ok"] == 24 - len(died)
    assert len(parses_here) == 24 - len(died)
    assert [r.message for r in caplog.records].count(
        "the parse worker died 2 times; parsing the rest of this run in-process") == 1
    # the failed pages are polled again later like any error, and then stored
    assert db.conn.execute("SELECT count(DISTINCT tracking_number) FROM tracking_events").fetchone()[0] == 24 - len(died)


def test_a_killed_worker_mid_run_leaves_the_run_complete(tmp_path, site, monkeypatch, thresholds):
    site.journeys = journeys(30, stages=4)
    thresholds(parse_worker_min_pages=1, parse_here_until_ready=False)  # every HTML page to the worker
    killed = []
    real = parsing.Parser.parse

    def parse(self, carrier, page, tn):  # noqa: ANN001, ANN202
        if tn == number("chinapost", 10) and self.pool is not None and not killed:
            pid = next(iter(self.pool._processes))
            os.kill(pid, 9)
            killed.append(pid)
        return real(self, carrier, page, tn)

    monkeypatch.setattr(parsing.Parser, "parse", parse)
    db, summary = poll_store(tmp_path, "killed", site, faults={})
    assert killed
    assert summary.polled == 90 and summary.outcomes["ok"] + summary.outcomes["error"] == 90
    assert 1 <= summary.outcomes["error"] <= 2
    errors = db.conn.execute("SELECT error FROM poll_log WHERE outcome = 'error'").fetchall()
    assert all("parse worker died" in e for (e,) in errors)


def test_a_runtime_registered_adapter_and_an_in_code_carrier_parse_in_process(tmp_path, site, monkeypatch,
                                                                                 parses_here, thresholds):
    monkeypatch.setitem(_ADAPTERS, "html_at_runtime", parse_html)
    on_disk = load_carriers()
    settings = dict(on_disk["chinapost"].settings, adapter="html_at_runtime")
    registry = dict(on_disk, chinapost=carrier_from_settings(settings))
    # an HTML carrier with the same settings as chinapost's file, but built in code (no file behind it)
    registry["chinapost_twin"] = carrier_from_settings(dict(on_disk["chinapost"].settings, name="chinapost_twin"))
    assert parsing.worker_carriers(registry) == {}
    assert set(parsing.worker_carriers(on_disk)) == {"chinapost"}
    site.journeys = journeys(3, stages=4)
    thresholds(parse_worker_min_pages=1, parse_here_until_ready=False)  # every HTML page to the worker
    db, summary = poll_store(tmp_path, "runtime", site, faults={}, carriers=registry)
    assert summary.outcomes["ok"] == 9 and len(parses_here) == 9


def test_small_runs_start_no_worker(monkeypatch):
    started = []
    monkeypatch.setattr(parsing.Parser, "_new_pool", lambda self: started.append(1))  # noqa: ARG005
    assert parsing.make_parser(load_carriers(), Thresholds().parse_worker_min_pages - 1).pool is None
    assert not started


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.update(int(c) for c in (task / "children").read_text().split())
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_with_a_worker_leaves_no_process_nor_lock_and_the_rerun_loses_nothing(db, db_path, site, tmp_path):
    site.journeys = journeys(30, stages=8)  # 90 shipments, 720 events
    add_journeys(db, site.journeys)
    site.set_fault("slow", delay=0.02)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "polling.toml").write_text(FAST_TOML)
    env = {**os.environ, "TRACKER_DB": str(db_path), "TRACKER_CONFIG_DIR": str(conf),
           "TRACKER_CARRIER_BASE_URL": site.base_url}
    # the CLI itself, with the worker threshold lowered so these 60 HTML pages go to the worker
    env["TRACKER_THRESHOLDS"] = "parse_worker_min_pages=1"
    cmd = [sys.executable, "-m", "tracker", "poll", "--as-of", NOW.isoformat()]
    proc, watch = start_poll_midway(cmd, env, ROOT, db_path)
    children = _children(proc.pid)
    assert children  # the parse worker (and multiprocessing's resource tracker)
    for child in children:  # spawned: no inherited run lock
        fds = [os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir() if fd.is_symlink()]
        assert not any(f.endswith(".lock") for f in fds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_run = watch.execute("SELECT count(*) FROM poll_log").fetchone()[0]
    assert 15 <= first_run < 90  # killed in the middle
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(c) for c in children)  # the worker saw its pipe close and ended
    site.clear_faults()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert watch.execute("SELECT count(DISTINCT tracking_number), count(*) FROM poll_log").fetchone() == (90, 90)
    assert watch.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == 720


UNGUARDED = """
import os
import sys
from test_poll_support import NOW, add_journeys, journeys, run_poll
from tracker.carriersite import CarrierSite
from tracker.db import open_db
os.environ["TRACKER_THRESHOLDS"] = "parse_worker_min_pages=1"
db = open_db(f"{sys.argv[1]}/{os.getpid()}.db")  # the worker's copy of this script gets its own store
with CarrierSite(journeys(5, stages=4), as_of=NOW) as site:
    add_journeys(db, site.journeys)
    print(run_poll(db, site).line())
"""


def test_an_unguarded_script_gets_no_second_poll_and_no_errors(tmp_path):
    """spawn re-imports the script's __main__ in the worker; poll() refuses there, the worker never
    starts, and the run parses in-process without failing a page."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("polled 15 of 15 due shipments") and "15 ok" in done.stdout
    assert "guard the script with" in done.stderr  # the worker's copy of the script stopped before polling
