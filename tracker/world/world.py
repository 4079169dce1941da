"""`World` (a generated world in memory), `generate` and the streaming `write_world`."""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracker.world.generator import (
    EVENT_COLUMNS,
    LABEL_COLUMNS,
    MESSAGE_COLUMNS,
    ORDER_COLUMNS,
    WorldGenerator,
)
from tracker.world.profiles import DEFAULT, Profile

DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
FILES = {
    "orders": ("orders.csv", ORDER_COLUMNS),
    "events": ("events.csv", EVENT_COLUMNS),
    "messages": ("messages.csv", MESSAGE_COLUMNS),
    "labels": ("labels.csv", LABEL_COLUMNS),
}


def _as_of(as_of: datetime | None) -> datetime:
    if as_of is None:
        return DEFAULT_AS_OF
    if as_of.tzinfo is None:
        return as_of.replace(tzinfo=UTC)
    return as_of.astimezone(UTC)


class World:
    """A generated world. Rows are kept as tuples; the dict views are built on first use."""

    def __init__(
        self, as_of: datetime, seed: int, rows: dict[str, list[tuple]], profile: Profile = DEFAULT
    ):
        self.as_of = as_of
        self.seed = seed
        self.rows = rows
        self.profile = profile
        self._dicts: dict[str, list[dict[str, Any]]] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(rows)} {kind}" for kind, rows in self.rows.items())
        return f"<World seed={self.seed} profile={self.profile.name} as_of={self.as_of.isoformat()}: {counts}>"

    def _view(self, kind: str) -> list[dict[str, Any]]:
        if kind not in self._dicts:
            columns = FILES[kind][1]
            self._dicts[kind] = [dict(zip(columns, row, strict=True)) for row in self.rows[kind]]
        return self._dicts[kind]

    @property
    def orders(self) -> list[dict[str, Any]]:
        return self._view("orders")

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._view("events")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._view("messages")

    @property
    def labels(self) -> list[dict[str, Any]]:
        return self._view("labels")

    def journeys(self) -> dict[str, list[dict[str, Any]]]:
        """Events grouped by tracking number, oldest first (what a carrier's page shows)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.events:
            out.setdefault(e["tracking_number"], []).append(e)
        for scans in out.values():
            scans.sort(key=lambda e: e["occurred_at"])
        return out

    def write(self, folder: str | os.PathLike[str]) -> dict[str, Path]:
        """Write orders.csv, events.csv, messages.csv and labels.csv (UTF-8, header row) into folder."""
        with _Writers(folder) as writers:
            writers.write(
                self.rows["orders"], self.rows["events"], self.rows["messages"], self.rows["labels"]
            )
        return writers.paths


def _chunks(gen: WorldGenerator) -> Iterator[tuple[list[tuple], list[tuple], list[tuple], list[tuple]]]:
    for c in range(gen.n_chunks()):
        yield gen.chunk(c)


def generate(
    n_orders: int, seed: int = 7, as_of: datetime | None = None, profile: Profile = DEFAULT
) -> World:
    """A world of n_orders orders in memory (up to a few hundred thousand orders)."""
    when = _as_of(as_of)
    gen = WorldGenerator(n_orders, seed, when, profile.settings)
    rows: dict[str, list[tuple]] = {"orders": [], "events": [], "messages": [], "labels": []}
    for orders, events, messages, labels in _chunks(gen):
        rows["orders"].extend(orders)
        rows["events"].extend(events)
        rows["messages"].extend(messages)
        rows["labels"].extend(labels)
    return World(when, seed, rows, profile)


def _quote(field: str) -> str:
    """CSV quoting as csv.QUOTE_MINIMAL does it."""
    if '"' in field:
        return '"' + field.replace('"', '""') + '"'
    if "," in field or "\n" in field or "\r" in field:
        return f'"{field}"'
    return field


class _Quoted(dict):
    """Memoised _quote for the few distinct texts, places and codes scans carry."""

    def __missing__(self, field: str) -> str:
        quoted = _quote(field)
        if len(self) < 100_000:
            self[field] = quoted
        return quoted


class _Writers:
    """The four CSV files. Scans are most of the bytes, so they skip the csv module's per-field scan:
    numbers and times never need quoting, and the other fields come from small sets of strings."""

    def __init__(self, folder: str | os.PathLike[str], *, header: bool = True):
        self.folder = Path(folder)
        self.paths = {kind: self.folder / name for kind, (name, _) in FILES.items()}
        self.counts = dict.fromkeys(FILES, 0)
        self.header = header
        self._q = _Quoted()

    def __enter__(self) -> _Writers:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files = {
            kind: open(path, "w", encoding="utf-8", newline="", buffering=1 << 20)
            for kind, path in self.paths.items()
        }
        self._csv = {kind: csv.writer(fh, lineterminator="\n") for kind, fh in self._files.items()}
        if self.header:
            for kind, (_, columns) in FILES.items():
                self._csv[kind].writerow(columns)
        return self

    def write(
        self, orders: list[tuple], events: list[tuple], messages: list[tuple], labels: list[tuple]
    ) -> None:
        for kind, rows in (("orders", orders), ("messages", messages), ("labels", labels)):
            self._csv[kind].writerows(rows)
            self.counts[kind] += len(rows)
        q = self._q
        self._files["events"].write(
            "".join(
                f"{tn},{at},{q[st]},{q[de]},{q[lo]},{q[ci]},{q[pc]},{q[co]},{q[ca]},{q[rc]}\n"
                for tn, at, st, de, lo, ci, pc, co, ca, rc in events
            )
        )
        self.counts["events"] += len(events)

    def append(self, part: Path, counts: dict[str, int]) -> None:
        """Append another writer's header-less files (a later range of chunks) to these."""
        for kind, fh in self._files.items():
            fh.flush()
            with open(part / FILES[kind][0], "rb") as src:
                shutil.copyfileobj(src, fh.buffer, 1 << 20)
            self.counts[kind] += counts[kind]

    def __exit__(self, *exc: object) -> None:
        for fh in self._files.values():
            fh.close()


def _write_part(
    folder: str, n_orders: int, seed: int, as_of: datetime, first: int, end: int, settings: dict[str, Any]
) -> dict[str, int]:
    """Chunks [first, end) of a world, header-less, into folder (runs in a worker process)."""
    gen = WorldGenerator(n_orders, seed, as_of, settings)
    with _Writers(folder, header=False) as writers:
        for c in range(first, end):
            writers.write(*gen.chunk(c))
    return dict(writers.counts)


def write_world(
    folder: str | os.PathLike[str],
    n_orders: int,
    seed: int = 7,
    as_of: datetime | None = None,
    *,
    workers: int = 1,
    profile: Profile = DEFAULT,
) -> dict[str, int]:
    """Generate a world straight to CSV files in bounded memory (a million orders is fine).

    The files are the same as `generate(n_orders, seed, as_of, profile).write(folder)`, whatever
    `workers`: with workers > 1, later ranges of chunks are made by other processes and appended in
    order. Returns the row count per file.
    """
    when = _as_of(as_of)
    gen = WorldGenerator(n_orders, seed, when, profile.settings)
    n_chunks = gen.n_chunks()
    workers = max(1, min(workers, n_chunks))
    bounds = [n_chunks * i // workers for i in range(workers + 1)]
    Path(folder).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # written beside and moved in once whole: a run that fails or is killed leaves the folder as it was, not
        # files of headers only or a world cut short
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=folder, prefix=".world-")))
        futures = []
        if workers > 1:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=folder, prefix=".parts-")))
            # spawn, not fork: the caller may have threads (the demo's server), and the data files reload fast
            pool = stack.enter_context(
                ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"))
            )
            futures = [
                (
                    tmp / str(i),
                    pool.submit(
                        _write_part,
                        str(tmp / str(i)),
                        n_orders,
                        seed,
                        when,
                        bounds[i],
                        bounds[i + 1],
                        profile.settings,
                    ),
                )
                for i in range(1, workers)
            ]
        with _Writers(staging) as writers:
            for c in range(bounds[0], bounds[1]):
                writers.write(*gen.chunk(c))
            for part, future in futures:
                writers.append(part, future.result())
        for path in writers.paths.values():
            os.replace(path, Path(folder) / path.name)
    return dict(writers.counts)


def write_orders_csv(
    path: str | os.PathLike[str],
    n_orders: int,
    seed: int = 7,
    as_of: datetime | None = None,
    profile: Profile = DEFAULT,
) -> int:
    """Only the orders file of `write_world` (same rows), streamed to `path`. Returns the row count."""
    gen = WorldGenerator(n_orders, seed, _as_of(as_of), profile.settings)
    count = 0
    with open(path, "w", encoding="utf-8", newline="", buffering=1 << 20) as fh:
        out = csv.writer(fh)
        out.writerow(ORDER_COLUMNS)
        for orders, _events, _messages, _labels in _chunks(gen):
            out.writerows(orders)
            count += len(orders)
    return count
