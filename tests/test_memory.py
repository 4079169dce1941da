"""`tracker.detection.memory.give_back`: memory a run has freed goes back to the system, not only to the
allocator's free lists (what a process tree's resident memory, the bench's peak, counts)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tracker.detection import memory

_FRAGMENTED_HEAP = """
import sys
from tracker.detection import memory

# 300 MB of malloc'd blocks (too big for Python's small-object allocator, below glibc's mmap threshold), one in
# fifty kept: the heap's top stays in use, so free() alone cannot hand the freed pages back
blocks = [bytes(8000) for _ in range(40_000)]
kept = blocks[::50]
del blocks
before = memory.resident_mb()
memory.give_back("the test's blocks")
print(before, memory.resident_mb(), len(kept))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or memory._malloc_trim() is None,
                    reason="glibc's malloc_trim and /proc: Linux with glibc")
def test_freed_heap_pages_go_back_to_the_system():
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, check=True)
    before, after, _ = (float(v) for v in out.stdout.split())
    assert before - after > 150, (before, after)  # most of the 294 MB freed


def test_give_back_is_harmless_where_there_is_nothing_to_give():
    memory.give_back()
    memory.give_back("twice")
    assert memory.resident_mb() is None or memory.resident_mb() > 0
