"""How many threads the classifier's boosting may use: all cores on a quiet machine, one on a busy one.

OpenMP threads spin-wait for each other; when other processes already keep every core busy, two threads run
ten times slower than one (measured on a 2-core machine), not twice as fast. Busy is judged by what runs now
(`others_running`), not by the load average: that trails the last minute, so this process's own finished
work (the child readers, a training run) would make the prediction that follows run on one core of an idle
machine. `limit()` is entered around each stage that fits or predicts.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Any

from tracker.plan import cores

_controller: list[Any] = []


def limit(threads: int | None = None) -> AbstractContextManager[Any]:
    """A context in which the native thread pools of this thread use `threads` threads (default:
    `openmp_threads()`). One controller per process: making one scans every loaded library (5 ms)."""
    if not _controller:
        from threadpoolctl import ThreadpoolController

        _controller.append(ThreadpoolController())
    return _controller[0].limit(limits=threads if threads is not None else openmp_threads())


def at_once(work: Any, runs: list[tuple[int, int]]) -> None:
    """`work(start, stop)` for each run, each on a thread of its own, all at once; the first error raised again."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="runs") as pool:
        for done in [pool.submit(work, start, stop) for start, stop in runs]:
            done.result()


def openmp_threads() -> int:
    """Threads for the boosting now: every core, or one when other processes keep every core busy."""
    n = cores()
    return 1 if n > 1 and others_running() >= n else n


def others_running(samples: int = 3) -> float:
    """Threads of other processes running or waiting for a core now: the kernel's count of runnable tasks
    (/proc/loadavg) less this process's own runnable threads, the least of a few samples (a process caught
    starting up is not a busy machine). Where there is no /proc: the 1-minute load average."""
    least = None
    try:
        for _ in range(samples):
            with open("/proc/loadavg") as f:
                runnable = int(f.read().split()[3].split("/")[0])
            own = 0
            for task in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{task}/stat") as f:
                        stat = f.read()
                except OSError:  # the thread ended meanwhile
                    continue
                own += stat[stat.rindex(")") + 2] == "R"
            others = max(runnable - own, 0)
            least = others if least is None else min(least, others)
        return float(least or 0)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
