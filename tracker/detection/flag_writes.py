"""The rules' transaction: the flags, each examined order's next deadline, and the marks the next run starts from.

`flagging` works out what to write (`FlagWrites`, from the findings and the flags stored) and stores it in its
own process (`store`), or, for a run over the whole store, hands it to the writing child (`to_files`, then
`store_files` there), which has written the facts and folded the search queue by then: the classifier's frame
is built meanwhile, with the flags handed over in memory (after a whole-store write the active flags are the
findings). In a thread the write would hold the interpreter's lock for each value it binds, and gain little.
Imports only the standard library and `tracker.db`; Arrow and the driver where files are written or read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from tracker.db import set_meta


@dataclass
class FlagWrites:
    """What storing the findings writes: the rows of each statement, and the flags active once they are written
    (order_id, code, severity)."""

    inserts: list[tuple] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    reactivations: list[tuple] = field(default_factory=list)
    resolutions: list[tuple] = field(default_factory=list)
    active: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def raised(self) -> int:
        return len(self.inserts) + len(self.reactivations)


_STATEMENTS = {
    "inserts": "INSERT INTO flags (order_id, code, severity, explanation, evidence, rule_version, detected_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
    "reactivations": "UPDATE flags SET severity = ?, explanation = ?, evidence = ?, rule_version = ?, detected_at = ?, "
                     "resolved_at = NULL WHERE order_id = ? AND code = ?",
    "updates": "UPDATE flags SET severity = ?, explanation = ?, evidence = ?, rule_version = ? "
               "WHERE order_id = ? AND code = ?",
    "resolutions": "UPDATE flags SET resolved_at = ? WHERE order_id = ? AND code = ?",
}
_DEADLINES = "INSERT OR REPLACE INTO rule_deadlines (order_id, due_at) VALUES (?, ?)"
_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"


def apply_writes(conn: Any, writes: FlagWrites) -> None:
    """The flags' statements, in the caller's transaction."""
    for name, sql in _STATEMENTS.items():
        conn.executemany(sql, getattr(writes, name))


def store(db: Any, writes: FlagWrites, deadlines: list[tuple[str, str]], meta: dict[str, str],
          examined: str | None = None) -> None:
    """The rules' transaction, on `db` (a `sqlite_utils.Database`): the flags, the deadlines of the examined
    orders (`examined`: their ids as a JSON list; every order's when None), and the `meta` keys."""
    conn = db.conn
    with conn:
        apply_writes(conn, writes)
        if examined is None:
            conn.execute("DELETE FROM rule_deadlines")
        else:
            conn.execute("DELETE FROM rule_deadlines WHERE order_id IN (SELECT value FROM json_each(?))", [examined])
        conn.executemany(_DEADLINES, deadlines)
        for key, value in meta.items():
            set_meta(db, key, value)


def to_files(folder: str, writes: FlagWrites, deadlines: list[tuple[str, str]], meta: dict[str, str]) -> list[str]:
    """A whole-store write's rows as Arrow IPC files in `folder`, one per statement with rows, in the order they
    run (`store_files`), bound there from Arrow memory as the facts are. At 1M orders (82k flags, 140k deadlines)
    writing them costs this process 0.44 s; as a pickle handed to the pool, the pool's feeder thread held it about
    0.7 s."""
    import pyarrow as pa

    parts = [*((name, getattr(writes, name)) for name in _STATEMENTS), ("deadlines", deadlines),
             ("meta", list(meta.items()))]
    files = []
    for name, rows in parts:
        if not rows:
            continue
        columns = [pa.array(column, pa.string()) for column in zip(*rows, strict=True)]
        table = pa.table(columns, names=[f"c{i}" for i in range(len(columns))])
        path = os.path.join(folder, f"{len(files):02d}-{name}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table)
        files.append(path)
    return files


def store_files(path: str, files: list[str]) -> int:
    """In the writing child: the rules' transaction of a whole-store run from `to_files`' files (every order's
    deadlines replaced), through the ADBC SQLite driver, which binds each value from the mapped file; the rows
    written."""
    import pyarrow as pa

    from tracker.detection import arrow

    statements = {**_STATEMENTS, "deadlines": _DEADLINES, "meta": _META}
    written = 0
    with arrow.write_transaction(path) as conn:
        conn.execute("DELETE FROM rule_deadlines")
        for file in files:
            name = os.path.basename(file)[3:-len(".arrow")]
            table = pa.ipc.open_file(pa.memory_map(file)).read_all().combine_chunks()
            for batch in table.to_batches():
                conn.execute(statements[name], batch)
            written += table.num_rows
    return written
