"""`tracker demo`: the whole job on a generated world and a local carrier site.

Generate a world (orders, messages, and the parcels' journeys), import the orders and messages, start the
local carrier site serving the journeys, poll it like the cron job would, detect, score and open cases,
write one complaint packet, then (unless told not to) serve the dashboard.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tracker.db import get_meta, open_db, set_meta
from tracker.errors import BadInput

DEMO_MARK = "demo_database"


def _refuse_foreign_database(db_path: Path) -> None:
    """The demo rebuilds its database from scratch; never do that to one it did not create."""
    if not db_path.exists():
        return
    db = open_db(db_path, create=False)
    try:
        has_meta = "meta" in db.table_names()
        mine = has_meta and get_meta(db, DEMO_MARK) == "1"
    finally:
        db.close()
    if not mine:
        raise BadInput(f"{db_path}: not a demo database; the demo rebuilds its database, so give it another --db")


@dataclass
class DemoResult:
    db_path: Path
    folder: Path
    orders: int = 0
    events_polled: int = 0
    flags_by_code: dict[str, int] = field(default_factory=dict)
    cases_by_status: dict[str, int] = field(default_factory=dict)
    packet: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def demo_as_of() -> datetime:
    """Today at midnight UTC: the world ends "now", so the dashboard's deadlines read as current."""
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def run_demo(
    db_path: str | Path,
    folder: str | Path,
    *,
    n_orders: int = 3000,
    seed: int = 7,
    as_of: datetime | None = None,
    echo: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Build the demo database from scratch (re-running replaces it) and return what it holds."""
    from tracker.carriersite import CarrierSite
    from tracker.cases.export import export_case
    from tracker.detection.pipeline import detect
    from tracker.importers import import_file
    from tracker.poll.runner import poll
    from tracker.world import generate

    as_of = as_of or demo_as_of()
    db_path, folder = Path(db_path), Path(folder)
    _refuse_foreign_database(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    from tracker.cases.privacy import key_path

    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), key_path(db_path)):
        stale.unlink(missing_ok=True)
    result = DemoResult(db_path=db_path, folder=folder)

    t = time.perf_counter()
    world = generate(n_orders, seed=seed, as_of=as_of)
    world_dir = folder / "world"
    world.write(world_dir)
    result.orders = len(world.orders)
    echo(f"Generated a world of {len(world.orders):,} orders and {len(world.events):,} scans in {world_dir}")
    result.seconds["generate"] = time.perf_counter() - t

    db = open_db(db_path)
    try:
        with db.conn:
            set_meta(db, DEMO_MARK, "1")
        t = time.perf_counter()
        for kind in ("orders", "messages"):
            imported = import_file(db, kind, world_dir / f"{kind}.csv", now=as_of)
            echo(f"Imported {kind}: {imported.line()}" if hasattr(imported, "line") else f"Imported {kind}")
        result.seconds["import"] = time.perf_counter() - t

        t = time.perf_counter()
        with CarrierSite(world.journeys(), as_of=as_of) as site:
            echo(f"Local carrier site at {site.base_url} (cainiao and yunexpress JSON, chinapost HTML)")
            summary = poll(db, as_of, base_url=site.base_url, ignore_rate_limits=True, progress=progress)
        echo(f"Polled: {summary.line()}")
        result.events_polled = db.execute("SELECT count(*) FROM tracking_events").fetchone()[0]
        result.seconds["poll"] = time.perf_counter() - t

        t = time.perf_counter()
        detected = detect(db, as_of, full=True)
        echo(f"Detected: {detected.line()}")
        result.seconds["detect"] = time.perf_counter() - t

        result.flags_by_code = dict(
            db.execute("SELECT code, count(*) FROM flags WHERE resolved_at IS NULL GROUP BY code ORDER BY code").fetchall()
        )
        result.cases_by_status = dict(db.execute("SELECT status, count(*) FROM cases GROUP BY status").fetchall())
        top = db.execute("SELECT id FROM cases ORDER BY score DESC, id LIMIT 1").fetchone()
        if top:
            packet = folder / f"packet-case-{top[0]}"
            if packet.exists():
                shutil.rmtree(packet)
            export_case(db, top[0], packet, as_of=as_of)
            result.packet = packet
            echo(f"Complaint packet for case {top[0]}: {packet}")
    finally:
        db.close()
    return result
