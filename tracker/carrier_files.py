"""Where carrier files live and the number patterns they declare, read without the adapters.

`tracker validate` and the rules of every detect run need only each file's `number_pattern`; importing the
adapters (BeautifulSoup, lxml, requests, jmespath) would cost validate most of its start-up, and detect 80 ms or
more. `tracker.carriers` reads the same folders through `carrier_dirs`, in the same order: the defaults,
$TRACKER_CONFIG_DIR/carriers, then $TRACKER_CARRIERS_DIR (a later file of the same name wins).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from tracker.config import data_path
from tracker.errors import BadInput


def carrier_dirs() -> list[Path]:
    dirs = [data_path("carriers")]
    if os.environ.get("TRACKER_CONFIG_DIR"):
        dirs.append(Path(os.environ["TRACKER_CONFIG_DIR"]) / "carriers")
    if os.environ.get("TRACKER_CARRIERS_DIR"):
        dirs.append(Path(os.environ["TRACKER_CARRIERS_DIR"]))
    return dirs


def carrier_files(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Carrier file stem -> its path, a later folder's file winning."""
    files: dict[str, Path] = {}
    for folder in dirs if dirs is not None else carrier_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                files[path.stem] = path
    return files


def read_settings(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}") from exc


def declared_number_patterns(dirs: list[Path] | None = None) -> dict[str, str]:
    """Carrier name -> its file's `number_pattern`, as `tracker.carriers.number_patterns` gives them for loaded
    carriers (an aggregator, a `fallback` file, takes any number and so recognises none). A pattern that is no
    regular expression is refused with the line `tracker.carriers` gives; the rest of a file is polling's to check."""
    out: dict[str, str] = {}
    for path in carrier_files(dirs).values():
        settings = read_settings(path)
        if settings.get("fallback") or "number_pattern" not in settings:
            continue
        pattern = str(settings["number_pattern"])
        try:
            re.compile(pattern)
        except re.error as exc:  # as `tracker.carriers` refuses the file
            raise BadInput(f"{path}: 'number_pattern' is not a regular expression ({exc})") from exc
        out[str(settings.get("name", path.stem))] = pattern
    return dict(sorted(out.items()))
