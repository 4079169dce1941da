"""The dashboard's whole configuration, in one Python structure: `tracker serve` and the tests load it.

Datasette 0.65 reads metadata (titles, facets, sorts, search tables, canned queries, `allow` blocks,
plugin configuration) and settings (time limits, facet behaviour). Both are built here from the case
settings in data/cases.toml, so a new status or category appears without touching this file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tracker.migrations import SEARCH_INDEXES

PLUGIN_NAME = "tracker-dashboard"

# Permission action checked before a status change from the browser (see plugin.permission_allowed).
SET_STATUS_ACTION = "tracker-set-status"

# Tables too big to count on every page view: their table pages skip the full count (see plugin).
HUGE_TABLES = ("tracking_events", "poll_log", "page_snapshots")

# Datasette settings that keep a million-order database usable: bounded queries, no facet suggestions
# (they run a query per column), and facets only where metadata asks for them.
SETTINGS: dict[str, Any] = {
    "sql_time_limit_ms": 1500,
    "facet_time_limit_ms": 400,
    "suggest_facets": False,
    "default_page_size": 50,
    "max_returned_rows": 1000,
    "facet_suggest_time_limit_ms": 50,
    "num_sql_threads": 3,
    "allow_download": False,  # the database holds raw evidence; no one-click copy of the whole file
    "default_cache_ttl": 0,  # statuses change from the browser: never serve a stale page
}

# Who may change a case's status from the browser: any signed-in actor (an `allow` block, as in
# Datasette's metadata). Visitors never write (and read only with --public-read).
SET_STATUS_ALLOW: dict[str, Any] = {"id": "*"}

PASSWORD_HASH_ENV = "TRACKER_DASHBOARD_PASSWORD_HASH"
USER_ENV = "TRACKER_DASHBOARD_USER"
DEFAULT_USER = "tracker"

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def database_name(db_path: str | Path) -> str:
    """The name Datasette gives a database file: its stem (tracker.db -> tracker)."""
    return Path(db_path).stem


def sign_in_accounts(env: dict[str, str] | None = None) -> dict[str, str]:
    """Username -> password hash for the sign-in form, from the environment (empty when unset)."""
    env = os.environ if env is None else env
    password_hash = (env.get(PASSWORD_HASH_ENV) or "").strip()
    if not password_hash:
        return {}
    return {(env.get(USER_ENV) or DEFAULT_USER).strip() or DEFAULT_USER: password_hash}


def _labels() -> tuple[dict[str, str], dict[str, str]]:
    from tracker.cases.settings import load_settings

    settings = load_settings()
    return {s.id: s.label for s in settings.statuses.values()}, dict(settings.categories)


def _charts(db: str) -> dict[str, Any]:
    """datasette-dashboards charts (Vega-Lite): each is one read-only SQL query plus a spec."""
    return {
        "cases-by-status": {
            "title": "Cases opened per week, by status",
            "db": db,
            "library": "vega-lite",
            "query": (
                "SELECT strftime('%Y-%W', opened_at) AS week, status, count(*) AS cases "
                "FROM cases GROUP BY week, status ORDER BY week"
            ),
            "display": {
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "x": {"field": "week", "type": "ordinal", "title": "week"},
                    "y": {"field": "cases", "type": "quantitative", "aggregate": "sum"},
                    "color": {"field": "status", "type": "nominal"},
                },
            },
        },
        "cases-by-category": {
            "title": "Cases opened per week, by category",
            "db": db,
            "library": "vega-lite",
            "query": (
                "SELECT strftime('%Y-%W', opened_at) AS week, category, count(*) AS cases "
                "FROM cases GROUP BY week, category ORDER BY week"
            ),
            "display": {
                "mark": {"type": "line", "tooltip": True},
                "encoding": {
                    "x": {"field": "week", "type": "ordinal", "title": "week"},
                    "y": {"field": "cases", "type": "quantitative"},
                    "color": {"field": "category", "type": "nominal"},
                },
            },
        },
        "sellers-by-flags": {
            "title": "Sellers by flagged orders (top 20)",
            "db": db,
            "library": "vega-lite",
            "query": (
                "SELECT o.seller_id AS seller, count(DISTINCT f.order_id) AS flagged_orders "
                "FROM flags f JOIN orders o ON o.order_id = f.order_id WHERE f.resolved_at IS NULL "
                "GROUP BY o.seller_id ORDER BY flagged_orders DESC LIMIT 20"
            ),
            "display": {
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "y": {"field": "seller", "type": "nominal", "sort": "-x"},
                    "x": {"field": "flagged_orders", "type": "quantitative"},
                },
            },
        },
        "reuse-clusters": {
            "title": "Reused tracking numbers: clusters by number of buyers",
            "db": db,
            "library": "vega-lite",
            # the inner GROUP BY reads only the tracking-number index; buyers are counted for the few shared
            "query": (
                "SELECT buyers, count(*) AS clusters FROM ("
                " SELECT o.tracking_number, count(DISTINCT o.buyer_id) AS buyers FROM ("
                "  SELECT tracking_number FROM orders WHERE tracking_number IS NOT NULL AND tracking_number != ''"
                "  GROUP BY tracking_number HAVING count(*) > 1) shared"
                " JOIN orders o ON o.tracking_number = shared.tracking_number"
                " GROUP BY o.tracking_number HAVING buyers > 1)"
                " GROUP BY buyers ORDER BY buyers"
            ),
            "display": {
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "x": {"field": "buyers", "type": "ordinal", "title": "buyers sharing one number"},
                    "y": {"field": "clusters", "type": "quantitative", "title": "tracking numbers"},
                },
            },
        },
    }


def _canned_queries() -> dict[str, Any]:
    """Read-only canned queries. None writes: a status change goes through tracker.cases.set_status."""
    return {
        "due_next": {
            "title": "Cases due next",
            "description": "Open cases ordered by their next deadline.",
            "sql": (
                "SELECT id, order_id, status, category, reason, next_deadline_at, next_deadline_name "
                "FROM cases WHERE next_deadline_at IS NOT NULL ORDER BY next_deadline_at LIMIT 100"
            ),
        },
        "reuse_clusters": {
            "title": "Reused tracking numbers",
            "description": "Tracking numbers given to orders of more than one buyer (buyers counted, not named).",
            "sql": (
                "SELECT o.tracking_number, count(*) AS orders, count(DISTINCT o.buyer_id) AS buyers FROM ("
                " SELECT tracking_number FROM orders WHERE tracking_number IS NOT NULL AND tracking_number != ''"
                " GROUP BY tracking_number HAVING count(*) > 1) shared"
                " JOIN orders o ON o.tracking_number = shared.tracking_number"
                " GROUP BY o.tracking_number HAVING buyers > 1 ORDER BY buyers DESC LIMIT 200"
            ),
        },
        "sellers_by_flags": {
            "title": "Sellers by flagged orders",
            "sql": (
                "SELECT o.seller_id, count(DISTINCT f.order_id) AS flagged_orders, "
                "group_concat(DISTINCT f.code) AS codes FROM flags f JOIN orders o ON o.order_id = f.order_id "
                "WHERE f.resolved_at IS NULL GROUP BY o.seller_id ORDER BY flagged_orders DESC LIMIT 100"
            ),
        },
    }


def _home_html() -> str:
    return (
        "<p>Order-tracking fraud detector. Start at "
        '<a href="/-/my-reports"><strong>My Reports</strong></a>: your cases by status, each with why it '
        'was flagged, what the carrier said and what is due next. Also: <a href="/-/search">Search</a> '
        '(cases, orders, messages) · <a href="/-/dashboards/tracker">Charts</a>.</p>'
    )


def chart_queries(db_name: str = "tracker") -> list[str]:
    """The SQL the charts run from the browser: the only SQL a --public-read visitor may send."""
    return [chart["query"] for chart in _charts(db_name).values()]


def dashboard_metadata(db_name: str = "tracker") -> dict[str, Any]:
    """Datasette metadata for a database called `db_name`: the one structure serve and tests share.

    Datasette serves it to anyone at /-/metadata.json, so it holds no secret: the sign-in accounts and
    the access settings live in tracker.dashboard.access.Access.
    """
    status_labels, category_labels = _labels()
    hidden = {
        name: {"hidden": True}
        for base in SEARCH_INDEXES
        for suffix in ("", "_data", "_idx", "_docsize", "_config", "_pending")
        for name in (f"{base}_fts{suffix}",)
    }
    return {
        "title": "Tracker",
        "description_html": _home_html(),
        "plugins": {
            PLUGIN_NAME: {
                "set_status_allow": SET_STATUS_ALLOW,
                "huge_tables": list(HUGE_TABLES),
            },
            "datasette-dashboards": {
                "tracker": {
                    "title": "Tracker charts",
                    "description": "Cases over time, sellers by flagged orders, reused tracking numbers.",
                    "layout": [
                        ["cases-by-status", "cases-by-category"],
                        ["sellers-by-flags", "reuse-clusters"],
                    ],
                    "charts": _charts(db_name),
                }
            },
        },
        "databases": {
            db_name: {
                "queries": _canned_queries(),
                "tables": {
                    **hidden,
                    "cases": {
                        "title": "Cases",
                        "description": "One order under investigation. Open one from My Reports for the full story.",
                        "sort": "next_deadline_at",
                        "size": 25,  # fewer rows to render keeps the faceted page fast at 100k cases
                        # answered from the trigger-kept case_counts table (tracker.dashboard.counts)
                        "facets": [{"case_count": "status"}, {"case_count": "category"}],
                        "label_column": "order_id",
                        "fts_table": "cases_fts",
                        "columns": {
                            "status": "My Reports status: " + ", ".join(f"{k} = {v}" for k, v in status_labels.items()),
                            "category": "Report category: "
                            + ", ".join(f"{k} = {v}" for k, v in category_labels.items()),
                            "next_deadline_at": "The next dated timer that applies (UTC).",
                            "score": "Classifier score, 0 to 1.",
                        },
                    },
                    "orders": {"fts_table": "orders_fts", "facets": [], "label_column": "order_id"},
                    "messages": {"fts_table": "messages_fts", "facets": []},
                    "flags": {"facets": ["code", "severity"], "sort_desc": "detected_at"},
                    "case_events": {"sort_desc": "id"},
                    "tracking_events": {"description": "Carrier scans. Large: the row count is skipped."},
                    "poll_log": {"description": "Every fetch of a carrier page. Large: the row count is skipped."},
                    "page_snapshots": {"description": "Stored carrier pages; open one from a case page."},
                },
            }
        },
    }
