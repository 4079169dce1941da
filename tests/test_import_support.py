"""Helpers shared by the importer tests: write import files, snapshot what a store holds."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

TABLES = ("orders", "shipments", "tracking_events", "messages", "meta")

ORDER_HEADER = ["order_id", "buyer_id", "seller_id", "ordered_at", "dest_country"]


def csv_text(header: list[str], rows: list[list[object]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_csv(
    path: Path, header: list[str], rows: list[list[object]], delimiter: str = ",", bom: bool = False
) -> Path:
    path.write_text(
        ("\ufeff" if bom else "") + csv_text(header, rows, delimiter), encoding="utf-8", newline=""
    )
    return path


def write_jsonl(path: Path, objects: list[object]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def order(i: int = 1, **overrides: object) -> dict[str, object]:
    row = {
        "order_id": f"A{i}",
        "buyer_id": f"buyer{i}",
        "seller_id": "store1",
        "ordered_at": "2026-03-01T10:00:00Z",
        "dest_country": "de",
    }
    row.update(overrides)
    return row


def orders_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    header = list(dict.fromkeys(k for r in rows for k in r)) or ORDER_HEADER
    return write_csv(path, header, [[r.get(h, "") for h in header] for r in rows])


def snapshot(db) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Every row of every table an import touches: what 'nothing was written' compares.

    (total_changes cannot show a rollback: it counts rolled-back changes too.)
    """
    return {t: sorted(db.conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
