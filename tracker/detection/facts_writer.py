"""The write of `shipment_facts`: rows in number order, in one transaction with their watermark.

A refresh of every number hands its write to a child process (`start`), so that writing a row per number
(several seconds at a million) runs on the other core while the run goes on with its rules; in a thread it
would share the interpreter's lock with them and gain nothing. The facts travel in an Arrow IPC file the
child maps (a pickle would hold a second copy of them in this process until the child had read it), and the
child binds them from there through the ADBC SQLite driver. This module imports only the standard library,
numpy and the definition, so a child starts in a fraction of a second; Arrow and the driver are imported where
a file is written or read.
"""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import Future
from typing import Any

import numpy as np

from detectors.facts import FACT_COLUMNS, Coded, texts

_NAMES = ("tracking_number", *FACT_COLUMNS)
# a number's row updated in place where it has one, not INSERT OR REPLACE: a replaced row is deleted and made anew
# at the end of the table under a new rowid, so the key's index changes too (an incremental refresh of 9.7k numbers
# among a million wrote 59.9 MB to the log that way, 44.2 MB as updates)
_INSERT = (f"INSERT INTO shipment_facts ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))}) "
           f"ON CONFLICT(tracking_number) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in FACT_COLUMNS)}")
_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
# rows turned into Python values at a time: a million rows' 27 columns at once would be a gigabyte of objects
ROWS_PER_BATCH = 50_000
# the writing child's rows at a time, taken from the facts' file (`store_file`): less decoded text alive at once
FILE_ROWS_PER_BATCH = 10_000


def write_rows(conn: sqlite3.Connection, computed: dict[str, Any]) -> None:
    """Insert the facts' rows, or update a number's row in place where it has one (tracking_number, then
    FACT_COLUMNS; text as objects or `Coded`), in number order: each new row lands at the end of the key's B-tree.
    The caller owns the transaction."""
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


def store_file(path: str, facts_file: str, meta: dict[str, str], rows_per_batch: int = FILE_ROWS_PER_BATCH) -> int:
    """In a child process: every number's facts of `facts_file` (`to_file`) written anew to the store at `path`,
    with their watermark, in one transaction (as `store` writes them, whole); the rows written.

    Through the ADBC SQLite driver, which binds each value straight from the mapped file's Arrow memory: the
    sqlite3 module wanted a Python object made and bound for each of the ~26 million values of a million numbers,
    twice this write's time. A batch of rows at a time, in number order (as `write_rows` orders them), so the
    child never holds every number's facts decoded at once. The driver brings its own copy of SQLite, so this
    runs in a child process only (`tracker.detection.arrow`), its connection closed before the child's next
    task opens one of the sqlite3 module."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tracker.detection import arrow

    table = pa.ipc.open_file(pa.memory_map(facts_file)).read_all()
    # Arrow orders text by its UTF-8 bytes: the order of the code points, as `write_rows` sorts
    order = pc.sort_indices(table.column("tracking_number"))
    with arrow.write_transaction(path) as conn:
        conn.execute("DELETE FROM shipment_facts")
        for start in range(0, table.num_rows, max(int(rows_per_batch), 1)):
            part = table.take(order[start:start + rows_per_batch])
            # text as its values (the driver binds no dictionaries), null where missing
            columns = [pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column
                       for column in part.columns]
            batch = pa.table(columns, names=part.column_names).combine_chunks().to_batches()
            if batch:
                conn.append("shipment_facts", batch[0])
        conn.execute(_META, pa.record_batch([pa.array(list(meta), pa.string()), pa.array(list(meta.values()),
                                                                                          pa.string())],
                                            names=["key", "value"]))
    return table.num_rows


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


def start(path: str, computed: dict[str, Any], meta: dict[str, str], children: Any = None) -> Writing:
    """Every number's facts written anew by a child process (`store_file`): one of the run's `children` (a
    `Children`), or a process started for it. The facts go through a file in a private temporary folder, removed
    once they are written."""
    from tracker import scratch

    folder = scratch.folder("facts")
    try:
        facts_file = os.path.join(folder, "shipment_facts.arrow")
        to_file(computed, facts_file)
        if children is not None:
            return Writing(children.submit(store_file, path, facts_file, meta), folder)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return Writing(pool.submit(store_file, path, facts_file, meta), folder, pool)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
