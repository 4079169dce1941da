"""`python -m tracker.detection.lean_files [MODEL.skops ...]`: write the lean export (`detectors.lean_model`,
`detectors.message_scoring`) of model files saved already, beside each, and record it in its metadata JSON; without
arguments, of the shipped classifier and message model (data/models/, or $TRACKER_MODEL_DIR's). Training writes it
itself; this makes it for a model saved before lean exports existed."""

from __future__ import annotations

import sys
from pathlib import Path

from tracker.detection import persistence, registry


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    options = [a for a in args if a.startswith("-")]
    if options:
        print(f"lean_files: {options[0]}: no such option (give model files, or none for the shipped models)",
              file=sys.stderr)
        return 2
    paths = [Path(a) for a in args] or [registry.DEFAULT_MODEL_PATH, registry.MESSAGE_MODEL_PATH]
    for path in paths:
        try:
            meta = persistence.export_lean(path)
        except persistence.ModelIntegrityError as exc:
            print(exc, file=sys.stderr)
            return 2
        lean = meta.get("lean")
        print(f"{path}: " + (f"lean export {lean['file']} ({lean['sha256'][:12]})" if lean else
                             "no lean export (a model the lean export cannot hold)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
