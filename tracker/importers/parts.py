"""A big import file read on both cores: this process and one helper process each read and check parts of it.

The plain import reads and checks one row after the other on one core, while SQLite's share of the work (the
staged batches moved into the table) leaves the other core half idle. From `import_helper_min_bytes` on
(`tracker.plan`) the file's data rows are cut into parts of about `PART_BYTES`, each ending just after a line
feed, and a helper process (`python -m tracker.importers.parts`) takes parts as this process does: whoever
claims a part first (an exclusive file in a scratch folder) reads and checks it with the same code as the plain
import (`Source.part`, the kind's row checker), and the helper hands its records over as one `marshal` file per
part. This process writes the parts in the file's order, so the rows, their order and the store come out as the
plain import makes them.

Only a clean file is imported this way. Any problem in any part (a bad cell, a broken row, an order id seen
twice across parts, a part that does not end where a row ends) raises `Fallback` (or, an order id repeated into
a table that was empty, the table key's `sqlite3.IntegrityError`): the caller rolls back what was written and
imports the file the plain way, which reports the problems with their lines, in order, as always.
So the error lines, the exit status and atomicity are the plain import's by construction.

A part is cut after a line feed, but a quoted CSV field may hold line feeds: a part whose last row ends in a line
break inside its last field may have been cut inside a field, and falls back too (the reader of the whole file
would be in the same state at the cut, so any other ending is a row's end).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import marshal
import os
import select
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tracker import scratch
from tracker.importers.base import Kind, Writer
from tracker.importers.sources import Source

log = logging.getLogger(__name__)

PART_BYTES = 4 << 20  # about 20,000 orders: a wait for the helper's part is short, the hand-over cheap
AHEAD = 2  # parts this process reads past the one it waits for, while the helper finishes that one


class Fallback(Exception):
    """The file has something the parts cannot vouch for: import it the plain way."""


def read_part(spec: Kind, part: Source, last: bool) -> list[Any] | None:
    """The records of one part, or None when any row has a problem (or a part that is not the file's last does
    not visibly end where a row ends)."""
    records: list[Any] = []
    append = records.append
    clean = spec.clean
    problems: list[Any] = []
    original: Any = None
    try:
        for line, values, extras, original, row_problems in part.records(spec):  # noqa: B007 - read after
            if row_problems or values is None:
                return None
            append(clean(line, values, extras, problems))
            if problems:
                return None
    except Exception:  # noqa: BLE001 - undecodable text and the like: the plain import says what
        return None
    if not last and part.format == "csv" and original is not None:
        # cut inside a quoted field, the reader ends the part's last row at its end, the line feed in the field
        if original[len(part.header) - 1].endswith(("\n", "\r")):
            return None
    return records


class _Helper:
    """The helper process, the scratch folder of claims and handed-over parts, and its progress messages."""

    def __init__(self, src: Source, kind: type[Kind], now: datetime | None, bounds: list[tuple[int, int]]) -> None:
        scratch.sweep()  # what a killed import or run left behind
        self.folder = Path(scratch.folder("import"))
        self.done: dict[int, int | None] = {}  # part -> rows handed over (None: a problem)
        self._buffer = b""
        self.alive = False
        order = {"path": str(src.path), "source": src.parts_state(), "kind": f"{kind.__module__}:{kind.__qualname__}",
                 "bounds": bounds,
                 "now": now.isoformat() if now is not None else None, "folder": str(self.folder)}
        try:
            # its own session: a Ctrl-C at the terminal reaches this process only, which ends the helper itself
            with open(self.folder / "stderr", "wb") as stderr:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", "from tracker.importers.parts import main; main()"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(order).encode())
            self.process.stdin.close()
        except (OSError, ValueError) as exc:
            log.debug("import: no helper process (%s)", exc)
            return
        self._fd = self.process.stdout.fileno()
        os.set_blocking(self._fd, False)
        self.alive = True

    def claim(self, part: int) -> bool:
        """Take a part for this process (a part the helper took first is its own, unless it has ended)."""
        if not self.alive:
            return part not in self.done
        try:
            os.close(os.open(self.folder / f"{part}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def poll(self, wait: bool) -> None:
        """Read the helper's messages ('part rows' or 'part -'); with `wait`, block until one comes or it ends."""
        while self.alive:
            if wait:
                select.select([self._fd], [], [])
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:  # it has ended: its parts not handed over are this process's now
                self.alive = False
                self.process.wait()
                log.debug("import: the helper ended (%s): %s", self.process.returncode,
                          (self.folder / "stderr").read_text(errors="replace")[-500:])
                return
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for text in lines:
                part, rows = text.split()
                self.done[int(part)] = None if rows == b"-" else int(rows)
            if lines:
                return

    def take(self, part: int) -> list[Any]:
        """The records the helper handed over for a part."""
        if self.done[part] is None:
            raise Fallback(f"part {part}: a problem")
        path = self.folder / f"{part}.rows"
        records = marshal.loads(path.read_bytes())  # from bytes: marshal.load reads a file in small pieces
        path.unlink()
        return records

    def close(self) -> None:
        """End the helper (done or not) and remove the scratch folder."""
        process = getattr(self, "process", None)
        if process is not None:
            with contextlib.suppress(OSError):
                if process.poll() is None:
                    process.kill()
                process.wait()
                process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def read_into(writer: Writer, spec: Kind, src: Source, now: datetime | None, bounds: list[tuple[int, int]]) -> int:
    """Read and check the parts on both processes and hand the records to `writer` in the file's order; returns
    the rows read. Raises Fallback when the file must be imported the plain way (the caller rolls back)."""
    helper = _Helper(src, type(spec), now, bounds)
    # An order id seen in two parts is a problem. Into a table that held nothing, the table's key refuses it (the
    # writing raises sqlite3.IntegrityError, and the caller falls back as for any problem), so the ids the helper
    # handed over are not looked up here one by one (1.5 s of this process's time at a million orders); into a
    # table that holds orders, a repeated id would update the order its first row wrote, so each is looked up.
    first_line = getattr(spec, "first_line", None) if not writer.was_empty else None
    last = len(bounds) - 1
    ready: dict[int, list[Any]] = {}

    def read_here(part: int) -> None:
        records = read_part(spec, src.part(*bounds[part]), part == last)
        if records is None:
            raise Fallback(f"part {part}: a problem")
        ready[part] = records

    def handed_over(part: int) -> None:
        records = helper.take(part)
        if first_line is not None:  # this process's parts entered `first_line` through the checks
            ids = [record[0] for record in records]
            if not first_line.keys().isdisjoint(ids):
                raise Fallback(f"part {part}: an order id of another part")
            first_line.update(dict.fromkeys(ids, 0))
        ready[part] = records

    rows = 0
    waited = 0.0
    try:
        for part in range(len(bounds)):
            while part not in ready:
                helper.poll(wait=False)
                if part in helper.done:
                    handed_over(part)
                elif helper.claim(part):
                    read_here(part)
                else:  # the helper is on it: read a later part meanwhile, or wait
                    later = [p for p in range(part + 1, min(part + AHEAD, last) + 1) if p not in ready]
                    mine = next((p for p in later if helper.claim(p)), None)
                    if mine is None:
                        began = time.perf_counter()
                        helper.poll(wait=True)
                        waited += time.perf_counter() - began
                    else:
                        read_here(mine)
            records = ready.pop(part)
            rows += len(records)
            batch = writer.batch
            batch += records
            # a full batch, or the connection idle (the first part, or the writing ahead of the reading): write
            if len(batch) >= writer.batch_size or writer.idle():
                writer.flush()
    finally:
        helper.close()
    log.debug("import: %d of %d parts read by the helper; %.2f s waited for it",
              sum(rows is not None for rows in helper.done.values()), len(bounds), waited)
    return rows


def _help(order: dict[str, Any]) -> None:
    """In the helper: claim parts in order, read and check each, hand its records over; stop at a problem."""
    module, _, name = order["kind"].partition(":")
    spec = getattr(importlib.import_module(module), name)()
    spec.refuse_times_after(datetime.fromisoformat(order["now"]) if order["now"] else None)
    src = Source.from_parts_state(order["path"], order["source"])
    folder = Path(order["folder"])
    bounds = order["bounds"]
    out = sys.stdout.buffer
    for part, (start, end) in enumerate(bounds):
        try:
            os.close(os.open(folder / f"{part}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        records = read_part(spec, src.part(start, end), part == len(bounds) - 1)
        if records is None:
            out.write(f"{part} -\n".encode())
            out.flush()
            return
        (folder / f"{part}.rows").write_bytes(marshal.dumps(records))
        out.write(f"{part} {len(records)}\n".encode())
        out.flush()


def main() -> None:
    """The helper process's entry: its order (JSON) on stdin, a line per part handed over on stdout."""
    try:
        _help(json.loads(sys.stdin.buffer.read()))
    except (BrokenPipeError, FileNotFoundError):  # the import has ended (its scratch folder is gone)
        pass
