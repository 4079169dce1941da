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


_SETTLED = """
import gc
from tracker.detection import memory

class Node:
    pass

outside = gc.get_freeze_count()
memory.give_back("outside a run")
after_outside = gc.get_freeze_count()
with memory.settled():
    kept = [Node() for _ in range(10_000)]
    memory.give_back("the nodes")
    frozen = gc.get_freeze_count()
    with memory.settled():  # nested: the outer run still settles
        pass
    still = gc.get_freeze_count()
    # a cycle made after the freeze is collected as before
    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    collected = gc.collect()
print(outside, after_outside, frozen, still, collected, gc.get_freeze_count(), len(kept))
"""


def test_a_settled_run_freezes_what_lives_at_each_give_back_and_thaws_it_at_its_end():
    out = subprocess.run([sys.executable, "-c", _SETTLED], capture_output=True, text=True, check=True)
    outside, after_outside, frozen, still, collected, at_end, _ = (int(v) for v in out.stdout.split())
    assert outside == after_outside == 0  # give_back outside a run leaves the collector alone
    assert frozen >= 10_000 and still == frozen  # the nodes alive at the give_back: frozen, kept by the inner run
    assert collected >= 2  # new garbage in a cycle still goes
    assert at_end == 0  # the run's end gives them back to the collector
