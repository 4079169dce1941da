"""One bucket of the Parquet mirror as the frames detection reads, and the run's own Parquet beside it.

What a worker of a Dask cluster works on (`tracker.detection.bucket_tasks`): the orders of one bucket typed as
the store's readers type them (`detectors.view`: times as Julian days, text as plain objects, counts as
integers), their shipments, their tracking events (for the facts and for the evidence of a finding) and their
seller messages. A number's orders and events share a bucket, so every fact of a number and every count of
the orders on it is whole within its bucket.

A run writes what it finds under DEST/_detect/ (`Run`): the facts it computed, the seller messages routed to the
bucket of their order, the flags, the pressure of each seller message, each order's seller and buyer totals,
the scores; the client merges flags and scores into the store from there.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from detectors import facts, view
from tracker.mirror.layout import TABLES, Destination, Manifest, read_bucket

RUN_FOLDER = "_detect"
EVENT_DETAIL_COLUMNS = ("id", "tracking_number", "occurred_at", "status", "raw_code", "description", "location",
                        "city", "postcode", "country", "snapshot_sha256")
_ORDER_TEXT = [c for c in view.ORDER_COLUMNS if c not in ("promised_days", "amount")]
_ORDER_TIMES = {"ordered_jd": "ordered_at", "shipped_jd": "shipped_at", "confirmed_jd": "buyer_confirmed_at"}


@dataclass
class Run:
    """One cluster run: the mirror it reads, what it decides by, and its own folder of results. Sent to every task
    (plain data: the models travel apart, scattered once)."""

    dest: str
    manifest: Manifest
    as_of: datetime
    settings: dict[str, Any]  # the rules' (tracker.detection.flagging.load_settings)
    scoring: dict[str, Any] = field(default_factory=dict)  # data/model.toml [scoring]
    rules: tuple[tuple[str, str], ...] = ()  # (code, version) of every rule the client runs
    disputes: pd.DataFrame | None = None  # when a dispute opened on an order (its case): order_id, dispute_jd

    def __getstate__(self) -> dict[str, Any]:  # what travels to a worker: the plain data, not a filesystem
        return {k: v for k, v in self.__dict__.items() if k not in ("destination", "kinds")}

    @cached_property
    def destination(self) -> Destination:
        return Destination(self.dest)

    @property
    def buckets(self) -> int:
        return self.manifest.buckets

    @cached_property
    def kinds(self) -> facts.ScanKinds:
        return facts.ScanKinds.from_settings(self.settings)

    def path(self, *parts: str) -> str:
        return self.destination.path(RUN_FOLDER, *parts)

    def url(self, *parts: str) -> str:
        """A path of the run folder as Dask's own writers want it (a URL, or a local path)."""
        base = self.dest.rstrip("/") if "://" in self.dest else self.destination.root
        return posixpath.join(base, RUN_FOLDER, *parts)

    def clear(self) -> None:
        """An empty run folder (the previous run's results go)."""
        import pyarrow.fs as pafs

        folder = self.path()
        if self.destination.fs.get_file_info(folder).type != pafs.FileType.NotFound:
            self.destination.fs.delete_dir(folder)
        self.destination.fs.create_dir(folder, recursive=True)

    # ------------------------------------------------------------------ the run's results, by bucket

    def write(self, name: str, bucket: int, table: Any, *, part: str = "part") -> None:
        """A result table of one bucket (one file; `part` names it among several writers of the bucket)."""
        import pyarrow.parquet as pq

        folder = self.path(name, f"bucket={bucket}")
        self.destination.fs.create_dir(folder, recursive=True)
        pq.write_table(table, posixpath.join(folder, f"{part}.parquet"), filesystem=self.destination.fs)

    def read(self, name: str, bucket: int | None = None, schema: Any = None) -> Any:
        """Every file of a result (of one bucket) as one Arrow table (`schema` when there is none)."""
        import pyarrow as pa
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        folder = self.path(name) if bucket is None else self.path(name, f"bucket={bucket}")
        found = self.destination.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True, recursive=True))
        paths = sorted(f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(".parquet"))
        if not paths:
            return schema.empty_table() if schema is not None else pa.table({})
        return pq.read_table(paths, filesystem=self.destination.fs, partitioning=None, schema=schema)

    # ------------------------------------------------------------------ the mirror's bucket as frames

    def mirrored(self, table: str, bucket: int, columns: list[str] | None = None) -> Any:
        return read_bucket(self.destination, self.manifest, table, bucket, columns)


def order_frame(run: Run, bucket: int, *, shipments: bool = True) -> pd.DataFrame:
    """The bucket's orders as the store's readers frame them (`detectors.view`), with their shipment's state and
    not-found count; no facts yet (`join_facts`)."""
    table = run.mirrored("orders", bucket, [*_ORDER_TEXT, "promised_days", "amount", *_ORDER_TIMES.values()])
    columns: dict[str, pd.Series] = {}
    for name in view.ORDER_COLUMNS:
        values = table.column(name)
        if name in ("promised_days", "amount"):  # as the readers type them: a number of days or NaN
            columns[name] = pd.Series(values.to_numpy(zero_copy_only=False).astype(float))
        else:
            columns[name] = pd.Series(objects(values), dtype=object)
    for name, source in _ORDER_TIMES.items():
        columns[name] = pd.Series(julian_days(table.column(source)))
    frame = pd.DataFrame(columns)
    if shipments:
        found = run.mirrored("shipments", bucket, ["tracking_number", "state", "not_found_count"]).to_pandas()
        at = pd.Index(found["tracking_number"].to_numpy(dtype=object)).get_indexer(
            frame["tracking_number"].to_numpy(dtype=object))
        hit = at >= 0
        state = np.full(len(frame), None, dtype=object)
        state[hit] = found["state"].to_numpy(dtype=object)[at[hit]]
        count = np.zeros(len(frame), dtype=np.int64)
        count[hit] = pd.to_numeric(found["not_found_count"]).fillna(0).to_numpy(dtype=np.int64)[at[hit]]
        frame["shipment_state"] = pd.Series(state, dtype=object)
        frame["not_found_count"] = count
    return frame


def julian_days(texts: Any) -> np.ndarray:
    """Stored times as SQLite's julianday() reads them (NaN: none): the definition's own conversion."""
    from tracker.detection import arrow

    return facts.julian_day(arrow._epoch_ms(texts))


def objects(column: Any) -> np.ndarray:
    """An Arrow text column as plain Python objects (None where missing), as the store's readers hand text over."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def join_facts(frame: pd.DataFrame, known: dict[str, Any]) -> None:
    """Each order's facts (0, NaN or None where its number has no event), in place: the store readers' join."""
    from tracker.detection import readers

    readers._join_facts(frame, known)


def events(run: Run, bucket: int) -> Any:
    """The bucket's tracking events (every column a finding's evidence shows), as an Arrow table."""
    return run.mirrored("events", bucket, list(EVENT_DETAIL_COLUMNS))


def shipment_facts(table: Any, kinds: facts.ScanKinds) -> dict[str, Any]:
    """Every number's facts from its events (`detectors.facts`, the one definition), decoded."""
    from tracker.detection import arrow

    return facts.shipment_facts(arrow.event_columns(table), kinds)


FACTS_SCHEMA = TABLES["shipment_facts"].schema()


def facts_table(found: dict[str, Any]) -> Any:
    """Facts (`shipment_facts`) as an Arrow table of the mirror's shipment_facts schema."""
    import pyarrow as pa

    fields = [FACTS_SCHEMA.field(n) for n in ("tracking_number", *facts.FACT_COLUMNS)]
    return pa.table({f.name: pa.array(found[f.name], f.type) for f in fields}, schema=pa.schema(fields))


def facts_of_table(table: Any) -> dict[str, Any]:
    """The facts a run wrote, as `join_facts` takes them."""
    out: dict[str, Any] = {}
    for name in ("tracking_number", *facts.FACT_COLUMNS):
        column = table.column(name)
        kind = column.type
        if kind == "string":
            out[name] = objects(column)
        elif kind == "double":
            out[name] = column.to_numpy(zero_copy_only=False).astype(float)
        else:
            out[name] = column.to_numpy(zero_copy_only=False).astype(np.int64)
    return out


def event_records(table: Any) -> Any:
    """A lookup of the bucket's events as plain records by number, in time order (as `store.event_records`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def records(numbers: set[str]) -> list[dict[str, Any]]:
        wanted = sorted(n for n in numbers if isinstance(n, str) and n)
        if not wanted:
            return []
        found = table.filter(pc.is_in(table.column("tracking_number"), value_set=pa.array(wanted, pa.string())))
        found = found.sort_by([("tracking_number", "ascending"), ("occurred_at", "ascending"), ("id", "ascending")])
        return found.select(list(EVENT_DETAIL_COLUMNS)).to_pylist()

    return records


MESSAGE_COLUMNS = ("id", "order_id", "sent_at", "text")


def seller_messages(run: Run, bucket: int) -> pd.DataFrame:
    """The seller messages routed to this bucket (those of its orders): id, order_id, sent_at, text, in the
    store's order (order, time, id)."""
    import pyarrow as pa

    schema = pa.schema([("id", pa.int64()), ("order_id", pa.string()), ("sent_at", pa.string()),
                        ("text", pa.string())])
    table = run.read("messages", bucket, schema=schema)
    frame = pd.DataFrame({name: (table.column(name).to_numpy(zero_copy_only=False).astype(np.int64) if name == "id"
                                 else objects(table.column(name))) for name in MESSAGE_COLUMNS})
    for name in ("order_id", "sent_at", "text"):
        frame[name] = frame[name].astype(object)
    return frame.sort_values(["order_id", "sent_at", "id"], kind="stable").reset_index(drop=True)


def message_jd(messages: pd.DataFrame) -> np.ndarray:
    """The messages' times as Julian days (`sent_jd` of the rules' seller messages)."""
    import pyarrow as pa

    return julian_days(pa.array(messages["sent_at"].to_numpy(dtype=object), pa.string()))
