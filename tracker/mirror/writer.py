"""Writing the mirror: rows of one table, read slice by slice from the store, bucketed, written by pyarrow's
dataset writer. What the export runs in a spawned child (the store read column-wise through the ADBC driver, as
detection's child readers read it) or, where there is none to run, in its own process through sqlite3.

Both read the same SELECT (`select_list`: text as text, numbers as numbers, a value of the wrong kind as null)
and convert the rows to the table's Parquet schema the same way, so either way writes the same files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracker.mirror import layout
from tracker.mirror.layout import BUCKET, DELETED, EXPORT, TABLES, Destination, Manifest, Table


@dataclass(frozen=True)
class TableJob:
    """One table's share of an export: the WHERE clauses of its slices (each read as one batch), and whether
    its rows may have left another bucket (orders)."""

    table: str
    slices: tuple[str, ...]
    moves: bool = False
    part: str = "0"  # names this job's files apart from another job's of the same table and export


@dataclass
class Written:
    table: str
    files: list[str] = field(default_factory=list)  # relative to the destination
    rows: int = 0
    moved: int = 0


def select_list(table: Table) -> str:
    """The table's columns as typed expressions: text as text, a number where the schema wants one (else null),
    as detection reads them."""
    out = []
    for name, kind in table.columns:
        column = f'"{name}"'
        if kind == "string":
            out.append(f"CAST({column} AS TEXT) AS {column}")
        elif kind == "float64":
            out.append(f"CASE WHEN typeof({column}) IN ('integer', 'real') THEN CAST({column} AS REAL) END AS {column}")
        else:
            out.append(f"CASE WHEN typeof({column}) = 'integer' THEN {column} END AS {column}")
    return ", ".join(out)


def write_table(store: str | sqlite3.Connection, dest: str, manifest: Manifest, job: TableJob) -> Written:
    """Write one table's slices to the mirror at `dest` as export `manifest.export`. `store`: the store's file
    (read through the ADBC driver: in a child process only) or a sqlite3 connection."""
    spec = TABLES[job.table]
    destination = Destination(dest)
    written = Written(job.table)
    fetch, close = _reader(store, spec)

    def batches() -> Iterator[Any]:
        for where in job.slices:
            found = fetch(f"SELECT {select_list(spec)} FROM {spec.source} WHERE {where} ORDER BY rowid")
            if not found.num_rows:
                continue
            batch = to_batch(spec, manifest, found)
            written.rows += batch.num_rows
            yield batch
            if job.moves:
                moved = moved_orders(destination, manifest, batch.column(spec.key), batch.column(BUCKET))
                if moved:
                    written.moved += len(moved)
                    yield tombstones(spec, manifest, moved)

    try:
        written.files = write(destination, manifest, spec, batches(), job.part)
    finally:
        close()
    return written


def _reader(store: str | sqlite3.Connection, spec: Table) -> tuple[Any, Any]:
    """A function from SQL to an Arrow table of the spec's columns, and how to end the reading."""
    import pyarrow as pa

    if isinstance(store, str):
        from tracker.detection import arrow

        conn = arrow.Connection(store)  # one read transaction for every slice
        return (lambda sql: conn.fetch(sql, one_batch=True)), conn.close

    def fetch(sql: str) -> Any:
        rows = store.execute(sql).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(spec.columns)
        return pa.table([_array(values, spec.schema().field(name).type) for name, values in
                         zip(spec.names, columns, strict=True)], names=spec.names)

    return fetch, lambda: None


def _array(values: tuple[Any, ...], kind: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_string(kind):
        return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())
    return pa.array(values, kind)


def to_batch(spec: Table, manifest: Manifest, found: Any) -> Any:
    """Rows read (an Arrow table of the spec's columns, however the driver typed them) as one record batch of the
    table's schema, with the export, not deleted, and each row's bucket."""
    import pyarrow as pa

    schema = spec.schema(bucket=True)
    n = found.num_rows
    arrays = []
    for name in spec.names:
        column = found.column(name).combine_chunks()
        wanted = schema.field(name).type
        if column.type != wanted:  # a slice with no value in a column: the driver guessed its type
            column = column.cast(wanted)
        arrays.append(column)
    arrays.append(pa.array(np.full(n, manifest.export, dtype=np.int64)))
    if spec.versioned:
        arrays.append(pa.array(np.zeros(n, dtype=bool)))
    by = found.column(spec.bucket_by).to_numpy(zero_copy_only=False)
    arrays.append(pa.array(layout.buckets_of(by, manifest.buckets), pa.int32()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def tombstones(spec: Table, manifest: Manifest, moved: dict[str, int]) -> Any:
    """A row per moved key in the bucket it left, marking it deleted there."""
    import pyarrow as pa

    schema = spec.schema(bucket=True)
    n = len(moved)
    arrays = [pa.array(list(moved), pa.string()) if name == spec.key else pa.nulls(n, schema.field(name).type)
              for name in spec.names]
    arrays += [pa.array(np.full(n, manifest.export, dtype=np.int64)), pa.array(np.ones(n, dtype=bool)),
               pa.array(np.fromiter(moved.values(), dtype=np.int32, count=n))]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def moved_orders(destination: Destination, manifest: Manifest, ids: Any, buckets: Any) -> dict[str, int]:
    """Of these orders (ids, their bucket now), those whose mirrored row lives in another bucket: id -> that
    bucket. One scan of the mirror's order ids (one column), filtered to these."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    paths = [destination.path(p) for by in manifest.files.get("orders", {}).values() for p in by]
    if not paths:
        return {}
    mirrored = ds.dataset(paths, filesystem=destination.fs, format="parquet",
                          schema=TABLES["orders"].schema(bucket=True), partition_base_dir=destination.path("orders"),
                          partitioning=ds.partitioning(pa.schema([(BUCKET, pa.int32())]), flavor="hive"))
    found = mirrored.to_table(columns=["order_id", EXPORT, DELETED, BUCKET],
                              filter=ds.field("order_id").isin(ids) & ~ds.field(DELETED)).to_pandas()
    if found.empty:
        return {}
    latest = found.sort_values(EXPORT, kind="stable").drop_duplicates("order_id", keep="last").set_index("order_id")
    now_in = pd.Series(buckets.to_numpy(zero_copy_only=False), index=ids.to_pandas())
    old = latest[BUCKET].astype(np.int64)
    moved = old[old.to_numpy() != now_in.reindex(old.index).to_numpy()]
    return {str(k): int(v) for k, v in moved.items()}


def write(destination: Destination, manifest: Manifest, table: Table, batches: Iterator[Any], part: str = "0"
          ) -> list[str]:
    """The batches into the table's folder, one file per bucket (pyarrow's dataset writer), named by the export;
    returns the files written, relative to the destination."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    written: list[str] = []
    schema = table.schema(bucket=True)
    ds.write_dataset(
        batches, destination.path(table.name), schema=schema, format="parquet", filesystem=destination.fs,
        partitioning=ds.partitioning(pa.schema([schema.field(BUCKET)]), flavor="hive"),
        basename_template=f"part-{manifest.export:06d}-{part}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore", max_partitions=manifest.buckets + 1,
        max_open_files=manifest.buckets + 8, file_visitor=lambda f: written.append(f.path),
    )
    return [destination.relative(path) for path in written]


def compact(destination: Destination, manifest: Manifest, more_than: int) -> int:
    """Rewrite as one file each (table, bucket) holding more than `more_than` files: its newest rows, tombstones
    spent. The old files become the manifest's garbage."""
    import pyarrow.parquet as pq

    done = 0
    for name, by_bucket in manifest.files.items():
        table = TABLES[name]
        for bucket, paths in list(by_bucket.items()):
            if len(paths) <= more_than:
                continue
            found = pq.read_table([destination.path(p) for p in paths], filesystem=destination.fs,
                                  partitioning=None, schema=table.schema())
            if table.versioned:
                found = layout.newest(found, table.key)
            relative = f"{name}/{BUCKET}={bucket}/compact-{manifest.export:06d}.parquet"
            pq.write_table(found, destination.path(relative), filesystem=destination.fs)
            manifest.garbage += paths
            by_bucket[bucket] = [relative]
            done += 1
    return done
