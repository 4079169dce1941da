"""Whether `tracker detect` has anything to do, told from the store's marks alone, before any frame or model
library is loaded (a run with nothing new costs the time to start Python, not the second those take).

Nothing to do when, since the last complete run: no order, scan, message or poll was added (the watermarks of
`flagging` in `meta`); `as_of` did not go back; no rule's verdict came due (`rule_deadlines`) and no score's
(`scores_next_due`); the last run's scores were written; and no input of detection outside the store changed:
the signature of the data files, the settings the user overrides, the detectors' code and the active model
(`inputs_signature`, a stat of each file: a changed file means the full path decides, never a stale answer).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from tracker.config import DATA_DIR, PACKAGE_ROOT
from tracker.timeutil import to_db

META_PREFIX = "detect."
META_INPUTS = META_PREFIX + "inputs"
META_RUN = META_PREFIX + "run"  # the run token the rules' marks were written with (see pipeline)
SCORES_RUN = "scores_run"  # tracker.detection.scoring.META_RUN
SCORES_NEXT_DUE = "scores_next_due"  # tracker.detection.scoring.META_NEXT_DUE
_JD_UNIX_EPOCH = 2440587.5


def marks(conn: sqlite3.Connection) -> dict[str, int]:
    """The watermarks: the last order change, scan, message and poll the store holds."""
    one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
    return {
        "orders_seq": one("SELECT max(seq) FROM orders"),
        "event_id": one("SELECT max(id) FROM tracking_events"),
        "message_id": one("SELECT max(id) FROM messages"),
        "poll_id": one("SELECT max(id) FROM poll_log"),
    }


def _files() -> list[Path]:
    """Every file whose content detection's outcome may depend on, outside the store."""
    folders = [DATA_DIR, PACKAGE_ROOT / "detectors"]
    for variable in ("TRACKER_CONFIG_DIR", "TRACKER_CARRIERS_DIR"):
        if os.environ.get(variable):
            folders.append(Path(os.environ[variable]))
    found: list[Path] = []
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            found += [Path(root, name) for name in sorted(names)]
    return found


def inputs_signature(conn: sqlite3.Connection) -> str:
    """A digest of what detection reads outside the store: each file's path, size and modification time, the
    override folders named in the environment, and the store's active model."""
    digest = hashlib.sha256()
    for path in _files():
        try:
            info = path.stat()
        except OSError:
            continue
        digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    for variable in ("TRACKER_CONFIG_DIR", "TRACKER_CARRIERS_DIR", "TRACKER_THRESHOLDS"):
        digest.update(f"{variable}={os.environ.get(variable, '')}\n".encode())
    try:
        active = conn.execute("SELECT id, sha256 FROM models WHERE kind = 'classifier' AND active = 1 "
                              "ORDER BY created_at DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        active = None
    digest.update(repr(active).encode())
    return digest.hexdigest()


def new_messages(conn: sqlite3.Connection) -> bool:
    """Whether a message came since the last run's rules (their watermark in `meta`; True without one): a run
    whose model scores without scikit-learn still needs it for a seller message the pressure cache lacks."""
    last = _meta(conn, META_PREFIX + "message_id")
    return last is None or int(conn.execute("SELECT max(id) FROM messages").fetchone()[0] or 0) != int(last)


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def nothing_to_do(conn: sqlite3.Connection, as_of: datetime) -> bool:
    """Whether a detect run at `as_of` would change nothing but the cases' clocks (see the module docstring)."""
    as_of_text = to_db(as_of)
    last_as_of = _meta(conn, META_PREFIX + "as_of")
    if last_as_of is None or as_of_text < last_as_of:
        return False
    if _meta(conn, META_RUN) is None or _meta(conn, META_RUN) != _meta(conn, SCORES_RUN):
        return False
    if any(_meta(conn, META_PREFIX + key) != str(value) for key, value in marks(conn).items()):
        return False
    if conn.execute("SELECT 1 FROM rule_deadlines WHERE due_at <= ? LIMIT 1", [as_of_text]).fetchone():
        return False
    next_due = _meta(conn, SCORES_NEXT_DUE)
    if next_due is None or float(next_due) < as_of.timestamp() / 86400 + _JD_UNIX_EPOCH:
        return False
    return _meta(conn, META_INPUTS) == inputs_signature(conn)
