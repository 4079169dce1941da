"""The dashboard's own pages: My Reports, a case, a stored carrier page, search, and the status change.

Each view reads through Datasette's read connections (bounded, indexed queries; search runs under a time
limit); the only write is a status change, through Datasette's write thread into `tracker.cases.set_status`,
the same function the CLI calls. Search reads the index as it stands and says when changed rows wait to
be indexed (tracker.search_index): a page view never writes, so it never waits for an import's lock.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import sqlite_utils
from datasette.database import QueryInterrupted
from datasette.utils import tilde_encode
from datasette.utils.asgi import Forbidden, NotFound, Request, Response
from markupsafe import Markup, escape

from tracker.cases.privacy import load_key
from tracker.dashboard import queries
from tracker.dashboard.config import SET_STATUS_ACTION
from tracker.dashboard.public import visitor_view
from tracker.errors import BadInput
from tracker.search_index import pending_rows

# A search over millions of orders is cut short rather than left to hang the page.
SEARCH_TIME_LIMIT_MS = 1000


async def databases(request: Request, datasette: Any) -> Response:
    """Datasette's /-/databases without the file paths: the database's place on disk is nobody's business."""
    listed = [
        {"name": db.name, "route": db.route, "size": db.size, "is_mutable": db.is_mutable,
         "is_memory": db.is_memory, "hash": db.hash}
        for name, db in datasette.databases.items() if name != "_internal"
    ]
    if request.url_vars.get("format"):
        return Response.json(listed)
    return await _page(datasette, request, "show_json.html",
                       {"filename": "databases.json", "data_json": json.dumps(listed, indent=4)})


def _settings():  # noqa: ANN202 - tracker.cases.settings.CaseSettings
    from tracker.cases.settings import load_settings

    return load_settings()


def _cases_url(datasette: Any, **filters: str) -> str:
    args = {key: value for key, value in filters.items() if value}
    args["_sort"] = "next_deadline_at"
    return datasette.urls.table(datasette.get_database().name, "cases") + "?" + urllib.parse.urlencode(args)


def _case_url(datasette: Any, case_id: int) -> str:
    return datasette.urls.path(f"/-/case/{case_id}")


async def _page(datasette: Any, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    return Response.html(await datasette.render_template(template, context, request=request), status=status)


async def my_reports(request: Request, datasette: Any) -> Response:
    """My Reports: a tab per status with its count, a category filter, and the cases due next."""
    settings = _settings()
    category = request.args.get("category") or None
    if category and category not in settings.categories:
        raise NotFound(f"No report category {category!r}; categories: {', '.join(settings.categories)}")
    db = datasette.get_database()

    def read(conn):  # noqa: ANN001, ANN202
        deadline_statuses = [s.id for s in settings.statuses.values() if s.deadlines]
        return (
            queries.status_counts(conn, category),
            queries.category_counts(conn),
            queries.due_next(conn, deadline_statuses, category),
        )

    counts, per_category, due = await db.execute_fn(read)
    statuses = [
        {
            "id": s.id,
            "label": s.label,
            "description": s.description,
            "filter": s.filter,
            "count": counts.get(s.id, 0),
            "url": _cases_url(datasette, status=s.id, category=category or ""),
        }
        for s in settings.statuses.values()
    ]
    # The marketplace's own tabs group statuses ("To review" = new + to report); shown as a second row.
    groups: dict[str, list[str]] = {}
    for s in settings.statuses.values():
        groups.setdefault(s.filter, []).append(s.id)
    filters = [
        {
            "label": label,
            "count": sum(counts.get(sid, 0) for sid in ids),
            "url": _cases_url(datasette, status__in=",".join(ids), category=category or ""),
        }
        for label, ids in groups.items()
    ]
    categories = [
        {
            "id": cid,
            "label": label,
            "count": per_category.get(cid, 0),
            "selected": cid == category,
            "url": datasette.urls.path("/-/my-reports") + "?" + urllib.parse.urlencode({"category": cid}),
        }
        for cid, label in settings.categories.items()
    ]
    for row in due:
        row["url"] = _case_url(datasette, row["id"])
        row["status_label"] = settings.statuses[row["status"]].label if row["status"] in settings.statuses else row["status"]
        row["reason_label"] = settings.reasons[row["reason"]].label if row["reason"] in settings.reasons else row["reason"]
        row["deadline_label"] = settings.deadline_labels.get(row["next_deadline_name"] or "", row["next_deadline_name"])
    return await _page(
        datasette,
        request,
        "tracker_my_reports.html",
        {
            "statuses": statuses,
            "filters": filters,
            "categories": categories,
            "category": category,
            "category_label": settings.categories.get(category or "", ""),
            "all_count": sum(counts.values()),
            "all_url": _cases_url(datasette, category=category or ""),
            "all_categories_url": datasette.urls.path("/-/my-reports"),
            "due": due,
        },
    )


def _case_id(request: Request) -> int:
    return int(request.url_vars["case_id"])


async def case_page(request: Request, datasette: Any) -> Response:
    """One case: the order, flags, score, tracking timeline, reuse cluster, deadlines, history."""
    case_id = _case_id(request)
    db = datasette.get_database()
    key = load_key(Path(db.path))  # the key file beside the database, made on first need
    data = await db.execute_fn(lambda conn: queries.case_page(conn, case_id, key))
    if data is None:
        raise NotFound(f"No case {case_id}")
    visitor = request.actor is None  # only with --public-read does a visitor get this far
    if visitor:
        data = visitor_view(data, key)
    settings = _settings()
    case = data["case"]
    current = settings.statuses.get(case["status"])
    can_change = await datasette.permission_allowed(request.actor, SET_STATUS_ACTION, default=False)
    next_statuses = [
        {"id": sid, "label": settings.statuses[sid].label}
        for sid in (current.next if current else ())
        if sid in settings.statuses
    ]
    labels = {sid: s.label for sid, s in settings.statuses.items()}
    return await _page(
        datasette,
        request,
        "tracker_case.html",
        {
            **data,
            "status_label": current.label if current else case["status"],
            "category_label": settings.categories.get(case["category"], case["category"]),
            "reason_label": settings.reasons[case["reason"]].label if case.get("reason") in settings.reasons else case.get("reason"),
            "status_labels": labels,
            "deadline_label": settings.deadline_labels.get(case.get("next_deadline_name") or "", case.get("next_deadline_name")),
            "can_change": can_change,
            "next_statuses": next_statuses,
            "set_status_url": datasette.urls.path(f"/-/case/{case_id}/status"),
            "export_command": f"tracker export {case_id} --out complaint-{case_id}",
            "snapshot_url": datasette.urls.path("/-/snapshot/"),
            "order_row_url": datasette.urls.row(datasette.get_database().name, "orders", tilde_encode(case["order_id"]))
            if data["order"] and not visitor
            else None,
            "visitor": visitor,
            "my_reports_url": datasette.urls.path("/-/my-reports"),
            "case_url": datasette.urls.path("/-/case/"),
            "login_url": datasette.urls.path("/-/login"),
        },
    )


async def set_status(request: Request, datasette: Any) -> Response:
    """POST status (+ note): change a case's status as the signed-in actor, via tracker.cases.set_status."""
    if request.method != "POST":
        return Response.text("Method not allowed: POST a status here", status=405)
    if not await datasette.permission_allowed(request.actor, SET_STATUS_ACTION, default=False):
        raise Forbidden("Sign in to change a case's status")
    case_id = _case_id(request)
    db = datasette.get_database()
    if not (await db.execute("SELECT 1 FROM cases WHERE id = ?", [case_id])).rows:
        raise NotFound(f"No case {case_id}")
    form = await request.post_vars()
    status = (form.get("status") or "").strip()
    note = (form.get("note") or "").strip() or None
    actor = f"{request.actor['id']} (dashboard)"

    def write(conn):  # noqa: ANN001, ANN202
        from tracker.cases import set_status as change_status

        return change_status(sqlite_utils.Database(conn), case_id, status, actor=actor, note=note)

    try:
        changed = await db.execute_write_fn(write, block=True)
    except BadInput as exc:  # a refused transition: say why on the case page, change nothing
        datasette.add_message(request, "; ".join(exc.problems), datasette.ERROR)
        return Response.redirect(_case_url(datasette, case_id))
    label = _settings().statuses[changed["status"]].label
    datasette.add_message(request, f"Case {case_id} is now {label}.", datasette.INFO)
    return Response.redirect(_case_url(datasette, case_id))


async def snapshot(request: Request, datasette: Any) -> Response:
    """A stored carrier page, as inert text: carrier HTML is evidence to read, never a page to run."""
    sha = request.url_vars["sha256"]
    found = await datasette.get_database().execute_fn(lambda conn: queries.snapshot_body(conn, sha))
    if found is None:
        raise NotFound(f"No stored page {sha}")
    row, body = found
    header = (
        f"Stored carrier page {row['sha256']}\n"
        f"tracking number: {row['tracking_number']}  carrier: {row['carrier'] or '-'}\n"
        f"fetched: {row['fetched_at']}  HTTP {row['http_status'] or '-'}  {row['content_type'] or ''}\n"
        f"url: {row['url'] or '-'}\n" + "-" * 72 + "\n"
    )
    return Response(
        header + body,
        status=200,
        content_type="text/plain; charset=utf-8",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": "inline",
        },
    )


def _marked(snippet: str | None) -> Markup:
    """An FTS snippet made safe: the text escaped, then only our own match markers become <mark>."""
    return Markup(str(escape(snippet or "")).replace("\x02", "<mark>").replace("\x03", "</mark>"))


async def search(request: Request, datasette: Any) -> Response:
    """Full-text search across cases, orders and messages, each section under the SQL time limit.

    Reads only: rows changed since the index was last folded are not found yet, and the page says how many.
    A visitor (--public-read) searches cases and orders, not messages.
    """
    q = (request.args.get("q") or "").strip()
    db = datasette.get_database()
    visitor = request.actor is None
    results: dict[str, list[dict[str, Any]]] = {"cases": [], "orders": [], "messages": []}
    timed_out: list[str] = []
    waiting = 0
    if q:
        waiting = await db.execute_fn(pending_rows)
    for section, (sql, params) in queries.search_queries(q).items():
        if visitor and section == "messages":
            continue
        try:
            rows = await db.execute(sql, params, custom_time_limit=SEARCH_TIME_LIMIT_MS)
        except QueryInterrupted:
            timed_out.append(section)
            continue
        results[section] = [dict(row) for row in rows.rows]
    for section in results.values():
        for row in section:
            row["snippet"] = _marked(row.get("snippet"))
            row["case_url"] = _case_url(datasette, row["case_id"]) if row.get("case_id") else None
    for row in results["orders"]:
        row["order_url"] = None if visitor else datasette.urls.row(db.name, "orders", tilde_encode(row["order_id"]))
    return await _page(
        datasette,
        request,
        "tracker_search.html",
        {"q": q, "results": results, "timed_out": timed_out, "waiting": waiting, "visitor": visitor,
         "total": sum(len(v) for v in results.values())},
    )
