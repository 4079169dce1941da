"""Parsing HTML carrier pages in a worker process, so the parse runs on a second core.

The poller is CPU-bound on one GIL: fetching, lxml tree building and the writer all share it, and
lxml takes the GIL back around every parser callback, so a parse next to the fetching threads costs more
than alone. A big run therefore hands each HTML page to one spawned worker process; the lane thread waits
on the answer (the wait releases the GIL, so the other lanes keep fetching).

The worker parses by carrier name: it loads the carriers from the same files (the environment, and so
$TRACKER_CONFIG_DIR, is inherited) and calls the same `parse_page`, so answers and recorded errors are the
same as in-process. Pages of a carrier the worker cannot load the same way (an adapter registered at run
time, a carrier not defined by the file on disk) and JSON pages are parsed in-process.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import threading
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tracker.carriers import Carrier, Page, ParseResult, load_carriers, parse_page
from tracker.plan import thresholds

log = logging.getLogger(__name__)

WORKER_ADAPTERS = ("html",)  # JSON pages stay in-process: json.loads is cheap next to shipping the page
WORKER_PROCESSES = 1  # measured: a second worker only competes with the poller and the site for 2 cores
MAX_WORKER_BREAKS = 2  # after this many dead workers the rest of the run parses in-process

_NOT_HERE = "not-here"  # the worker's answer for a carrier it does not have as the poller does

_worker_carriers: dict[str, tuple[Carrier, str]] | None = None  # in the worker: name -> (carrier, fingerprint)


def _fingerprint(carrier: Carrier) -> str:
    """What must be the same for the worker's carrier to parse as the poller's does."""
    return hashlib.sha256(repr((carrier.adapter, carrier.source, carrier.settings)).encode()).hexdigest()


def _exit_with(parent: Any) -> None:
    parent.join()  # returns when the poller's end of the spawn sentinel pipe closes: it has ended
    os._exit(0)


def _watch_parent() -> None:
    """The worker's initializer: end the worker when the poller dies, even by kill -9.

    The pool's own pipes do not tell it: the worker holds both ends of its call queue, so a read never
    sees end-of-file. The spawn sentinel does: only the parent holds its write end.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="parent watch", daemon=True).start()


def _loaded() -> dict[str, tuple[Carrier, str]]:
    global _worker_carriers
    if _worker_carriers is None:
        _worker_carriers = {name: (c, _fingerprint(c)) for name, c in load_carriers().items()}
    return _worker_carriers


def _warm_up() -> bool:
    """The worker's first task: read the carrier files (imports are done by then)."""
    return bool(_loaded())


def _worker_parse(name: str, fingerprint: str, page: Page, tracking_number: str) -> Any:
    """In the worker: parse `page` as carrier `name` would be parsed in the poller."""
    carrier, theirs = _loaded().get(name, (None, ""))
    if carrier is None or theirs != fingerprint:
        return _NOT_HERE
    return parse_page(carrier, page, tracking_number)


def worker_carriers(registry: dict[str, Carrier]) -> dict[str, str]:
    """The carriers of `registry` a worker would load the same way: name -> fingerprint."""
    from tracker.carriers import _ADAPTERS
    from tracker.carriers.html import parse_html

    try:
        on_disk = load_carriers()
    except Exception:  # a carrier file broke since the run started: keep everything in-process
        return {}
    out = {}
    for carrier in registry.values():
        disk = on_disk.get(carrier.name)
        if (carrier.adapter in WORKER_ADAPTERS and _ADAPTERS.get(carrier.adapter) is parse_html
                and disk is not None and _fingerprint(disk) == _fingerprint(carrier)):
            out[carrier.name] = _fingerprint(carrier)
    return out


class Parser:
    """`parse(carrier, page, number)` for the lanes: in the worker when it may, in-process otherwise."""

    def __init__(self, eligible: dict[str, str] | None = None, workers: int = 1):
        self.eligible = eligible or {}
        self.workers = workers
        self.breaks = 0
        self.pool: ProcessPoolExecutor | None = None
        self.ready: Any = None  # the warm-up's future: done once the worker can take pages
        self.here_until_ready = thresholds().parse_here_until_ready
        self._lock = threading.Lock()
        if self.eligible:
            self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker must not inherit the run lock's descriptor (nor the lanes' sockets);
        # it watches the poller and exits by itself when the poller dies
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_watch_parent)
        self.ready = pool.submit(_warm_up)  # starts the process now, while the lanes fetch
        return pool

    def parse(self, carrier: Carrier, page: Page, tracking_number: str) -> ParseResult:
        pool, fingerprint = self.pool, self.eligible.get(carrier.name)
        # until the worker has started (about a second of imports), pages parse here: it stalls no lane
        if pool is None or fingerprint is None or (self.here_until_ready and not self.ready.done()):
            return parse_page(carrier, page, tracking_number)
        if self._failed_to_start():  # it never took a page (e.g. an unguarded script's __main__ broke it)
            self._broken(pool)
            return self.parse(carrier, page, tracking_number)
        try:
            future = pool.submit(_worker_parse, carrier.name, fingerprint, page, tracking_number)
        except BrokenProcessPool:  # it died on another lane's page: this one goes to the next pool, or here
            self._broken(pool)
            return self.parse(carrier, page, tracking_number)
        except RuntimeError:  # the pool was shut down under us (the run is ending): parse here
            return parse_page(carrier, page, tracking_number)
        try:
            answer = future.result()  # the wait releases the GIL: the other lanes fetch meanwhile
        except BrokenProcessPool as exc:
            self._broken(pool)
            return ParseResult("error", error=f"the parse worker died while it held this page ({exc or 'process ended'})")
        except CancelledError:  # the run is ending
            return parse_page(carrier, page, tracking_number)
        if isinstance(answer, str) and answer == _NOT_HERE:  # its carrier is not ours (a file changed mid-run)
            with self._lock:
                self.eligible.pop(carrier.name, None)
            return parse_page(carrier, page, tracking_number)
        if not isinstance(answer, ParseResult):
            return ParseResult("error", error=f"unreadable page: the parse worker answered {type(answer).__name__}")
        return answer

    def _failed_to_start(self) -> bool:
        ready = self.ready
        return ready is not None and ready.done() and (ready.cancelled() or ready.exception() is not None)

    def _broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if pool is not self.pool:  # another lane already dealt with this break
                return
            self.breaks += 1
            pool.shutdown(wait=False, cancel_futures=True)
            if self.breaks >= MAX_WORKER_BREAKS:
                self.pool = None
                log.warning("the parse worker died %d times; parsing the rest of this run in-process", self.breaks)
            else:
                self.pool = self._new_pool()

    def close(self) -> None:
        with self._lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def make_parser(registry: dict[str, Carrier], html_pages_due: int) -> Parser:
    """A worker-backed parser for a run with enough due HTML pages (`tracker.plan`: a spawn costs a few hundred
    ms); in-process otherwise."""
    if html_pages_due < thresholds().parse_worker_min_pages:
        return Parser()
    return Parser(worker_carriers(registry), workers=WORKER_PROCESSES)
