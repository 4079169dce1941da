"""The SQLite store: one file, WAL mode, schema by migrations (see `tracker.migrations`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from tracker.errors import BadInput


def open_db(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """Open the store, creating or migrating it first when `create` (every command that writes).

    A read-only command passes `create=False`: a missing file is then bad input, not a new empty store.
    """
    path = Path(path)
    if str(path) != ":memory:":
        if not path.exists():
            if not create:
                raise BadInput(f"{path}: no database here; run 'tracker init' or 'tracker import' first")
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path}: not a usable SQLite database ({exc})") from exc
    if create:
        from tracker.migrations import migrate

        migrate(db)
    return db


def get_meta(db: sqlite_utils.Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


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
