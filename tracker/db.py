"""The SQLite store: one file, WAL mode, schema by migrations (see `tracker.migrations`)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlite_utils

from tracker.errors import BadInput


def open_db(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """Open the store, creating or migrating it first when `create` (every command that writes).

    A read-only command passes `create=False`: a missing file is then bad input, not a new empty store.
    Refused as bad input, naming the path, before anything is written: a file that is not SQLite, a
    SQLite file some other program made, a store made by a newer tracker, and (when `create`) a file or
    folder tracker may not write.
    """
    path = Path(path)
    memory = str(path) == ":memory:"
    if not memory:
        if not path.exists():
            if not create:
                raise BadInput(f"{path}: no database here; run 'tracker init' or 'tracker import' first")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInput(f"{path}: cannot create the database folder ({exc.strerror or exc})") from None
        if create:
            _check_writable(path)
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    except sqlite3.Error as exc:
        raise BadInput(f"{path}: cannot open the database ({exc})") from None
    try:
        _check_is_ours(conn, path)  # before the pragmas below: WAL mode would change a foreign file
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.OperationalError as exc:
        conn.close()
        raise BadInput(f"{path}: cannot open the database ({exc})") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BadInput(f"{path}: not a usable SQLite database ({exc})") from None
    except BadInput:
        conn.close()
        raise
    db = sqlite_utils.Database(conn)
    if create:
        from tracker.migrations import migrate

        migrate(db)
    return db


def _check_is_ours(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a SQLite file another program made, and a store a newer tracker made."""
    from tracker.migrations import refuse_newer_store

    conn.execute("PRAGMA busy_timeout=30000")
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if tables and "_migrations" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise BadInput(f"{path}: not a tracker database (it holds other tables: {shown}); give another --db")
    refuse_newer_store(conn, str(path))


def _check_writable(path: Path) -> None:
    """A store tracker must write: the file, and its folder (SQLite keeps -wal and -shm files beside it)."""
    folder = path.parent
    if path.exists() and not os.access(path, os.W_OK):
        raise BadInput(f"{path}: the database is read-only; tracker needs to write it (check its permissions)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(
            f"{folder}: folder is not writable; tracker writes {path.name} and its -wal and -shm files there"
        )


def get_meta(db: sqlite_utils.Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


# meta key prefix: what scored with a model (tracker.detection.scoring writes it, the case views read it)
SCORED_BY_META = "scored_by:"
SCORES_RUN_META = "scores_run"  # the detect run whose scores are stored (see tracker.detection.pipeline)


def scored_by(conn: Any, model_id: str | None) -> dict[str, Any] | None:
    """Which model scored (its blend of the shipped model, a local one and the rules prior, and the base
    log-odds its reasons add to), as the scorer recorded it for `model_id`; None when it did not."""
    if not model_id:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [SCORED_BY_META + model_id]).fetchone()
    try:
        return json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None


def set_meta(db: sqlite_utils.Database, key: str, value: str) -> None:
    """Caller owns the transaction."""
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def next_seq(db: sqlite_utils.Database, count: int = 1) -> int:
    """Reserve `count` values of the change counter; returns the first. Caller owns the transaction.

    Rows stamped with a seq above detect's watermark are the ones `detect` re-examines.
    """
    current = int(get_meta(db, "seq", "0") or 0)
    set_meta(db, "seq", str(current + count))
    return current + 1
