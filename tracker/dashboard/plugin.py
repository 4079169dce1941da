"""The dashboard's Datasette plugin: its routes, who may change a status, links, and big-table manners.

Registered once with Datasette's plugin manager by `tracker.dashboard.register_plugin()`.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from datasette import hookimpl
from datasette.utils import actor_matches_allow
from markupsafe import Markup, escape

from tracker.dashboard import views
from tracker.dashboard.config import HUGE_TABLES, PLUGIN_NAME, SET_STATUS_ACTION, SET_STATUS_ALLOW
from tracker.dashboard.counts import CaseCountFacet
from tracker.migrations import SEARCH_INDEXES


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [
        (r"^/-/my-reports$", views.my_reports),
        (r"^/-/case/(?P<case_id>[0-9]{1,18})$", views.case_page),
        (r"^/-/case/(?P<case_id>[0-9]{1,18})/status$", views.set_status),
        (r"^/-/snapshot/(?P<sha256>[0-9a-f]{64})$", views.snapshot),
        (r"^/-/search$", views.search),
    ]


@hookimpl
def register_facet_classes() -> list[type]:
    return [CaseCountFacet]


@hookimpl
def permission_allowed(datasette: Any, actor: dict | None, action: str, resource: Any) -> bool | None:
    if action != SET_STATUS_ACTION:
        return None
    allow = (datasette.plugin_config(PLUGIN_NAME) or {}).get("set_status_allow", SET_STATUS_ALLOW)
    return bool(actor) and actor_matches_allow(actor, allow)


@hookimpl
def menu_links(datasette: Any, actor: dict | None) -> list[dict[str, str]]:
    # "Log in" comes from datasette-auth-passwords, "Dashboards" from datasette-dashboards
    return [
        {"href": datasette.urls.path("/-/my-reports"), "label": "My Reports"},
        {"href": datasette.urls.path("/-/search"), "label": "Search"},
    ]


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


def _searches_a_table(scope: dict) -> bool:
    """A table page with ?_search= (Datasette's own search box) over one of our full-text indexes."""
    parts = scope.get("path", "").strip("/").split("/")
    if len(parts) != 2 or parts[1].split(".", 1)[0] not in SEARCH_INDEXES:
        return False
    return "_search" in urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def dashboard_manners(scope: dict, receive: Any, send: Any) -> None:
            if scope.get("type") == "http":
                config = datasette.plugin_config(PLUGIN_NAME) or {}
                scope = _with_nocount(scope, set(config.get("huge_tables", HUGE_TABLES)))
                if _searches_a_table(scope):
                    await views.fold_search_queue(datasette)
            await app(scope, receive, send)

        return dashboard_manners

    return wrap
