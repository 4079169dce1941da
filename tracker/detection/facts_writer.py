"""The write of `shipment_facts`: rows in number order, in one transaction with their watermark.

A refresh of every number hands its write to a spawned child process (`start`), so that writing a row per
number (about a second at a million) runs on the other core while the run goes on with its rules; in a
thread it would share the interpreter's lock with them and gain nothing. This module imports only the
standard library, numpy and the definition's column names, so the child starts in a fraction of a second.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from typing import Any

import numpy as np

from detectors.facts import FACT_COLUMNS, Coded, texts

_INSERT = (f"INSERT OR REPLACE INTO shipment_facts (tracking_number, {', '.join(FACT_COLUMNS)}) "
           f"VALUES ({', '.join('?' * (len(FACT_COLUMNS) + 1))})")
_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"


# rows turned into Python values at a time: a million rows' 27 columns at once would be a gigabyte of objects
ROWS_PER_BATCH = 50_000


def write_rows(conn: sqlite3.Connection, computed: dict[str, Any]) -> None:
    """INSERT OR REPLACE the facts' rows (tracking_number, then FACT_COLUMNS; text as objects or `Coded`), in
    number order: each row lands at the end of the key's B-tree. The caller owns the transaction."""
    numbers = computed["tracking_number"]
    if not len(numbers):
        return
    order = np.argsort(np.asarray(numbers).astype("U"), kind="stable")
    names = ("tracking_number", *FACT_COLUMNS)
    for start in range(0, len(order), ROWS_PER_BATCH):
        rows = order[start:start + ROWS_PER_BATCH]
        columns = []
        for name in names:
            values = computed[name]
            values = texts(_take(values, rows)) if isinstance(values, Coded) else np.asarray(values)[rows]
            if values.dtype.kind == "f":
                values = np.where(np.isnan(values), None, values.astype(object))
            columns.append(values.tolist())
        conn.executemany(_INSERT, zip(*columns, strict=True))


def _take(column: Coded, rows: np.ndarray) -> Coded:
    return Coded(np.asarray(column.codes)[rows], column.values)


def store(conn: sqlite3.Connection, computed: dict[str, Any], whole: bool, meta: dict[str, str]) -> None:
    """Write the facts (all of them anew when `whole`) and their watermark in one transaction."""
    with conn:
        if whole:
            conn.execute("DELETE FROM shipment_facts")
        write_rows(conn, computed)
        conn.executemany(_META, meta.items())


def store_in_file(path: str, computed: dict[str, Any], whole: bool, meta: dict[str, str]) -> int:
    """`store` on a connection of its own to the store's file (in the child process); the rows written."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = NORMAL")
        store(conn, computed, whole, meta)
        return len(computed["tracking_number"])
    finally:
        conn.close()


def start(path: str, computed: dict[str, Any], whole: bool, meta: dict[str, str]) -> Future:
    """`store_in_file` in a spawned child process; the future answers when the facts are committed."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        return pool.submit(store_in_file, path, computed, whole, meta)
    finally:
        pool.shutdown(wait=False)  # the child ends once it has written; the future still answers
