"""The mirror's layout: its tables and their Parquet schemas, the buckets, the manifest, reading one bucket.

A destination is a local folder or any fsspec URL (`s3://…`, `gs://…`, `memory://…`), reached through one
pyarrow filesystem either way. Under it:

    _tracker_mirror.json                   the manifest: store, buckets, export count, change marks, files
    orders/bucket=7/part-000003-0.parquet  one file per bucket touched by export 3
    events/…  messages/…  shipments/…  shipment_facts/…

Rows carry `_export`, the export that wrote them. Orders, shipments and shipment facts may be written again
(a re-imported order, a shipment polled, facts recomputed): the row of the newest export wins within a
bucket, and `_deleted` marks a row that deletes its key there (an order whose tracking number moved it to
another bucket). Events and messages are only ever added. Imports only pyarrow, numpy and pandas (plus fsspec
for a URL): a Dask worker reads a bucket with this module alone.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracker.errors import BadInput

FORMAT = 1
MANIFEST = "_tracker_mirror.json"
EXPORT = "_export"
DELETED = "_deleted"
BUCKET = "bucket"
# SipHash-2-4 of each text's UTF-8 bytes under pandas' fixed key (what pandas.util.hash_array computes):
# C-fast, and the same on every machine. The manifest keeps the buckets of a few fixed texts, so an
# implementation that ever hashed differently is caught before it scatters an incremental export.
HASH = "siphash24-utf8-0123456789123456"
_HASH_KEY = "0123456789123456"
_HASH_PROBES = ("", "RR123456785CN", "LP00123456789012", "Заказ-1", "1Z999AA10123456784")


def _text(*names: str) -> list[tuple[str, str]]:
    return [(n, "string") for n in names]


@dataclass(frozen=True)
class Table:
    """One mirrored table: its store table, its key, the column its bucket is hashed from, whether rows are
    written again (newest wins, tombstones delete), and its columns with their Parquet types."""

    name: str
    source: str
    key: str
    bucket_by: str
    versioned: bool
    columns: tuple[tuple[str, str], ...]

    def schema(self, *, bucket: bool = False) -> Any:
        import pyarrow as pa

        kinds = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
        fields = [pa.field(n, kinds[k]) for n, k in self.columns] + [pa.field(EXPORT, pa.int64())]
        if self.versioned:
            fields.append(pa.field(DELETED, pa.bool_()))
        if bucket:
            fields.append(pa.field(BUCKET, pa.int32()))
        return pa.schema(fields)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.columns]


def _facts_columns() -> tuple[tuple[str, str], ...]:
    from detectors import facts

    kind = {**{c: "int64" for c in (*facts.COUNT_COLUMNS, "max_event_id")},
            **{c: "float64" for c in facts.TIME_COLUMNS}}
    return (("tracking_number", "string"), *((c, kind.get(c, "string")) for c in facts.FACT_COLUMNS))


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("orders", "orders", "order_id", "tracking_number", True, (
        *_text("order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "dest_city", "dest_postcode",
               "tracking_number", "tracking_number_raw", "carrier", "shipped_at"),
        # numbers as detection reads them (a value SQLite kept as text that is no number: null)
        ("promised_days", "float64"), *_text("buyer_confirmed_at", "buyer_received"), ("amount", "float64"),
        *_text("currency", "item_title", "extra"), ("seq", "int64"), *_text("imported_at"))),
    Table("events", "tracking_events", "id", "tracking_number", False, (
        ("id", "int64"), *_text("tracking_number", "occurred_at", "status", "description", "location", "city",
                                "postcode", "country", "carrier", "raw_code", "source", "snapshot_sha256", "extra",
                                "event_key", "ingested_at"))),
    Table("messages", "messages", "id", "order_id", False, (
        ("id", "int64"), *_text("order_id", "sender", "sent_at", "text", "extra", "message_key"))),
    Table("shipments", "shipments", "tracking_number", "tracking_number", True, (
        *_text("tracking_number", "carrier", "last_mile_number", "state", "last_status", "first_seen_at",
               "next_poll_at", "last_polled_at", "last_success_at", "last_event_at", "delivered_seen_at"),
        ("consecutive_failures", "int64"), ("not_found_count", "int64"), *_text("last_error"))),
    Table("shipment_facts", "shipment_facts", "tracking_number", "tracking_number", True, _facts_columns()),
)}


def buckets_of(values: Iterable[Any] | np.ndarray, buckets: int) -> np.ndarray:
    """The bucket (0 .. buckets-1) of each text; a missing one counts as ''."""
    import pandas as pd

    array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=object)
    text = np.where(pd.isna(array), "", array).astype(object) if len(array) else array
    hashed = pd.util.hash_array(text, encoding="utf8", hash_key=_HASH_KEY, categorize=True)
    return (hashed % np.uint64(buckets)).astype(np.int32)


def hash_probes() -> list[str]:
    """Fixed texts' hashes (hex), as this machine computes them: stored in the manifest, compared on reading."""
    import pandas as pd

    hashed = pd.util.hash_array(np.asarray(_HASH_PROBES, dtype=object), encoding="utf8", hash_key=_HASH_KEY)
    return [f"{int(h):016x}" for h in hashed]


def default_buckets(orders: int) -> int:
    """About 25,000 orders (and their 200,000-odd scans) per bucket, a power of two from 8 to 4096."""
    wanted = max(orders, 1) / 25_000
    return int(min(4096, max(8, 1 << max(0, int(np.ceil(np.log2(wanted)))))))


# ------------------------------------------------------------------------------------------- the manifest

@dataclass
class Manifest:
    """What the mirror holds: whose store, how many buckets, how many exports, the store's change marks at the
    last one, and every file by table and bucket (paths relative to the destination)."""

    store_id: str
    buckets: int
    export: int = 0
    marks: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # files no longer part of the mirror, deleted by the next export (a reader of the previous manifest may
    # still be reading them now)
    garbage: list[str] = field(default_factory=list)
    exported_at: str = ""
    hash: str = HASH
    hash_probes: list[str] = field(default_factory=hash_probes)
    format: int = FORMAT

    def paths(self, table: str, bucket: int) -> list[str]:
        return list(self.files.get(table, {}).get(str(bucket), []))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            manifest = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError) as exc:
            raise BadInput(f"{where}: not a tracker mirror manifest ({exc})") from None
        if manifest.format != FORMAT:
            raise BadInput(f"{where}: a mirror of format {manifest.format}; this tracker writes format {FORMAT} "
                           "(export again with --full)")
        if manifest.hash != HASH or manifest.hash_probes != hash_probes():
            raise BadInput(f"{where}: its buckets were hashed another way than this machine hashes them "
                           "(export again with --full)")
        return manifest


class Destination:
    """A mirror's place: a local folder or an fsspec URL, as one pyarrow filesystem and a root path in it."""

    def __init__(self, dest: str):
        import pyarrow.fs as pafs

        self.dest = str(dest)
        if "://" in self.dest:
            try:
                import fsspec
            except ImportError:
                raise BadInput(f"{self.dest}: a URL destination needs fsspec: pip install 'tracker[dask]'") from None
            try:
                fs, root = fsspec.core.url_to_fs(self.dest)
            except (ValueError, ImportError) as exc:
                raise BadInput(f"{self.dest}: no filesystem for this URL ({exc})") from None
            self.protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            self.fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
            self.root = root.rstrip("/") or "/"
        else:
            self.protocol = "file"
            self.fs = pafs.LocalFileSystem()
            self.root = os.path.abspath(self.dest)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def relative(self, path: str) -> str:
        return posixpath.relpath(path, self.root)

    @property
    def shared(self) -> bool:
        """Whether other processes (a cluster's workers) can reach it: not a process's own memory."""
        return self.protocol != "memory"

    def read_manifest(self) -> Manifest | None:
        import pyarrow.fs as pafs

        path = self.path(MANIFEST)
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(path) as stream:
            return Manifest.from_json(stream.read().decode("utf-8"), f"{self.dest}/{MANIFEST}")

    def write_manifest(self, manifest: Manifest) -> None:
        """Written beside, then moved over the old one: a reader sees the old manifest or the new, whole."""
        final, temporary = self.path(MANIFEST), self.path(MANIFEST + ".writing")
        self.fs.create_dir(self.root, recursive=True)
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(manifest.to_json().encode("utf-8"))
        self.fs.move(temporary, final)

    def delete(self, paths: Iterable[str]) -> int:
        import pyarrow.fs as pafs

        gone = 0
        for relative in paths:
            try:
                self.fs.delete_file(self.path(relative))
                gone += 1
            except (FileNotFoundError, OSError):
                if self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound:
                    raise
        return gone


# ------------------------------------------------------------------------------------------- reading back

def read_bucket(destination: Destination, manifest: Manifest, table: str, bucket: int,
                columns: Sequence[str] | None = None) -> Any:
    """One bucket of one table as an Arrow table: the newest row of each key, deleted keys left out, without the
    bookkeeping columns. `columns`: only these (the key is read whatever)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = TABLES[table]
    wanted = list(columns) if columns is not None else spec.names
    paths = manifest.paths(table, bucket)
    if not paths:
        return spec.schema().empty_table().select(wanted)  # a bucket this table has no row in
    read = list(dict.fromkeys([*wanted, spec.key] + ([EXPORT, DELETED] if spec.versioned else [])))
    found = pq.read_table([destination.path(p) for p in paths], columns=read, filesystem=destination.fs,
                          partitioning=None, schema=pa.schema([spec.schema().field(c) for c in read]))
    if spec.versioned:
        found = newest(found, spec.key)
    return found.select(wanted)


def newest(found: Any, key: str) -> Any:
    """The rows of the newest export per key, those marking their key deleted left out."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if found.num_rows > 1:
        order = pc.sort_indices(found, sort_keys=[(key, "ascending"), (EXPORT, "descending")])
        found = found.take(order)
        keys = found.column(key).combine_chunks()
        first = np.ones(found.num_rows, dtype=bool)
        first[1:] = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1)).to_numpy(zero_copy_only=False)
        if not first.all():
            found = found.filter(pa.array(first))
    deleted = pc.fill_null(found.column(DELETED), False)
    return found.filter(pc.invert(deleted)) if pc.any(deleted).as_py() else found
