"""The route table (data/routes.csv, or the one in $TRACKER_CONFIG_DIR): per origin, destination and service
class, the minimum transit time and how long the untracked last mile may stay silent after a hand-over.

Columns: `origin`, `destination` (ISO alpha-2; `*` any; `same,same` a domestic route), `service` (`postal`
or `express`; `*` both), `min_days` (first scan to delivered), `untracked_last_mile_days` (silence after an
export, line-haul or import scan that is still normal), `source` (the public delivery standard the figures
come from). The rules get the table as settings (detectors stay pure): see `fold_into`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker import config
from tracker.errors import BadInput

SERVICES = ("postal", "express")


@dataclass(frozen=True)
class Route:
    origin: str  # alpha-2, "*" or "same"
    destination: str
    service: str  # postal, express or "*"
    min_days: float | None
    last_mile_days: float | None
    source: str = ""

    @property
    def key(self) -> str:
        """'CN->ES', the form settings carry (JSON keys must be text)."""
        return f"{self.origin}->{self.destination}"


def route_file(name: str = "routes.csv") -> Path:
    override = os.environ.get("TRACKER_CONFIG_DIR")
    if override and (Path(override) / name).exists():
        return Path(override) / name
    return config.data_path(name)


def _number(text: str | None, path: Path, line: int, column: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise BadInput(f"{path}: line {line}: {column} must be a number of days, not {text!r}") from exc
    if value < 0:
        raise BadInput(f"{path}: line {line}: {column} must not be negative")
    return value


def load_route_table(name: str = "routes.csv") -> list[Route]:
    """Every row of the route table; a bad row is one clear error (file, line, column, why)."""
    path = route_file(name)
    if not path.exists():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            origin = (row.get("origin") or "").strip().upper()
            dest = (row.get("destination") or "").strip().upper()
            if not origin or not dest:
                raise BadInput(f"{path}: line {line}: origin and destination are required")
            service = (row.get("service") or "*").strip().lower() or "*"
            if service not in (*SERVICES, "*"):
                raise BadInput(f"{path}: line {line}: service must be postal, express or *, not {service!r}")
            rows.append(Route(
                origin.lower() if origin == "SAME" else origin,
                dest.lower() if dest == "SAME" else dest,
                service,
                _number(row.get("min_days"), path, line, "min_days"),
                _number(row.get("untracked_last_mile_days"), path, line, "untracked_last_mile_days"),
                (row.get("source") or row.get("note") or "").strip(),
            ))
    return rows


def fold_into(settings: dict[str, Any], routes: list[Route]) -> dict[str, Any]:
    """Hand the route table to the rules through their settings:

    - impossible_transit.routes: (origin, destination) -> postal minimum days
    - impossible_transit.express_routes: 'O->D' -> express minimum days
    - no_tracking_progress.last_mile_days / express_last_mile_days: 'O->D' -> untracked last-mile bound
    """
    transit = settings.setdefault("impossible_transit", {})
    progress = settings.setdefault("no_tracking_progress", {})
    postal_min: dict[tuple[str, str], float] = {}
    express_min: dict[str, float] = {}
    postal_quiet: dict[str, float] = {}
    express_quiet: dict[str, float] = {}
    for r in routes:
        for service in (SERVICES if r.service == "*" else (r.service,)):
            if r.min_days is not None:
                if service == "postal":
                    postal_min[(r.origin, r.destination)] = r.min_days
                else:
                    express_min[r.key] = r.min_days
            if r.last_mile_days is not None:
                (postal_quiet if service == "postal" else express_quiet)[r.key] = r.last_mile_days
    transit["routes"] = postal_min
    transit["express_routes"] = express_min
    progress["last_mile_days"] = postal_quiet
    progress["express_last_mile_days"] = express_quiet
    return settings
