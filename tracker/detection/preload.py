"""The classifier's libraries (scikit-learn, SciPy: one to three seconds of imports) imported in a thread while a
run's rules work, where the run may need them: one whose model has no lean export it can score with
(`registry.load_lean_model`), or one with messages new to the pressure cache (any, in a full run) where the message
model has none (`registry.lean_message_model`). With both exports, nothing of them is imported at all. The rules
need neither (`detectors.features` leaves its transformer to `detectors.order_features`), and they spend much of
their time in SQLite, which lets the thread run meanwhile.

Only third-party libraries and `detectors` modules that import nothing of `tracker` are imported there; whoever
needs scikit-learn in the main thread first calls `wait()`, so the two threads never import scikit-learn at once.
Before that wait, an incremental run reads its seller books and the scoring's first frame (`pipeline.detect`):
`tracker.detection.scoring` imports the classifier only where it scores, and a module both threads happen to
import (`detectors.reasons`) is made once, the import system's lock per module holding the other thread back.
"""

from __future__ import annotations

import importlib
import threading

MODULES = ("detectors.classifier", "detectors.reasons")  # what the scoring imports that pulls the libraries in
_started: list[threading.Thread] = []


def start() -> None:
    """Import the classifier's libraries in a thread (once per process; not at all where they are in already)."""
    import sys

    if _started or all(name in sys.modules for name in MODULES):
        return
    thread = threading.Thread(target=_import, name="preload", daemon=True)
    _started.append(thread)
    thread.start()


def wait() -> None:
    """Until the thread's imports are done (at once when none was started). A failed import is left to the
    caller's own import, which raises it where it is needed."""
    if _started:
        _started[0].join()


def _import() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - raised again by the main thread's own import
            continue
