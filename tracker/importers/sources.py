"""Reading import files: CSV (BOM or not, comma/semicolon/tab detected) and JSON Lines, streamed.

A source yields one record per data row: (line, values, extras, original, problems), where `line` is
the line an editor shows the row starting on (the CSV header is line 1), `values` are the row's cells
as text in the order of the kind's columns ("" = empty), `extras` the unknown columns, `original` what
the user wrote (for the rejects file), and `problems` row-level faults (bad JSON, wrong field count).
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import sys
from collections.abc import Iterator
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from tracker.errors import BadInput
from tracker.importers.text_checks import (
    CONTROL,
    LINE_BREAK,
    SUSPECT_JSON,
    Problem,
    RowKind,
    cell_problems,
    json_cell_problems,
    scan_for_controls,
)

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

Record = tuple[int, tuple[str, ...] | None, dict[str, Any] | None, Any, list[Problem] | None]


@lru_cache(maxsize=1024)
def column_key(name: str) -> str:
    """How a header cell names a column: 'Order ID' and 'order-id' both mean order_id."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def _decode_problem(label: str, line: int, exc: UnicodeDecodeError) -> BadInput:
    return BadInput(f"{label}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8")


class Source:
    """One import file, opened for streaming. Use as a context manager."""

    def __init__(self, source: str | Path) -> None:
        text = str(source)
        self.is_stdin = text == "-"
        self.label = "<stdin>" if self.is_stdin else text
        self.path = None if self.is_stdin else Path(text)
        if self.is_stdin:
            self.format = "csv"
        else:
            suffix = self.path.suffix.lower()
            self.format = FORMATS.get(suffix)
            if self.format is None:
                raise BadInput(
                    f"{self.label}: unknown file type {suffix or '(no extension)'}; "
                    "use .csv, .jsonl or .ndjson, or '-' for CSV on stdin"
                )
        self.header: list[str] | None = None
        self.delimiter = ","
        # whether the file may hold a control character (or, in JSON, an escaped one or an escaped line
        # break): a scan of the raw bytes tells for a file, so the per-row checks cost only where they find
        # something; stdin cannot be read twice, so every row of it is checked
        self.suspect = True
        self._fh: IO[str] | None = None
        self._lines: Iterator[str] | None = None

    # -- opening -----------------------------------------------------------------------------------
    def __enter__(self) -> Source:
        if self.is_stdin:
            raw = getattr(sys.stdin, "buffer", None)
            self._fh = (
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") if raw is not None else sys.stdin
            )
        else:
            try:
                self._fh = open(self.path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in __exit__
                self.suspect = scan_for_controls(self.path, self.format)
            except OSError as exc:
                raise BadInput(f"{self.label}: cannot read ({exc.strerror or exc})") from None
        if self.format == "csv":
            self._read_header()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fh is not None and not self.is_stdin:
            self._fh.close()
        elif self.is_stdin and isinstance(self._fh, io.TextIOWrapper) and self._fh is not sys.stdin:
            self._fh.detach()  # leave the process's stdin open

    def _read_header(self) -> None:
        try:
            first = self._fh.readline()
        except UnicodeDecodeError as exc:
            raise _decode_problem(self.label, 1, exc) from None
        except OSError as exc:
            raise BadInput(f"{self.label}: cannot read ({exc.strerror or exc})") from None
        first = first.lstrip("\ufeff")  # a BOM on stdin without a byte buffer
        if not first.strip():
            raise BadInput(f"{self.label}:1: no header row; the first line must name the columns")
        # Excel writes ';' where the decimal separator is a comma; pick the separator the header uses most
        counts = {d: first.count(d) for d in (",", ";", "\t")}
        self.delimiter = max(counts, key=lambda d: (counts[d], d == ","))
        self._reader = csv.reader(itertools.chain([first], self._fh), delimiter=self.delimiter)
        try:
            self.header = next(self._reader)
        except csv.Error as exc:
            raise BadInput(f"{self.label}:1: the header row is not valid CSV ({exc})") from None
        self._header_end = self._reader.line_num

    # -- parts (tracker.importers.parts) -----------------------------------------------------------------
    def data_start(self) -> int | None:
        """The byte offset where the data rows start: after a CSV header of one line ending in a line feed, or
        0 for JSON Lines. None for stdin, or when the text layer would end the header's line elsewhere (a lone
        carriage return) or the header runs over several lines."""
        if self.path is None:
            return None
        if self.format != "csv":
            return 0
        if self._header_end != 1:
            return None
        with open(self.path, "rb") as fh:
            first = fh.readline()
        body = first[:-1].removesuffix(b"\r")
        return len(first) if first.endswith(b"\n") and b"\r" not in body else None

    def part_bounds(self, size: int) -> list[tuple[int, int]] | None:
        """The data rows' bytes cut into parts of about `size` bytes, each ending just after a line feed (the
        last at the end of the file); None when the data's start cannot be told (`data_start`)."""
        start = self.data_start()
        if start is None:
            return None
        total = self.path.stat().st_size
        bounds: list[tuple[int, int]] = []
        with open(self.path, "rb") as fh:
            while start < total:
                cut = start + size
                fh.seek(cut)
                while cut < total:
                    block = fh.read(1 << 16)
                    if not block:
                        cut = total
                    elif (found := block.find(b"\n")) >= 0:
                        cut += found + 1
                        break
                    else:
                        cut += len(block)
                cut = min(cut, total)
                bounds.append((start, cut))
                start = cut
        return bounds

    def parts_state(self) -> dict[str, Any]:
        """What another process needs to read parts of this file as this source reads them."""
        return {"header": self.header, "delimiter": self.delimiter, "suspect": self.suspect}

    @classmethod
    def from_parts_state(cls, path: str, state: dict[str, Any]) -> Source:
        """The source `parts_state` described, in another process (for its `part`s only: nothing is open)."""
        src = cls(path)
        src.header, src.delimiter, src.suspect = state["header"], state["delimiter"], state["suspect"]
        return src

    def part(self, start: int, end: int) -> Source:
        """The rows of the file's bytes [start, end) (a part from `part_bounds`), read as this source reads them:
        same header, separator and checks, lines counted from the part's start. Raises UnicodeDecodeError."""
        with open(self.path, "rb") as fh:
            fh.seek(start)
            text = fh.read(end - start).decode("utf-8")
        part = copy.copy(self)
        part._fh = io.StringIO(text, newline="")  # lines end where the file's text layer ends them
        if self.format == "csv":
            part._reader = csv.reader(part._fh, delimiter=self.delimiter)
            part._header_end = 0
        return part

    # -- columns -----------------------------------------------------------------------------------
    def check_columns(self, columns: tuple[str, ...], required: tuple[str, ...]) -> None:
        """CSV: every required column present, none twice. One error naming all missing columns."""
        if self.header is None:
            return
        keys = [column_key(h) for h in self.header]
        seen: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key and key in seen and key in columns:
                raise BadInput(f"{self.label}:1: column {key}: named twice in the header (fields {seen[key] + 1} and {i + 1})")
            seen.setdefault(key, i)
        missing = [c for c in required if c not in seen]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise BadInput(
                f"{self.label}:1: missing required column{plural} {', '.join(missing)} "
                f"(the header has: {', '.join(h.strip() for h in self.header) or 'nothing'})"
            )

    # -- records -----------------------------------------------------------------------------------
    def records(self, kind: RowKind) -> Iterator[Record]:
        if self.format == "csv":
            return self._csv_records(kind)
        return self._jsonl_records(kind)

    def _csv_records(self, kind: RowKind) -> Iterator[Record]:
        columns = kind.columns
        header = self.header
        n = len(header)
        keys = [column_key(h) for h in header]
        position: dict[str, int] = {}
        for i, key in enumerate(keys):
            position.setdefault(key, i)
        known = set(columns)
        # an absent column reads the "" appended to every row at index n
        getter = itemgetter(*[position.get(c, n) for c in columns])
        extra_at = [(i, header[i].strip() or f"column_{i + 1}") for i, k in enumerate(keys) if k not in known]
        names = [key if key in known else header[i].strip() or f"column_{i + 1}" for i, key in enumerate(keys)]
        # where a line break is text: the kind's free-text columns and the unknown ones (an address, a note)
        breaks_ok = [key in kind.free_text or key not in known for key in keys]
        reader = self._reader
        previous = self._header_end
        label = self.label
        suspect = self.suspect
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise _decode_problem(label, previous + 1, exc) from None
            except csv.Error as exc:
                line = previous + 1
                previous = reader.line_num
                yield line, None, None, [], [(None, f"not valid CSV ({exc})")]
                continue
            line = previous + 1
            previous = reader.line_num
            if not any(row):  # blank line, or only separators
                continue
            if len(row) != n:
                yield line, None, None, row, [(None, f"row has {len(row)} fields, the header has {n}")]
                continue
            if previous - line > 0 or (suspect and CONTROL.search("".join(row))):  # rare: checks cost only here
                trouble = cell_problems(row, line, names, breaks_ok) or self._swallowed_rows(
                    row, line, names, getter, kind)
                if trouble:
                    yield line, None, None, row, trouble
                    continue
            row.append("")
            extras = None
            if extra_at:
                extras = {name: row[i] for i, name in extra_at if row[i] != ""} or None
            yield line, getter(row), extras, row, None

    def _swallowed_rows(
        self, row: list[str], line: int, names: list[str], getter: Any, kind: RowKind
    ) -> list[Problem] | None:
        """A quoted field that runs over line breaks and takes in what reads as whole rows of this file.

        A stray opening quote makes the CSV reader carry on to the next quote, merging the lines between
        into one field; when the merged row still has the right number of fields, nothing else notices.
        Free text may hold line breaks, so a line inside a field counts as a swallowed row only when it
        parses as a full row whose required columns all pass their checks.
        """
        n = len(names)
        opened = line
        for index, cell in enumerate(row):
            parts = LINE_BREAK.split(cell)
            for offset, part in enumerate(parts[1:], start=1):
                try:
                    cells = next(csv.reader([part], delimiter=self.delimiter))
                except (csv.Error, StopIteration):
                    continue
                if len(cells) == n and kind.looks_like_row(getter([*cells, ""])):
                    return [(names[index], (
                        f"the quote that opens this field on line {opened} runs on over {len(parts) - 1} line "
                        f"break(s) and takes in line {opened + offset}, which reads as a row of its own; close "
                        "the quote, or double a quote that is part of the text (\"\")"))]
            opened += len(parts) - 1
        return None

    def _jsonl_records(self, kind: RowKind) -> Iterator[Record]:
        columns = kind.columns
        known = set(columns)
        suspect = self.suspect
        line = 0
        fh = self._fh
        while True:
            try:
                text = fh.readline()
            except UnicodeDecodeError as exc:
                raise _decode_problem(self.label, line + 1, exc) from None
            if not text:
                return
            line += 1
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                reason = f"not valid JSON ({exc.msg} at column {exc.colno})" if hasattr(exc, "msg") else "not valid JSON"
                yield line, None, None, {"_raw": text.rstrip("\r\n")}, [(None, reason)]
                continue
            except RecursionError:
                yield line, None, None, {"_raw": text[:200]}, [(None, "not valid JSON (nested too deeply)")]
                continue
            if not isinstance(obj, dict):
                yield line, None, None, {"_raw": text.rstrip("\r\n")}, [(None, f"expected a JSON object, got {type(obj).__name__}")]
                continue
            if "\\u" in text and not _encodable(obj):
                yield line, None, None, {"_raw": text.rstrip("\r\n")}, [(None, "not valid Unicode (a lone surrogate \\u escape)")]
                continue
            cells: dict[str, str] = {}
            extras: dict[str, Any] | None = None
            problems: list[Problem] | None = None
            for name, value in obj.items():
                key = column_key(name) if isinstance(name, str) else str(name)
                if key in known:
                    if key in cells:
                        problems = (problems or []) + [(key, f"given twice (as {name!r})")]
                    if value is None:
                        cells[key] = ""
                    elif isinstance(value, str):
                        cells[key] = value
                    elif isinstance(value, bool):
                        cells[key] = "true" if value else "false"
                    elif isinstance(value, int | float):
                        cells[key] = repr(value)
                    else:
                        cells[key] = ""
                        problems = (problems or []) + [(key, f"expected text or a number, got a JSON {type(value).__name__}")]
                elif value is not None and value != "":
                    extras = extras or {}
                    extras[name] = value
            if suspect and SUSPECT_JSON.search(text):  # a control character, an escaped one, an escaped break
                problems = (problems or []) + json_cell_problems(cells, extras, kind)
            values = tuple(cells.get(c, "") for c in columns)
            yield line, values, extras, obj, problems or None


def _encodable(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
