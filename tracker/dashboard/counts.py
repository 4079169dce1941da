"""Case counts per (status, category) from the `case_counts` table the triggers keep (migration 007).

My Reports and the `cases` facets read these ~40 rows instead of counting 100k cases on every view.
A facet falls back to Datasette's own counting whenever the page has a filter the table cannot answer.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from datasette.database import QueryInterrupted
from datasette.facets import ColumnFacet
from datasette.utils import path_with_added_args, path_with_removed_args

COUNTED = ("status", "category")
# Query-string arguments that change what is shown, never which cases are counted.
HARMLESS_ARGS = {
    "_sort", "_sort_desc", "_next", "_size", "_facet", "_facet_size", "_nocount", "_count", "_labels", "_shape",
    "_col", "_nocol", "_json", "_trace", "_nofacet", "_nosuggest", "_timelimit", "_extra",
}


def has_case_counts(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'case_counts'").fetchone() is not None


def rebuild_case_counts(conn: sqlite3.Connection) -> None:
    """Recount from `cases` (run when serving starts: a write that bypassed the triggers is forgotten)."""
    if not has_case_counts(conn):
        return
    with conn:
        conn.execute("DELETE FROM case_counts")
        conn.execute(
            "INSERT INTO case_counts(status, category, n) SELECT status, category, count(*) FROM cases GROUP BY 1, 2"
        )


def counts_where(pairs: list[tuple[str, str]]) -> tuple[str, list[str]] | None:
    """The request's filters as a WHERE over case_counts, or None when some filter needs the cases rows."""
    clauses, params = ["n > 0"], []
    for key, value in pairs:
        if key.startswith("_"):
            if key in HARMLESS_ARGS:
                continue
            return None
        column, _, op = key.partition("__")
        if column not in COUNTED:
            return None
        if op in ("", "exact"):
            clauses.append(f"{column} = ?")
            params.append(value)
        elif op == "not":
            clauses.append(f"{column} != ?")
            params.append(value)
        elif op == "in" and not value.startswith("["):
            values = [v for v in value.split(",")]
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        else:
            return None
    return " AND ".join(clauses), params


class CaseCountFacet(ColumnFacet):
    """A column facet on `cases.status` / `cases.category` answered from `case_counts` when it can be."""

    type = "case_count"

    async def facet_results(self) -> tuple[list[dict[str, Any]], list[str]]:
        pairs = self.get_querystring_pairs()
        summary = counts_where(pairs) if self.table == "cases" else None
        db = self.ds.get_database(self.database)
        if summary is None or not await db.execute_fn(has_case_counts):
            return await super().facet_results()  # Datasette's own count over the filtered rows
        where, params = summary
        facet_size = self.get_facet_size()
        results, timed_out = [], []
        for source_and_config in self.get_configs():
            config = source_and_config["config"]
            column = config.get("column") or config["simple"]
            if column not in COUNTED:
                continue
            sql = (
                f"SELECT {column} AS value, sum(n) AS count FROM case_counts WHERE {where} "
                f"GROUP BY {column} ORDER BY count DESC, value LIMIT {facet_size + 1}"
            )
            try:
                rows = (await db.execute(sql, params, custom_time_limit=self.ds.setting("facet_time_limit_ms"))).rows
            except QueryInterrupted:
                timed_out.append(column)
                continue
            values = []
            for row in rows[:facet_size]:
                # the same toggle links as Datasette's column facet
                selected = (column, str(row["value"])) in pairs
                if selected:
                    toggle_path = path_with_removed_args(self.request, {column: str(row["value"])})
                else:
                    toggle_path = path_with_added_args(self.request, {column: row["value"]})
                values.append(
                    {
                        "value": row["value"],
                        "label": row["value"],
                        "count": row["count"],
                        "toggle_url": self.ds.absolute_url(self.request, self.ds.urls.path(toggle_path)),
                        "selected": selected,
                    }
                )
            results.append(
                {
                    "name": column,
                    "type": self.type,
                    "hideable": source_and_config["source"] != "metadata",
                    "toggle_url": self.ds.urls.path(path_with_removed_args(self.request, {"_facet": column})),
                    "results": values,
                    "truncated": len(rows) > facet_size,
                }
            )
        return results, timed_out
