"""The Datasette dashboard that mirrors the marketplace's My Reports page.

Public seam (used by `tracker serve`, the tests and the bench alike):
    make_datasette(db_path, *, secret=None, env=None) -> datasette.app.Datasette
    dashboard_metadata(db_name) -> dict        # the one configuration structure (tracker.dashboard.config)
    SETTINGS                                   # Datasette settings: time limits, facets, page sizes
    tracker.dashboard.server.serve(db_path, host=, port=, echo=)   # what `tracker serve` runs

Layout: config.py (the one configuration structure), plugin.py (Datasette hooks), views.py (My Reports,
case page, snapshot, search, status change), queries.py (their SQL), counts.py (case_counts and the
facet that reads it), search.py (full-text index upkeep), sample.py (a small data set for tests and
screenshots), templates/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.dashboard.config import SETTINGS, TEMPLATES_DIR, dashboard_metadata, database_name

if TYPE_CHECKING:
    from datasette.app import Datasette

__all__ = ["SETTINGS", "dashboard_metadata", "make_datasette", "register_plugin"]

SECRET_ENV = "TRACKER_DASHBOARD_SECRET"


def register_plugin() -> None:
    """Register the dashboard plugin with Datasette's plugin manager (once per process)."""
    from datasette.plugins import pm

    from tracker.dashboard import plugin

    if not pm.is_registered(plugin):
        pm.register(plugin, name="tracker-dashboard")


def make_datasette(
    db_path: str | Path, *, secret: str | None = None, env: dict[str, str] | None = None
) -> Datasette:
    """A Datasette over the tracker database, configured by `dashboard_metadata` and `SETTINGS`.

    `secret` signs the sign-in cookies (default $TRACKER_DASHBOARD_SECRET, else random per start);
    `env` replaces os.environ when reading the sign-in password hash (tests pass their own).
    """
    from datasette.app import Datasette

    register_plugin()
    env_map = os.environ if env is None else env
    return Datasette(
        files=[str(db_path)],
        metadata=dashboard_metadata(database_name(db_path), env=dict(env_map)),
        settings=dict(SETTINGS),
        template_dir=str(TEMPLATES_DIR),
        secret=secret or env_map.get(SECRET_ENV) or None,
    )
