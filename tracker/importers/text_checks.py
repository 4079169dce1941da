"""Cells no honest file holds: control characters anywhere, line breaks outside free text.

Used by the readers (tracker.importers.sources). A file is scanned once as bytes (`scan_for_controls`);
only when that finds something are its rows checked one by one, so clean files pay about 1 ms per MB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

Problem = tuple[str | None, str]  # (column or None for the whole row, reason)


class RowKind(Protocol):
    """What a reader needs of an import kind (tracker.importers.base.Kind)."""

    columns: tuple[str, ...]
    free_text: tuple[str, ...]

    def looks_like_row(self, values: tuple[str, ...]) -> bool: ...


# C0 and C1 control characters other than tab, line feed and carriage return: never text in a cell
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# in a JSON line: a raw control character, or an escape that decodes to one or to a line break
SUSPECT_JSON = re.compile(r"[\x7f-\x9f]|\\(?:u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]|[bfnr])")


# the same, on the file's bytes: C0 controls and DEL (deleted by bytes.translate, at memory speed), C1
# controls as UTF-8 writes them (C2 80 to C2 9F), and in JSON the escapes that decode to either or to a break
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_C1_BYTES = re.compile(rb"\xc2[\x80-\x9f]")
_JSON_ESCAPES = re.compile(rb"\\(?:u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]|[bfnr])")
_SCAN_BLOCK = 1 << 20


def scan_for_controls(path: Path, fmt: str) -> bool:
    """Whether the file's bytes hold anything the per-row control checks would look at: about 25 ms for a
    20 MB file, against more than 100 ms for a regex over each row."""
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(_SCAN_BLOCK):
            block = tail + block
            if len(block.translate(None, _CONTROL_BYTES)) != len(block):
                return True
            if b"\xc2" in block and _C1_BYTES.search(block):
                return True
            if fmt == "jsonl" and b"\\" in block and _JSON_ESCAPES.search(block):
                return True
            tail = block[-8:]  # a match split across two blocks (at most 7 bytes long)
    return False


def _control_problem(column: str, value: str) -> Problem | None:
    found = CONTROL.search(value)
    if found is None:
        return None
    return column, f"control character U+{ord(found.group()):04X} at character {found.start() + 1} of the value"


def cell_problems(row: list[str], line: int, names: list[str], breaks_ok: list[bool]) -> list[Problem] | None:
    """Control characters in any cell; line breaks in a cell that is not free text (an id, a date).

    `line` is where the row starts; a cell after a multi-line one starts that many lines further down.
    """
    problems: list[Problem] = []
    starts = line
    for cell, name, ok in zip(row, names, breaks_ok, strict=True):
        problem = _control_problem(name, cell)
        if problem is not None:
            problems.append(problem)
        elif not ok and LINE_BREAK.search(cell.strip()):
            problems.append((name, f"a line break inside the value (its quote opens on line {starts} and closes "
                                   "on a later one); only free text may run over lines"))
        starts += len(LINE_BREAK.findall(cell))
    return problems or None


def json_cell_problems(cells: dict[str, str], extras: dict[str, Any] | None, kind: RowKind) -> list[Problem]:
    problems: list[Problem] = []
    for column, value in cells.items():
        problem = _control_problem(column, value)
        if problem is not None:
            problems.append(problem)
        elif column not in kind.free_text and LINE_BREAK.search(value.strip()):
            problems.append((column, "a line break inside the value; only free text may run over lines"))
    for name, value in (extras or {}).items():
        for text in _strings(value):
            problem = _control_problem(str(name), text)
            if problem is not None:
                problems.append(problem)
                break
    return problems


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
