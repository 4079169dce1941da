"""The dashboard's Datasette plugin: its routes, who may change a status, links, and big-table manners.

Registered once with Datasette's plugin manager by `tracker.dashboard.register_plugin()`.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any

from datasette import hookimpl
from datasette.utils import actor_matches_allow
from markupsafe import Markup, escape

from tracker.dashboard import signin, views
from tracker.dashboard.access import access_of
from tracker.dashboard.config import HUGE_TABLES, PLUGIN_NAME, SET_STATUS_ACTION, SET_STATUS_ALLOW
from tracker.dashboard.counts import CaseCountFacet
from tracker.dashboard.guard import guard


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    # plugin routes are matched before Datasette's own: these replace its /-/databases (which shows paths)
    return [
        (r"^/-/login$", signin.login),
        (r"^/-/databases(\.(?P<format>json))?$", views.databases),
        (r"^/-/my-reports$", views.my_reports),
        (r"^/-/case/(?P<case_id>[0-9]{1,18})$", views.case_page),
        (r"^/-/case/(?P<case_id>[0-9]{1,18})/status$", views.set_status),
        (r"^/-/snapshot/(?P<sha256>[0-9a-f]{64})$", views.snapshot),
        (r"^/-/search$", views.search),
    ]


@hookimpl
def register_facet_classes() -> list[type]:
    return [CaseCountFacet]


# the actions that read: refused to visitors unless --public-read
READ_ACTIONS = {"view-instance", "view-database", "view-table", "view-query", "execute-sql"}


@hookimpl
def permission_allowed(datasette: Any, actor: dict | None, action: str, resource: Any) -> bool | None:
    # Runs after Datasette's defaults, so a False here is the answer (the front door refuses first anyway).
    if action == SET_STATUS_ACTION:
        allow = (datasette.plugin_config(PLUGIN_NAME) or {}).get("set_status_allow", SET_STATUS_ALLOW)
        return bool(actor) and actor_matches_allow(actor, allow)
    if action == "view-database" and resource == "_internal":
        return False  # Datasette's own catalogue: it holds the database's path
    if action == "view-database-download":
        return False
    if actor:
        return None
    access = access_of(datasette)
    if not access.public_read:
        return False if action in READ_ACTIONS else None
    if action == "view-table":
        return None if access.table_readable(resource[1]) else False
    return None


@hookimpl
def prepare_connection(conn: Any, database: str, datasette: Any) -> None:
    conn.set_authorizer(_hide_file_paths)


def _hide_file_paths(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    """SQL may read pragma_database_list, but its `file` column (the database's path) reads as NULL."""
    if action == sqlite3.SQLITE_READ and arg1 == "pragma_database_list" and arg2 == "file":
        return sqlite3.SQLITE_IGNORE
    return sqlite3.SQLITE_OK


@hookimpl
def menu_links(datasette: Any, actor: dict | None) -> list[dict[str, str]]:
    # "Dashboards" comes from datasette-dashboards; "Log out" is Datasette's own, for a signed-in actor
    links = [
        {"href": datasette.urls.path("/-/my-reports"), "label": "My Reports"},
        {"href": datasette.urls.path("/-/search"), "label": "Search"},
    ]
    if not actor:
        links.append({"href": datasette.urls.path("/-/login"), "label": "Sign in"})
    return links


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, datasette: Any) -> Markup | None:
    # In the cases table the order id opens the case page, where the whole story is.
    if table == "cases" and column == "order_id" and value is not None:
        try:
            case_id = int(row["id"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        url = datasette.urls.path(f"/-/case/{case_id}")
        return Markup(f'<a href="{escape(url)}" title="Open the case page">{escape(value)}</a>')
    return None


def _with_nocount(scope: dict, huge: set[str]) -> dict:
    """Add _nocount=1 to a huge table's page unless the visitor asked for the count (?_count=1)."""
    parts = [urllib.parse.unquote(p) for p in scope.get("path", "").strip("/").split("/")]
    if len(parts) != 2:
        return scope
    table = parts[1].rsplit(".", 1)[0] if parts[1].endswith((".json", ".csv")) else parts[1]
    if table not in huge:
        return scope
    query = scope.get("query_string", b"").decode("latin-1")
    args = urllib.parse.parse_qs(query, keep_blank_values=True)
    if "_nocount" in args or "_count" in args:
        return scope
    query = (query + "&" if query else "") + "_nocount=1"
    return {**scope, "query_string": query.encode("latin-1")}


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def dashboard_manners(scope: dict, receive: Any, send: Any) -> None:
            if scope.get("type") == "http":
                config = datasette.plugin_config(PLUGIN_NAME) or {}
                scope = _with_nocount(scope, set(config.get("huge_tables", HUGE_TABLES)))
            await app(scope, receive, send)

        return guard(datasette, dashboard_manners)  # the front door comes first

    return wrap
