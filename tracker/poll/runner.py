"""`poll`: fetch every due tracking page, politely, and store what it says.

One lane per carrier host (a thread each, so hosts are polled in parallel), one request in flight per
host, through the host's token bucket. Lanes page through the due shipments themselves; the calling thread
is the only writer and commits a batch at a time.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlite_utils

from tracker import config
from tracker.carriers import (
    ANSWERS,
    BREAKER_OUTCOMES,
    Carrier,
    Page,
    ParseResult,
    Request,
    batch_adapter,
    claimant,
    load_carriers,
    number_patterns,
    rebase_url,
    resolve,
)
from tracker.carriers.fields import normalise_number
from tracker.errors import BadInput, RunFailure
from tracker.poll.http import FetchError, HttpSettings, TokenBucket, fetch, is_loopback, make_session
from tracker.poll.parsing import WORKER_ADAPTERS, Parser, make_parser
from tracker.poll.store import PollResult, Snapshot, breaker_meta_key, seed_shipments, write_batch
from tracker.timeutil import from_db, to_db
from tracker.timeutil import now as clock_now

PAGE_ROWS = 200
_LANE_DONE = object()
_GATHER_SECONDS = 0.02  # the writer's nap between looks at the results queue; lanes fill under 1% of it meanwhile


@dataclass
class PollSummary:
    due: int = 0
    polled: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    events_added: int = 0
    skipped_breaker: Counter[str] = field(default_factory=Counter)
    breakers_opened: list[str] = field(default_factory=list)
    no_adapter: Counter[str] = field(default_factory=Counter)
    unknown_codes: Counter[str] = field(default_factory=Counter)
    missing_secrets: dict[str, tuple[list[str], int]] = field(default_factory=dict)  # carrier -> (env vars, due)
    routed: Counter[str] = field(default_factory=Counter)  # carrier -> shipments newly given to it
    requests: Counter[str] = field(default_factory=Counter)  # carrier -> HTTP requests (batch carriers)
    quota_used: Counter[str] = field(default_factory=Counter)
    rows_dropped: int = 0
    shipments_created: int = 0
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k not in ANSWERS)

    def line(self) -> str:
        """The one line cron mails home."""
        parts = [f"polled {self.polled} of {self.due} due shipments in {self.seconds:.1f} s: "
                 f"{self.outcomes['ok']} ok, {self.outcomes['not_found']} not found, "
                 + (f"{self.outcomes['no_information']} no information yet, " if self.outcomes['no_information'] else "")
                 + f"{self.errors} errors; {self.events_added} new events"]
        errors = {k: n for k, n in self.outcomes.items() if k not in ANSWERS}
        if errors:
            parts.append("errors by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(errors.items())))
        if self.breakers_opened:
            parts.append("circuit breaker opened for " + ", ".join(self.breakers_opened))
        if self.skipped_breaker:
            parts.append("skipped (breaker open): " + ", ".join(f"{c} {n}" for c, n in sorted(self.skipped_breaker.items())))
        if self.no_adapter:
            parts.append("not polled, no carrier configured: " + ", ".join(
                f"{n} {c}" if c else f"{n} without a carrier"
                for c, n in sorted(self.no_adapter.items(), key=lambda kv: str(kv[0]))))
        for name, (env, due) in sorted(self.missing_secrets.items()):
            parts.append(f"{name} skipped: {due} due shipments not polled, no API token (set {' and '.join(env)})")
        if self.routed:
            parts.append("given to a carrier by number: " + ", ".join(f"{c} {n}" for c, n in sorted(self.routed.items())))
        for name, n in sorted(self.requests.items()):
            used = f", {self.quota_used[name]} of its daily quota used" if self.quota_used[name] else ""
            parts.append(f"{name}: {n} batched requests{used}")
        if self.rows_dropped:
            parts.append(f"undated rows dropped: {self.rows_dropped}")
        if self.unknown_codes:
            parts.append("unknown carrier codes kept raw: " + ", ".join(
                f"{c} x{n}" for c, n in self.unknown_codes.most_common(5)))
        if self.stopped_early:
            parts.append("stopped at the run's time budget; the rest stays due")
        return "; ".join(parts)


class Breakers:
    """Per-carrier circuit breakers: opened by consecutive captcha / 403 / HTML-instead-of-JSON answers."""

    def __init__(self, threshold: int, cooldown: timedelta, now: datetime, stored: dict[str, str | None]):
        self.threshold, self.cooldown, self.now = threshold, cooldown, now
        self.trips: Counter[str] = Counter()
        self.open: set[str] = set()
        self.opened: list[str] = []
        self.meta: dict[str, str | None] = {}
        self._lock = threading.Lock()
        for carrier, until in stored.items():
            if until and until > to_db(now):
                self.open.add(carrier)
            elif until:
                self.trips[carrier] = threshold - 1  # half-open: one more bad answer reopens it
                self.meta[breaker_meta_key(carrier)] = None

    def allows(self, carrier: str) -> bool:
        return carrier not in self.open

    def record(self, carrier: str, outcome: str) -> bool:
        """Count an answer; True when this one opened the breaker."""
        with self._lock:
            if outcome in BREAKER_OUTCOMES:
                self.trips[carrier] += 1
                if self.trips[carrier] >= self.threshold and carrier not in self.open:
                    self.open.add(carrier)
                    self.opened.append(carrier)
                    self.meta[breaker_meta_key(carrier)] = to_db(self.now + self.cooldown)
                    return True
            elif outcome in ANSWERS:
                self.trips[carrier] = 0
            return False

    def take_meta(self) -> dict[str, str | None]:
        with self._lock:
            out, self.meta = self.meta, {}
            return out


class Quota:
    """A carrier's daily quota (`quota_per_day` in its file; 17TRACK counts one unit per registered number),
    shared by its lane and kept in `meta` per UTC day, so runs of the same day add up."""

    def __init__(self, carrier: str, limit: int | None, day: str, used: int):
        self.carrier, self.limit, self.day, self.used = carrier, limit, day, used
        self.taken = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        """Grant up to `n` units; how many were granted."""
        with self._lock:
            granted = n if self.limit is None else max(0, min(n, self.limit - self.used))
            self.used += granted
            self.taken += granted
            return granted

    def meta(self) -> dict[str, str | None]:
        return {quota_meta_key(self.carrier, self.day): str(self.used)} if self.taken else {}


def quota_meta_key(carrier: str, day: str) -> str:
    return f"poll.quota.{carrier}.{day}"


@dataclass
class Lane:
    """Everything polled through one host."""

    host: str
    carriers: dict[str, Carrier]  # every spelling of the carrier column -> carrier
    bucket: TokenBucket


class _Run:
    def __init__(self, db_file: str, now: datetime, cfg: dict[str, Any], http: HttpSettings, base_url: str | None,
                 breakers: Breakers, limit: int | None, deadline: float):
        self.db_file, self.now, self.cfg, self.http, self.base_url = db_file, now, cfg, http, base_url
        self.breakers, self.deadline = breakers, deadline
        self.results: queue.Queue[Any] = queue.Queue(maxsize=1000)  # bounded: memory stays flat
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.skipped: Counter[str] = Counter()
        self.out_of_time = False
        self.lane_errors: list[str] = []
        self._limit = limit
        self._limit_lock = threading.Lock()
        self.parser = Parser()  # in-process until poll() hands over one with a worker
        self.quotas: dict[str, Quota] = {}
        self.requests: Counter[str] = Counter()

    def claim(self) -> bool:
        if self._limit is None:
            return True
        with self._limit_lock:
            if self._limit <= 0:
                return False
            self._limit -= 1
            return True

    def lane(self, lane: Lane) -> None:
        try:
            self._lane(lane)
        except Exception as exc:  # the lane itself broke (not one fetch): the run has failed
            self.lane_errors.append(f"{lane.host}: {type(exc).__name__}: {exc}")
        finally:
            self.results.put(_LANE_DONE)

    def _lane(self, lane: Lane) -> None:
        conn = sqlite3.connect(f"file:{quote(self.db_file)}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        target = next(iter(lane.carriers.values())).host(self.base_url)
        session = make_session(self.http, min_interval=lane.bucket.interval, loopback=is_loopback(target))
        names = list(lane.carriers)
        sql = (f"SELECT tracking_number, carrier, state, last_status, first_seen_at, next_poll_at, last_event_at, "
               f"delivered_seen_at, consecutive_failures, not_found_count, last_mile_number FROM shipments "
               f"WHERE next_poll_at <= ? AND (next_poll_at, tracking_number) > (?, ?) "
               f"AND state NOT IN ('done', 'retired', 'invalid') AND carrier IN ({', '.join('?' * len(names))}) "
               f"ORDER BY next_poll_at, tracking_number LIMIT {PAGE_ROWS}")
        key = ("", "")
        batch: list[dict[str, Any]] = []
        try:
            while not self.stop.is_set():
                rows = conn.execute(sql, [to_db(self.now), *key, *names]).fetchall()
                if not rows:
                    break
                for row in rows:
                    key = (row["next_poll_at"], row["tracking_number"])
                    if time.monotonic() > self.deadline:
                        self.out_of_time = True
                        self.stop.set()
                    if self.stop.is_set():
                        return
                    carrier = lane.carriers[row["carrier"]]
                    if not self.breakers.allows(carrier.name):
                        self.skipped[carrier.name] += 1
                        continue
                    if not self.claim():
                        return
                    size = int(carrier.settings.get("batch_size", 1)) if batch_adapter(carrier) else 1
                    if size > 1:  # an API that answers many numbers per request
                        batch.append(dict(row))
                        if len(batch) >= size:
                            self.poll_batch(lane, carrier, batch, session)
                            batch = []
                        continue
                    self.results.put(self.poll_one(lane, carrier, dict(row), session))
            if batch and not self.stop.is_set():
                self.poll_batch(lane, carrier, batch, session)
        finally:
            session.close()
            conn.close()

    def poll_one(self, lane: Lane, carrier: Carrier, shipment: dict[str, Any], session: Any) -> PollResult:
        t0 = time.monotonic()
        started = to_db(self.now + timedelta(seconds=t0 - self.started))
        tn = shipment["tracking_number"]

        def result(outcome: str, **kw: Any) -> PollResult:
            opened = self.breakers.record(carrier.name, outcome)
            if opened:
                kw["error"] = (kw.get("error") or outcome) + f"; circuit breaker opened for {carrier.name}"
            return PollResult(shipment, carrier.name, lane.host, started, int((time.monotonic() - t0) * 1000),
                              outcome, **kw)

        try:
            request = carrier.request(tn, self.base_url)
        except BadInput:
            return result("invalid_number",
                          error=f"not a {carrier.name} number (pattern {carrier.number_pattern.pattern}); not polled again")
        try:
            page, retries = fetch(session, request.url, self.http, before_request=lane.bucket.acquire,
                                  method=request.method, data=request.body, headers=request.headers)
        except FetchError as exc:
            if exc.retry_after:
                lane.bucket.hold_off(min(exc.retry_after, self.http.retry_after_max))
            return result("error", error=str(exc), http_status=exc.http_status, retry_after=exc.retry_after)
        except Exception as exc:  # a bug in one fetch must not end the run
            return result("error", error=f"internal error: {type(exc).__name__}: {exc}")
        if retries:
            lane.bucket.hold_off(lane.bucket.interval)
        if page.status == 403:
            return result("blocked", http_status=403, error="HTTP 403: the carrier refused us")
        if page.status >= 400 and page.status != 404:
            return result("error", http_status=page.status, error=f"HTTP {page.status}")
        parsed = self.parser.parse(carrier, page, tn)
        if page.status == 404 and parsed.outcome != "not_found":
            return result("error", http_status=404, error="HTTP 404")
        return self.outcome(carrier, result, shipment, parsed, page)

    def outcome(self, carrier: Carrier, result: Callable[..., PollResult], shipment: dict[str, Any],
                parsed: ParseResult, page: Page | None) -> PollResult:
        """The poll result of one parsed page: its events, or why none are stored; its page kept as evidence."""
        parsed = check_page_number(shipment, parsed)
        snapshot = None
        if page is not None and (parsed.outcome in ANSWERS or parsed.outcome == "wrong_parcel"):
            snapshot = Snapshot(hashlib.sha256(page.body).hexdigest(), zlib.compress(page.body, 6), len(page.body),
                                page.content_type, carrier.redact(page.url), page.status)
        error = parsed.error
        notes = list(parsed.notes)
        if parsed.unknown_codes:
            error = "unknown codes kept raw: " + ", ".join(sorted(set(parsed.unknown_codes)))[:300]
        if notes and parsed.outcome in ANSWERS:
            error = "; ".join([*([error] if error else []), *notes])[:500]
        return result(parsed.outcome, http_status=page.status if page else None, error=error,
                      events=parsed.events, last_mile_number=parsed.last_mile_number, snapshot=snapshot,
                      dropped=sum(1 for n in parsed.notes if n.endswith("row dropped")))

    def poll_batch(self, lane: Lane, carrier: Carrier, shipments: list[dict[str, Any]], session: Any) -> None:
        """Poll a batch of shipments through an API that answers many numbers per request."""
        t0 = time.monotonic()
        started = to_db(self.now + timedelta(seconds=t0 - self.started))

        def fetcher(request: Request) -> Page:
            url = rebase_url(request.url, self.base_url) if self.base_url else request.url
            self.requests[carrier.name] += 1
            page, retries = fetch(session, url, self.http, before_request=lane.bucket.acquire,
                                  method=request.method, data=request.body, headers=request.headers)
            if retries:
                lane.bucket.hold_off(lane.bucket.interval)
            if page.status >= 400 and page.status not in (401, 403):
                raise FetchError(f"HTTP {page.status}", http_status=page.status)
            return page

        numbers = [s["tracking_number"] for s in shipments]
        try:
            answers = batch_adapter(carrier)(carrier, numbers, fetcher, self.quotas[carrier.name])
        except FetchError as exc:
            if exc.retry_after:
                lane.bucket.hold_off(min(exc.retry_after, self.http.retry_after_max))
            answers = {n: (ParseResult("error", error=str(exc)), None) for n in numbers}
        except Exception as exc:  # a bug in one batch must not end the run
            answers = {n: (ParseResult("error", error=f"internal error: {type(exc).__name__}: {exc}"), None)
                       for n in numbers}
        for shipment in shipments:
            parsed, page = answers.get(shipment["tracking_number"]) or (
                ParseResult("error", error="the batch answer lost this number"), None)

            def result(outcome: str, shipment: dict[str, Any] = shipment, **kw: Any) -> PollResult:
                if self.breakers.record(carrier.name, outcome):
                    kw["error"] = (kw.get("error") or outcome) + f"; circuit breaker opened for {carrier.name}"
                return PollResult(shipment, carrier.name, lane.host, started, int((time.monotonic() - t0) * 1000),
                                  outcome, **kw)

            self.results.put(self.outcome(carrier, result, shipment, parsed, page))


def check_page_number(shipment: dict[str, Any], parsed: ParseResult) -> ParseResult:
    """A page about another parcel is no evidence for this one: an error on the shipment, no events stored.

    The page's own number must be the number asked for, or the shipment's known last-mile number, or a
    number whose page says it continues as the one asked for."""
    if not parsed.page_number or parsed.outcome not in ANSWERS:
        return parsed
    asked = normalise_number(shipment["tracking_number"])
    known = {asked, normalise_number(shipment.get("last_mile_number"))}
    page_number = normalise_number(parsed.page_number)
    if page_number in known or normalise_number(parsed.last_mile_number) == asked:
        return parsed
    return ParseResult("wrong_parcel", page_number=parsed.page_number,
                       error=f"the page is about {parsed.page_number}, not {shipment['tracking_number']}: "
                             f"its {len(parsed.events)} events were not stored; the page is kept")


def _db_file(db: sqlite_utils.Database) -> str:
    for _, name, path in db.conn.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            return path
    raise RunFailure("poll needs a database file (not an in-memory store)")


def polling_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = config.load("polling")
    return config._merge(cfg, overrides) if overrides else cfg


def poll(
    db: sqlite_utils.Database,
    as_of: datetime | None = None,
    *,
    limit: int | None = None,
    carrier: str | None = None,
    base_url: str | None = None,
    carriers: dict[str, Carrier] | None = None,
    settings: dict[str, Any] | None = None,
    ignore_rate_limits: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PollSummary:
    """Fetch the tracking pages that are due at `as_of` and store what they say.

    `base_url` (default $TRACKER_CARRIER_BASE_URL) replaces scheme and host of every carrier URL;
    `settings` is merged over data/polling.toml; `progress(written, due)` is called after every batch.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # this process is a spawned parse worker importing an unguarded script's __main__: polling here
        # would poll twice (as multiprocessing's own check says: use `if __name__ == "__main__":`)
        raise RunFailure("poll() called while a worker process starts: guard the script with "
                         "`if __name__ == \"__main__\":`")
    now = as_of or clock_now()
    cfg = polling_settings(settings)
    registry = carriers if carriers is not None else load_carriers()
    patterns = number_patterns(registry)
    if carrier:
        chosen = resolve(registry, carrier)
        if chosen is None:
            raise BadInput(f"--carrier {carrier}: no such carrier (configured: {', '.join(sorted(registry)) or 'none'})")
        registry = {chosen.name: chosen}
    if ignore_rate_limits is None:
        ignore_rate_limits = bool(cfg["run"].get("ignore_rate_limits", False))
    summary = PollSummary()
    t_start = time.monotonic()
    summary.shipments_created = seed_shipments(db, now, patterns)
    http = HttpSettings.from_config(cfg["http"])
    ready = {name: c for name, c in registry.items() if not c.missing_secrets()}
    waiting: Counter[str] = Counter()  # due shipments of carriers that cannot poll now (no token)
    if not carrier:
        summary.routed = route_unassigned(db, registry, ready, now)
        for tn, name in _unassigned(db, registry, now):  # what routing left: unconfigured, or waiting
            target = resolve(registry, name) or claimant(registry, tn)
            if target is None:
                summary.no_adapter[name] += 1
            else:
                waiting[target.name] += 1
    for name, c in registry.items():
        if name not in ready:
            due = db.conn.execute(
                f"SELECT count(*) FROM shipments WHERE next_poll_at <= ? AND state NOT IN ('done', 'retired', 'invalid') "
                f"AND carrier IN ({', '.join('?' * len(c.names()))})", [to_db(now), *c.names()]).fetchone()[0]
            if due + waiting[name]:
                summary.missing_secrets[name] = (c.missing_secrets(), due + waiting[name])
    registry = ready

    lanes: dict[str, Lane] = {}
    rates: dict[str, float] = {}
    for c in registry.values():
        # politeness is keyed by the carrier's own host, also when a base URL sends the requests to a
        # stand-in (the local carrier site plays every carrier's host at one address)
        host = c.host("")
        rate = float("inf") if ignore_rate_limits else c.rate_per_second
        if host not in lanes or rate < rates[host]:  # carriers sharing a host share the slowest rate
            rates[host] = rate
            lanes[host] = Lane(host, lanes[host].carriers if host in lanes else {}, TokenBucket(rate, c.burst))
        lanes[host].carriers.update({name: c for name in c.names()})

    all_names = [n for lane in lanes.values() for n in lane.carriers]
    marks = ", ".join("?" * len(all_names)) or "''"
    due_at = to_db(now)
    due_by_name = dict(db.conn.execute(
        f"SELECT carrier, count(*) FROM shipments WHERE next_poll_at <= ? AND state NOT IN ('done', 'retired', 'invalid') "
        f"AND carrier IN ({marks}) GROUP BY carrier", [due_at, *all_names]).fetchall())
    summary.due = sum(due_by_name.values())
    html_due = sum(n for lane in lanes.values() for name, c in lane.carriers.items()
                   if c.adapter in WORKER_ADAPTERS for n in [due_by_name.get(name, 0)])
    if limit is not None:
        summary.due = min(summary.due, limit)

    stored = {c: db.conn.execute("SELECT value FROM meta WHERE key = ?", [breaker_meta_key(c)]).fetchone()
              for c in registry}
    breakers = Breakers(int(cfg["breaker"]["threshold"]), timedelta(hours=float(cfg["breaker"]["cooldown_hours"])),
                        now, {c: (row[0] if row else None) for c, row in stored.items()})
    deadline = t_start + float(cfg["run"]["max_run_minutes"]) * 60
    run = _Run(_db_file(db), now, cfg, http, base_url, breakers, limit, deadline)
    day = now.strftime("%Y-%m-%d")
    for name, c in registry.items():
        if batch_adapter(c):
            row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [quota_meta_key(name, day)]).fetchone()
            limit_ = c.settings.get("quota_per_day")
            run.quotas[name] = Quota(name, int(limit_) if limit_ is not None else None, day, int(row[0]) if row else 0)
    threads = [threading.Thread(target=run.lane, args=(lane,), name=f"lane {host}", daemon=True)
               for host, lane in lanes.items()]
    # a big run parses its HTML pages in a worker process: on the second core, off this process's GIL
    run.parser = make_parser(registry, min(html_due, limit) if limit is not None else html_due)
    try:
        for t in threads:
            t.start()
    except BaseException:
        run.parser.close()
        raise

    batch_size, batch_seconds = int(cfg["run"]["batch_size"]), float(cfg["run"]["batch_seconds"])
    pending: list[PollResult] = []
    done, last_commit = 0, time.monotonic()

    def flush() -> None:
        nonlocal pending, last_commit
        try:
            meta = breakers.take_meta()
            for quota in run.quotas.values():
                meta.update(quota.meta())
            added = write_batch(db, pending, now, cfg, meta)
        except sqlite3.Error as exc:
            run.stop.set()
            raise RunFailure(f"could not store poll results in {_db_file(db)}: {exc}") from exc
        for r in pending:
            summary.polled += 1
            summary.outcomes[r.outcome] += 1
            if r.error and r.error.startswith("unknown codes kept raw: "):
                summary.unknown_codes.update(r.error.removeprefix("unknown codes kept raw: ").split("; ")[0].split(", "))
            summary.rows_dropped += r.dropped
        summary.events_added += sum(added.values())
        if progress:
            progress(summary.polled, summary.due)
        pending, last_commit = [], time.monotonic()

    try:
        while done < len(threads):
            try:
                items = [run.results.get(timeout=0.2)]
            except queue.Empty:
                items = []
            while True:  # take everything waiting, so this thread wakes per handful of results, not per result
                try:
                    items.append(run.results.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if item is _LANE_DONE:
                    done += 1
                else:
                    pending.append(item)
            if pending and (len(pending) >= batch_size or time.monotonic() - last_commit >= batch_seconds
                            or done == len(threads)):
                flush()
            elif done < len(threads):
                # let results gather: each wake-up of this thread takes the GIL from a lane mid-parse
                time.sleep(_GATHER_SECONDS)
        if pending:
            flush()
        meta = breakers.take_meta()
        if meta:
            write_batch(db, [], now, cfg, meta)
    finally:
        run.stop.set()
        run.parser.close()
    summary.breakers_opened = breakers.opened
    summary.skipped_breaker = run.skipped
    summary.requests = run.requests
    summary.quota_used = Counter({name: q.taken for name, q in run.quotas.items() if q.taken})
    summary.stopped_early = run.out_of_time
    summary.seconds = time.monotonic() - t_start
    if run.lane_errors:
        raise RunFailure("polling stopped: " + "; ".join(run.lane_errors) + f" (stored so far: {summary.line()})")
    return summary


def _unassigned(db: sqlite_utils.Database, registry: dict[str, Carrier], now: datetime) -> list[tuple[str, str | None]]:
    """Due shipments whose carrier column names no configured carrier: (tracking number, carrier column)."""
    names = [n for c in registry.values() for n in c.names()]
    marks = ", ".join("?" * len(names)) or "''"
    return db.conn.execute(
        f"SELECT tracking_number, carrier FROM shipments WHERE next_poll_at <= ? "
        f"AND state NOT IN ('done', 'retired', 'invalid') AND (carrier IS NULL OR carrier NOT IN ({marks}))",
        [to_db(now), *names]).fetchall()


def route_unassigned(db: sqlite_utils.Database, registry: dict[str, Carrier], ready: dict[str, Carrier],
                     now: datetime) -> Counter[str]:
    """Give each due shipment whose carrier column names no configured carrier to one: the carrier its name
    resolves to (aliases, any case and punctuation), else the carrier file whose number_pattern claims the
    number, else the aggregator. A carrier that cannot poll now (no token) is given nothing."""
    routed: Counter[str] = Counter()
    updates = []
    for tn, name in _unassigned(db, registry, now):
        target = resolve(registry, name) or claimant(registry, tn)
        if target is not None and target.name in ready:
            updates.append((target.name, tn))
            routed[target.name] += 1
    if updates:
        with db.conn:
            db.conn.executemany("UPDATE shipments SET carrier = ? WHERE tracking_number = ?", updates)
    return routed


def breaker_status(db: sqlite_utils.Database, names: list[str], now: datetime) -> dict[str, str | None]:
    """When each carrier's breaker closes again (None: closed)."""
    out = {}
    for name in names:
        row = db.conn.execute("SELECT value FROM meta WHERE key = ?", [breaker_meta_key(name)]).fetchone()
        until = row[0] if row else None
        out[name] = until if until and (from_db(until) or now) > now else None
    return out
