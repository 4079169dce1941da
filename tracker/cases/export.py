"""`tracker export`: the complaint packet for one case, written to a folder.

complaint.txt (the form's answers and the strongest facts, ≤ 1000 characters), evidence.json and
evidence.csv (flags with explanations and evidence, the tracking events), timeline.png, and
manifest.json with the SHA-256 of every other file. Other buyers appear only as keyed pseudonyms.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from tracker.cases.complaint import compose_complaint
from tracker.cases.picture import timeline_png
from tracker.cases.privacy import Scrubber, pseudonym, pseudonym_secret, strings_in
from tracker.cases.queries import case_detail
from tracker.cases.settings import load_settings
from tracker.errors import BadInput, RunFailure
from tracker.timeutil import to_db

PACKET_FILES = ("complaint.txt", "evidence.json", "evidence.csv", "timeline.png")
CSV_COLUMNS = ["kind", "time", "code", "severity", "status", "text", "location", "evidence"]


def _check_folder(out: Path, force: bool) -> None:
    if out.is_symlink():
        raise BadInput(f"--out {out}: is a symbolic link; give the folder itself (a link is never followed)")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BadInput(f"--out {out}: folder is not empty; use --force to write into it")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_packet(out: Path, files: dict[str, bytes]) -> None:
    """Put `files` in the folder `out` all at once: written and synced in a temporary folder beside it,
    then renamed into place. A failure (a full disk, a folder we may not write) leaves nothing behind.

    Into an existing folder (--force) each file is renamed over the one of its name: the rename replaces a
    symbolic link planted there instead of writing through it, and the folder's other files stay.
    """
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        where = exc.filename or parent
        raise BadInput(f"--out {out}: cannot write in {where} ({exc.strerror or exc})") from None
    try:
        for name, data in files.items():
            with open(staging / name, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if out.is_dir() and any(out.iterdir()):
            for name in files:
                os.replace(staging / name, out / name)
            staging.rmdir()
        else:
            os.rename(staging, out)  # a missing or empty folder is replaced whole, in one step
        _fsync(out)
        _fsync(parent)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise BadInput(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
        raise RunFailure(f"--out {out}: could not write the packet ({exc.strerror or exc}); nothing was written") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _other_orders(db: sqlite_utils.Database, order: dict[str, Any], flags: list[dict[str, Any]]) -> list[dict]:
    """Orders of other buyers this case touches: sharing its tracking number, or named in flag evidence."""
    mentioned = {s for flag in flags for s in strings_in(flag["evidence"])}
    mentioned |= {str(v) for flag in flags for v in _numbers_in(flag["evidence"])}
    candidates: dict[str, dict] = {}
    cursor = db.conn.execute(
        "SELECT order_id, buyer_id, ordered_at, dest_country, dest_city, dest_postcode, extra FROM orders"
        " WHERE tracking_number = ? AND tracking_number IS NOT NULL AND tracking_number != ''",
        [order.get("tracking_number")],
    )
    names = [d[0] for d in cursor.description]
    for row in cursor:
        candidates[row[0]] = dict(zip(names, row, strict=True))
    mentioned -= set(candidates)
    mentioned = {m for m in mentioned if m and len(m) < 200}
    if mentioned:
        db.conn.execute("CREATE TEMP TABLE IF NOT EXISTS _export_ids (value TEXT PRIMARY KEY)")
        db.conn.execute("DELETE FROM _export_ids")
        db.conn.executemany("INSERT OR IGNORE INTO _export_ids VALUES (?)", [(m,) for m in mentioned])
        cursor = db.conn.execute(
            "SELECT order_id, buyer_id, ordered_at, dest_country, dest_city, dest_postcode, extra FROM orders"
            " WHERE order_id IN (SELECT value FROM _export_ids) OR buyer_id IN (SELECT value FROM _export_ids)")
        for row in cursor:
            candidates.setdefault(row[0], dict(zip(names, row, strict=True)))
        db.conn.execute("DELETE FROM _export_ids")
    return [o for oid, o in sorted(candidates.items())
            if oid != order["order_id"] and o["buyer_id"] != order["buyer_id"]]


def _numbers_in(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers_in(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers_in(v)]
    return []


def _evidence(detail: dict[str, Any], related: list[dict[str, Any]], scrubber: Scrubber,
              complaint_sha: str, as_of: datetime) -> dict[str, Any]:
    case, order = detail["case"], detail["order"] or {}
    keep_case = ["id", "order_id", "status", "status_label", "category", "category_label", "reason",
                 "reason_label", "score", "flags", "opened_at", "dispute_opened_at", "dispute_escalated_at",
                 "dispute_closed_at", "complaint_submitted_at", "decision_at", "outcome", "coupon_value"]
    active = [f for f in detail["flags"] if not f["resolved_at"]]
    return scrubber.value({
        "generated_at": to_db(as_of),
        "case": {k: case.get(k) for k in keep_case},
        "order": {k: v for k, v in order.items() if k not in ("extra", "seq", "imported_at")},
        "flags": [{k: f[k] for k in ("code", "severity", "explanation", "evidence", "detected_at", "rule_version")}
                  for f in active],
        "tracking_events": detail["tracking_events"],
        "related_orders": [
            {"order": pseudonym(scrubber.secret, "order", str(o["order_id"]).strip()),
             "buyer": pseudonym(scrubber.secret, "buyer", str(o["buyer_id"]).strip()),
             "ordered_at": o["ordered_at"], "dest_country": o["dest_country"]}
            for o in related
        ],
        "deadlines": [{k: d[k] for k in ("name", "label", "due_at")} for d in detail["deadlines"]],
        "privacy": "Other buyers' order ids, buyer ids, postcodes and addresses are replaced by "
                   "HMAC-SHA256 pseudonyms keyed with a secret kept beside the tracker database, never exported.",
        "complaint_sha256": complaint_sha,
    })


def _evidence_csv(evidence: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for flag in evidence["flags"]:
        writer.writerow({"kind": "flag", "time": flag["detected_at"], "code": flag["code"],
                         "severity": flag["severity"], "text": flag["explanation"],
                         "evidence": json.dumps(flag["evidence"], sort_keys=True)})
    for event in evidence["tracking_events"]:
        writer.writerow({"kind": "event", "time": event["occurred_at"], "code": event.get("raw_code") or "",
                         "status": event["status"], "text": event.get("description") or "",
                         "location": event.get("location") or ", ".join(
                             str(event[k]) for k in ("city", "postcode", "country") if event.get(k))})
    return buffer.getvalue()


def export_case(db: sqlite_utils.Database, case_id: int | str, out_dir: str | Path, *, force: bool = False,
                as_of: datetime) -> dict[str, Any]:
    """Write the packet for one case into `out_dir`; return the manifest.

    A folder that is not empty is refused (BadInput) unless `force`; files of the same names are replaced.
    All or nothing: see `write_packet`.
    """
    out = Path(out_dir)
    _check_folder(out, force)
    settings = load_settings()
    detail = case_detail(db, case_id, as_of=as_of)
    case, order = detail["case"], detail["order"]
    if order is None:
        raise BadInput(f"case {case['id']}: its order {case['order_id']} is not in the database; nothing to export")
    scrubber = Scrubber(pseudonym_secret(db))
    related = _other_orders(db, order, detail["flags"])
    for other in related:
        scrubber.add_other_order(other, order)

    complaint = compose_complaint(case, order, detail["flags"], settings, scrub=scrubber.text)
    complaint_bytes = complaint.encode("utf-8")  # exactly what goes into the form: no trailing newline
    evidence = _evidence(detail, related, scrubber, hashlib.sha256(complaint_bytes).hexdigest(), as_of)
    events = evidence["tracking_events"]
    first_delivered = next((e["occurred_at"] for e in events if e["status"] == "delivered"), None)

    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    milestones = {
        "ordered": when(order.get("ordered_at")),
        "shipped": when(order.get("shipped_at")),
        "delivered scan": when(first_delivered),
        "receipt confirmed": when(order.get("buyer_confirmed_at")),
        "dispute opened": when(case.get("dispute_opened_at")),
    }
    contents = {
        "complaint.txt": complaint_bytes,
        "evidence.json": (json.dumps(evidence, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"),
        "evidence.csv": _evidence_csv(evidence).encode("utf-8"),
        "timeline.png": timeline_png(events, milestones, f"Order {case['order_id']}: tracking timeline"),
    }
    # hashed from the bytes written, so the manifest vouches for what is on disk
    manifest = {
        "case_id": case["id"],
        "order_id": case["order_id"],
        "generated_at": to_db(as_of),
        "algorithm": "sha256",
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in contents.items()},
    }
    contents["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_packet(out, contents)
    return manifest
