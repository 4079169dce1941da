"""The child processes a run's readers share: spawned on first use, ended with the run.

A spawned reader pays for a Python start and its imports (Arrow, the ADBC driver) once; the facts' slices
and the order frame's readers of one run then queue on the same workers, so the orders are read while the
events are still being aggregated. Spawned, not forked: a child must not inherit this process's SQLite
connections, locks or threads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from tracker.plan import Plan


class WithoutPandas:
    """An import hook that refuses pandas, for children that never use it: pyarrow imports pandas the first time
    it converts any value (`pa.array`, `pa.scalar`, a compute function's scalar argument) only to ask whether the
    value is a pandas object, and each child paid pandas' import for nothing. Refused, pyarrow works without it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (not loaded in this child process)", name=name)


def without_pandas() -> None:
    """A child's initializer: pandas refused from now on (see `WithoutPandas`)."""
    if not any(isinstance(finder, WithoutPandas) for finder in sys.meta_path):
        sys.meta_path.insert(0, WithoutPandas())


# a background child's niceness: beside two busy processes on two cores the scheduler gives it about a tenth of a
# core instead of two thirds (the weights of nice 0 and 10 are 1024 and 110), and all of a core nobody else wants
BACKGROUND_NICENESS = 10


def _start_child(lean: bool, background: bool) -> None:
    """A child's initializer: lean (`without_pandas`) and/or in the background (`BACKGROUND_NICENESS`)."""
    if lean:
        without_pandas()
    if background and hasattr(os, "nice"):
        os.nice(BACKGROUND_NICENESS)


class Children:
    """`submit` runs a function in one of `workers` spawned processes (started on first use); `close` ends them
    without waiting: their memory goes back while this process moves on. `lean`: the processes refuse pandas
    (`WithoutPandas`), for work done with Arrow and numpy alone (the readers and the writing child).
    `background`: they run niced (`BACKGROUND_NICENESS`), for work wanted later than the run's other processes'
    (on two cores, the message model's cache filled beside two readers of the scans: the readers' core time is
    the run's critical path, the cache is wanted a stage later)."""

    def __init__(self, workers: int, lean: bool = False, background: bool = False):
        self.workers = max(int(workers), 1)
        self.lean = lean
        self.background = background
        self._pool: ProcessPoolExecutor | None = None
        self._released: list[Any] = []  # the processes of a released pool, still ended by `terminate`

    @classmethod
    def of(cls, plan: Plan) -> Children:
        """As many as the plan's readers, lean."""
        return cls(plan.limits.readers, lean=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_child, initargs=(self.lean, self.background))
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """End them: work not started is dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def terminate(self) -> None:
        """End them now, work under way included (a run that failed: nothing should wait for its helpers)."""
        processes, self._released = self.processes(), []
        for process in processes:
            process.terminate()
        self.close()

    def release(self) -> None:
        """Let the idle ones end now and the busy ones once their work is done (its futures still answer)."""
        if self._pool is not None:
            self._released = self.processes()
            self._pool.shutdown(wait=False)
            self._pool = None

    def processes(self) -> list[Any]:
        """The child processes started, those released included (`multiprocessing` process objects)."""
        return self._released + list((getattr(self._pool, "_processes", None) or {}).values())

    def __enter__(self) -> Children:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        """Closed; ended at once when the block failed (nothing waits for work a failed run no longer wants)."""
        if kind is not None:
            self.terminate()
        else:
            self.close()
