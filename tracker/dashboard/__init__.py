"""The Datasette dashboard that mirrors the marketplace's My Reports page.

Public seam (used by `tracker serve`, the tests and the bench alike):
    make_datasette(db_path, *, secret=None, env=None, public_read=False, host=None) -> datasette.app.Datasette
    dashboard_metadata(db_name) -> dict        # the one configuration structure (tracker.dashboard.config)
    SETTINGS                                   # Datasette settings: time limits, facets, page sizes
    tracker.dashboard.server.serve(db_path, host=, port=, public_read=, echo=)   # what `tracker serve` runs

Layout: config.py (the one configuration structure), access.py (who may read what), guard.py (the
ASGI front door: hosts, sign-in, cookies), signin.py (the sign-in form and cookie), plugin.py (Datasette
hooks), views.py (My Reports, case page, snapshot, search, status change), public.py (the visitors' view
of a case), queries.py (their SQL), counts.py (case_counts and the facet that reads it), sample.py (a small
data set for tests and screenshots), templates/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tracker.dashboard.config import (
    SETTINGS,
    TEMPLATES_DIR,
    dashboard_metadata,
    database_name,
    sign_in_accounts,
)

if TYPE_CHECKING:
    from datasette.app import Datasette

__all__ = ["SETTINGS", "dashboard_metadata", "make_datasette", "register_plugin"]

SECRET_ENV = "TRACKER_DASHBOARD_SECRET"
AUTH_PASSWORDS_PLUGIN = "auth_passwords"  # datasette-auth-passwords' entry-point name


def register_plugin() -> None:
    """Register the dashboard plugin with Datasette's plugin manager (once per process).

    datasette-auth-passwords is blocked here: it reads password hashes from Datasette's metadata, which
    Datasette serves to anyone; the dashboard signs in with its own form (tracker.dashboard.signin) and
    keeps only the package's hashing functions.
    """
    from datasette.plugins import pm

    from tracker.dashboard import plugin

    if not pm.is_blocked(AUTH_PASSWORDS_PLUGIN):
        pm.set_blocked(AUTH_PASSWORDS_PLUGIN)
    if not pm.is_registered(plugin):
        pm.register(plugin, name="tracker-dashboard")


def make_datasette(
    db_path: str | Path,
    *,
    secret: str | None = None,
    env: dict[str, str] | None = None,
    public_read: bool = False,
    host: str | None = None,
) -> Datasette:
    """A Datasette over the tracker database, configured by `dashboard_metadata` and `SETTINGS`.

    `secret` signs the sign-in cookies (default $TRACKER_DASHBOARD_SECRET, else random per start);
    `env` replaces os.environ when reading the sign-in password hash and host list (tests pass their own);
    `public_read` lets visitors read without signing in; `host` is the address served, an allowed Host.
    """
    from datasette.app import Datasette

    from tracker.dashboard.access import Access, attach_access
    from tracker.dashboard.config import chart_queries

    register_plugin()
    env_map = dict(os.environ if env is None else env)
    name = database_name(db_path)
    datasette = Datasette(
        files=[str(db_path)],
        metadata=dashboard_metadata(name),
        settings=dict(SETTINGS),
        template_dir=str(TEMPLATES_DIR),
        secret=secret or env_map.get(SECRET_ENV) or None,
    )
    attach_access(datasette, Access.configure(
        accounts=sign_in_accounts(env_map), public_read=public_read, host=host, env=env_map,
        chart_queries=chart_queries(name)))
    return datasette
