"""Memory this process has freed, given back to the system after the big frees of a run.

A whole-store run builds and drops frames of a million rows, millions of Python objects among them. The
allocators keep what was freed for reuse: glibc's malloc keeps the freed pages of its heap (at a million orders
about a third of this process's resident memory once the rules' frame is built), Arrow's pool its freed
blocks. The resident memory of the process tree then counts pages nobody uses; `give_back` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

log = logging.getLogger(__name__)
_settling = [0]  # `settled` contexts entered


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl, Windows)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def resident_mb() -> float | None:
    """This process's resident memory (MB), where /proc tells it."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def give_back(after: str = "") -> None:
    """Return the freed pages of glibc's heap and Arrow's pool (when Arrow is loaded) to the system; `after` names
    what freed them, for the debug log."""
    started, before = time.perf_counter(), resident_mb()
    if _settling[0]:
        gc.freeze()  # see `settled`
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    now = resident_mb()
    if before is not None and now is not None:
        log.debug("memory: %.0f MB given back after %s in %.3f s (%.0f MB resident)", before - now, after or "?",
                  time.perf_counter() - started, now)


@contextmanager
def settled() -> Iterator[None]:
    """A run in which what is alive at each `give_back` counts as settled: Python's cycle collector no longer walks
    it (`gc.freeze`), until the run ends. A stage's frames and the millions of objects they hold are freed by their
    reference counts when dropped, frozen or not; the collector's full passes over them were most of a second of a
    whole-store run's rules, and gained nothing."""
    _settling[0] += 1
    try:
        yield
    finally:
        _settling[0] -= 1
        if not _settling[0]:
            gc.unfreeze()
