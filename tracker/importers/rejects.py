"""The --skip-invalid file: each rejected row as the user wrote it, plus its line and the reasons."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Any

from tracker.errors import BadInput
from tracker.importers.sources import Source


class RejectsFile:
    """CSV or JSON Lines by the file's extension (otherwise the input's format)."""

    def __init__(self, path: str | Path, source: Source, columns: tuple[str, ...]) -> None:
        self.path = Path(path)
        if source.path is not None and self.path.resolve() == source.path.resolve():
            raise BadInput(f"{self.path}: the rejects file would overwrite the input file")
        suffix = self.path.suffix.lower()
        self.format = "jsonl" if suffix in (".jsonl", ".ndjson") else "csv" if suffix == ".csv" else source.format
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise BadInput(f"{self.path}: cannot write the rejects file ({exc.strerror or exc})") from None
        self.count = 0
        if self.format == "csv":
            self._writer = csv.writer(self._fh)
            base = list(source.header) if source.header is not None else [*columns, "extra"]
            taken = {h.strip().lower() for h in base}
            self._line_col = "line" if "line" not in taken else "rejected_line"
            self._reason_col = "reason" if "reason" not in taken else "rejected_reason"
            self._writer.writerow([*base, self._line_col, self._reason_col])
            self._width = len(base)
            self._columns = columns

    def write(self, original: Any, line: int, reason: str) -> None:
        self.count += 1
        if self.format == "jsonl":
            row = dict(original) if isinstance(original, dict) else {"_raw": original}
            row["line"], row["reason"] = line, reason
            self._fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            return
        if isinstance(original, dict):  # a JSON Lines row written as CSV: known columns, the rest as JSON
            known = {k: v for k, v in original.items() if k in self._columns}
            rest = {k: v for k, v in original.items() if k not in self._columns}
            cells = [_cell(known.get(c)) for c in self._columns] + [json.dumps(rest, ensure_ascii=False) if rest else ""]
        else:
            cells = list(original[: self._width])
            cells += [""] * (self._width - len(cells))
        self._writer.writerow([*cells, line, reason])

    def close(self) -> None:
        self._fh.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
