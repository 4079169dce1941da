"""The write of `shipment_facts`: rows in number order, in one transaction with their watermark.

A refresh of every number hands its write to a child process (`start`), so that writing a row per number
(several seconds at a million) runs on the other core while the run goes on with its rules; in a thread it
would share the interpreter's lock with them and gain nothing. The facts travel in an Arrow IPC file the
child maps (a pickle would hold a second copy of them in this process until the child had read it). This
module imports only the standard library, numpy and the definition, so a child starts in a fraction of a
second; Arrow is imported where a file is written or read.
"""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import Future
from typing import Any

import numpy as np

from detectors.facts import FACT_COLUMNS, Coded, texts

_NAMES = ("tracking_number", *FACT_COLUMNS)
_INSERT = (f"INSERT OR REPLACE INTO shipment_facts ({', '.join(_NAMES)}) "
           f"VALUES ({', '.join('?' * len(_NAMES))})")
_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
# rows turned into Python values at a time: a million rows' 27 columns at once would be a gigabyte of objects
ROWS_PER_BATCH = 50_000
# the writing child's rows at a time, taken from the facts' file (`write_file_rows`): fewer objects alive at once
FILE_ROWS_PER_BATCH = 10_000


def write_rows(conn: sqlite3.Connection, computed: dict[str, Any]) -> None:
    """INSERT OR REPLACE the facts' rows (tracking_number, then FACT_COLUMNS; text as objects or `Coded`), in
    number order: each row lands at the end of the key's B-tree. The caller owns the transaction."""
    numbers = computed["tracking_number"]
    if not len(numbers):
        return
    order = np.argsort(np.asarray(numbers).astype("U"), kind="stable")
    for start in range(0, len(order), ROWS_PER_BATCH):
        rows = order[start:start + ROWS_PER_BATCH]
        columns = []
        for name in _NAMES:
            values = computed[name]
            values = texts(Coded(np.asarray(values.codes)[rows], values.values)) if isinstance(values, Coded) \
                else np.asarray(values)[rows]
            if values.dtype.kind == "f":
                values = np.where(np.isnan(values), None, values.astype(object))
            columns.append(values.tolist())
        conn.executemany(_INSERT, zip(*columns, strict=True))


def store(conn: sqlite3.Connection, computed: dict[str, Any], whole: bool, meta: dict[str, str]) -> None:
    """Write the facts (all of them anew when `whole`) and their watermark in one transaction."""
    with conn:
        if whole:
            conn.execute("DELETE FROM shipment_facts")
        write_rows(conn, computed)
        conn.executemany(_META, meta.items())


def to_file(computed: dict[str, Any], out: str) -> None:
    """The facts as an Arrow IPC file: numbers as they are, text as dictionaries of its distinct values (a
    missing one null), times with NaN as null."""
    import pyarrow as pa

    columns = []
    for name in _NAMES:
        values = computed[name]
        if isinstance(values, Coded):
            codes = np.asarray(values.codes)
            indices = pa.array(codes.astype(np.int32), mask=codes < 0)
            columns.append(pa.DictionaryArray.from_arrays(indices, pa.array(list(values.values), pa.string())))
        elif np.asarray(values).dtype == object:
            columns.append(pa.array(values, pa.string()))
        else:
            columns.append(pa.array(values, from_pandas=True))  # NaN -> null
    table = pa.table(columns, names=list(_NAMES))
    with pa.OSFile(out, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _numpy(column: Any) -> np.ndarray:
    """A plain (not dictionary) Arrow column of a `to_file` file as `write_rows` takes it: text as objects, times
    with NaN for null, counts int64."""
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    if pa.types.is_floating(column.type):
        return column.to_numpy(zero_copy_only=False)  # null -> NaN
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


def write_file_rows(conn: sqlite3.Connection, facts_file: str) -> int:
    """`write_rows` of a `to_file` file, a batch of rows at a time: the rows in number order (as `write_rows`
    orders them), each batch taken from the mapped file and made Python values on its own, so the writing child
    never holds every number's facts as arrays or objects at once. The caller owns the transaction."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.ipc.open_file(pa.memory_map(facts_file)).read_all()
    if not table.num_rows:
        return 0
    table = table.unify_dictionaries().combine_chunks()
    # each text column's distinct values once, with None last (code -1: missing), as `texts` makes them
    distinct = {name: np.array([*column.chunk(0).dictionary.to_pylist(), None], dtype=object)
                for name, column in zip(table.column_names, table.columns, strict=True)
                if pa.types.is_dictionary(column.type)}
    # Arrow orders text by its UTF-8 bytes: the order of the code points, as `write_rows` sorts
    order = pc.sort_indices(table.column("tracking_number"))
    for start in range(0, len(order), FILE_ROWS_PER_BATCH):
        part = table.take(order[start:start + FILE_ROWS_PER_BATCH])
        columns = []
        for name in _NAMES:
            column = part.column(name).combine_chunks()
            if name in distinct:
                values = distinct[name][column.indices.fill_null(-1).to_numpy(zero_copy_only=False)]
            else:
                values = _numpy(column)
            if values.dtype.kind == "f":
                values = np.where(np.isnan(values), None, values.astype(object))
            columns.append(values.tolist())
        conn.executemany(_INSERT, zip(*columns, strict=True))
    return table.num_rows


def store_file(path: str, facts_file: str, whole: bool, meta: dict[str, str]) -> int:
    """In a child process: the facts of `facts_file` (`to_file`) written to the store at `path`, on a
    connection of its own, with their watermark (as `store` writes them); the rows written."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = NORMAL")
        with conn:
            if whole:
                conn.execute("DELETE FROM shipment_facts")
            written = write_file_rows(conn, facts_file)
            conn.executemany(_META, meta.items())
        return written
    finally:
        conn.close()


class Writing:
    """The facts' write under way in a child: `result()` waits for it (raising its error) and removes its file."""

    def __init__(self, future: Future, folder: str, own_pool: Any = None):
        self.future, self.folder, self.own_pool = future, folder, own_pool

    def result(self) -> int:
        import shutil

        try:
            return self.future.result()
        finally:
            if self.own_pool is not None:
                self.own_pool.shutdown(wait=False)
            shutil.rmtree(self.folder, ignore_errors=True)


def start(path: str, computed: dict[str, Any], whole: bool, meta: dict[str, str], children: Any = None) -> Writing:
    """The facts written by a child process: one of the run's `children` (a `Children`), or a process started
    for it. The facts go through a file in a private temporary folder, removed once they are written."""
    from tracker import scratch

    folder = scratch.folder("facts")
    try:
        facts_file = os.path.join(folder, "shipment_facts.arrow")
        to_file(computed, facts_file)
        if children is not None:
            return Writing(children.submit(store_file, path, facts_file, whole, meta), folder)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return Writing(pool.submit(store_file, path, facts_file, whole, meta), folder, pool)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
