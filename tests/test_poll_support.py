"""Shared helpers for the poll tests (no tests here): a local carrier site, journeys, fast settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracker.carriersite import CarrierSite
from tracker.carriersite.journeys import make_journey
from tracker.poll import poll

NOW = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=15)

# small timeouts and backoffs so faults cost milliseconds, not minutes
FAST = {
    "http": {
        "connect_timeout": 1.0,
        "read_timeout": 0.5,
        "total_timeout": 3.0,
        "retries": 1,
        "backoff_factor": 0.01,
        "backoff_jitter": 0.0,
        "retry_after_max": 1,
    },
    "breaker": {"threshold": 2, "cooldown_hours": 6},
    "run": {"batch_size": 20, "batch_seconds": 0.2},
}

FAST_TOML = """
[http]
connect_timeout = 1.0
read_timeout = 0.5
total_timeout = 3.0
retries = 1
backoff_factor = 0.01
backoff_jitter = 0.0
retry_after_max = 1
[breaker]
threshold = 2
[run]
batch_size = 10
batch_seconds = 0.1
ignore_rate_limits = true
"""


def number(carrier: str, i: int) -> str:
    if carrier == "cainiao":
        return f"LP{i:014d}"
    if carrier == "yunexpress":
        return f"YT{i:016d}"
    return f"RR{i:09d}CN"


def journeys(n_per_carrier: int = 2, stages: int = 15, start: datetime = START) -> dict[str, list[dict]]:
    out = {}
    for carrier in ("cainiao", "chinapost", "yunexpress"):
        for i in range(n_per_carrier):
            tn = number(carrier, i + 1)
            out[tn] = make_journey(tn, carrier, start, stages=stages)
    return out


def add_shipments(db, numbers: dict[str, str], next_poll_at: str = "2026-09-01T00:00:00Z") -> None:
    """numbers: tracking number -> carrier."""
    with db.conn:
        db.conn.executemany(
            "INSERT INTO shipments (tracking_number, carrier, state, first_seen_at, next_poll_at) "
            "VALUES (?, ?, 'pending', ?, ?)",
            [(tn, c, next_poll_at, next_poll_at) for tn, c in numbers.items()],
        )


def add_journeys(db, js: dict[str, list[dict]]) -> None:
    add_shipments(db, {tn: events[0]["carrier"] for tn, events in js.items()})


def run_poll(db, site, as_of=NOW, **kw):
    kw.setdefault("ignore_rate_limits", True)
    return poll(db, as_of, base_url=site.base_url, settings=kw.pop("settings", FAST), **kw)


def shipment(db, tn: str) -> dict:
    cur = db.conn.execute("SELECT * FROM shipments WHERE tracking_number = ?", [tn])
    return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))


def count(db, sql: str, params=()) -> int:
    return db.conn.execute(sql, params).fetchone()[0]


def carrier_site():
    """For a `site` fixture: `yield from carrier_site()`."""
    with CarrierSite({}, as_of=NOW) as s:
        yield s


def start_poll_midway(cmd: list[str], env: dict[str, str], cwd, db_path, at_least: int = 15):  # noqa: ANN001, ANN201
    """Start a poll in a subprocess and return (process, a watching connection) once it has logged
    `at_least` polls (within a minute): the moment a test kills it in the middle."""
    import sqlite3
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watch = sqlite3.connect(db_path, timeout=30)
    deadline = time.monotonic() + 60
    while watch.execute("SELECT count(*) FROM poll_log").fetchone()[0] < at_least and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    return proc, watch
