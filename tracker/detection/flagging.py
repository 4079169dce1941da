"""Runs the detectors' rules over the store and writes `flags`.

Rules (`detectors.rules`) only read what their context hands them and return findings; this engine reads the
store for them (`tracker.detection.readers`: the examined orders with their shipment facts, which it brings up
to date first) and decides what to store:

- **idempotent**: one row per (order_id, code); the same data gives the same flags and no write at all;
- **resolution**: a flag that no longer holds gets `resolved_at = as_of` (never deleted); one that holds
  again is reactivated with a new `detected_at`;
- **incremental**: only orders whose data changed since the last run are re-examined (watermarks in `meta`
  over orders.seq, tracking_events.id, messages.id and poll_log.id), plus every order sharing a tracking
  number with one of them, plus orders whose time-dependent verdict came due (`rule_deadlines`);
  `full=True` re-examines all, and so does a run after the rules' settings changed or with an earlier as_of.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils

from detectors import view
from detectors.rules import SEVERITIES, Finding, Rule, RuleContext, all_rules
from tracker import config, scratch
from tracker.db import get_meta
from tracker.detection import (
    flag_writes,
    pressure_cache,
    readers,
    registry,
    search_fold,
    shipment_facts,
    store,
)
from tracker.detection.children import Children
from tracker.detection.freshness import META_PREFIX, META_RUN
from tracker.detection.freshness import marks as _marks
from tracker.detection.memory import give_back
from tracker.errors import BadInput
from tracker.plan import Plan, plan_for, store_file
from tracker.timeutil import to_db

log = logging.getLogger(__name__)


@dataclass
class RulesResult:
    order_ids: set[str] = field(default_factory=set)  # every order examined this run
    everything: bool = False  # every order was examined (a full run, new settings, an earlier as_of)
    raised: int = 0
    resolved: int = 0
    # every order as the child readers read them for the rules, kept for the classifier's frame of this run
    kept: readers.KeptOrders | None = None
    # a scope's orders as the rules read them through SQL, for the scoring's first frame of this run
    scope_rows: readers.ScopeRows | None = None
    # a whole-store run's flags write, under way while the scoring stage starts (`run_rules(defer=True)`)
    writing: FlagWrite | None = None

    def written(self) -> None:
        """Wait for the flags' write (raising what it raised): before anything else writes."""
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.wait()


def load_routes(name: str = "routes.csv") -> dict[tuple[str, str], float]:
    """Postal route minimum transit days, origin -> destination ('*' any, 'same,same' domestic), from data."""
    from tracker.routes import fold_into, load_route_table

    return fold_into({}, load_route_table(name))["impossible_transit"]["routes"]


def load_settings() -> dict[str, Any]:
    """data/rules.toml with the route table (tracker.routes.fold_into) and the configured carriers' number
    patterns (settings['invalid_tracking_number']['carrier_patterns']) folded in: read from the carrier files
    alone, as `tracker validate` reads them (importing the adapters, BeautifulSoup among them, cost every detect
    run 80 ms or more; polling, which needs them, checks the rest of each file)."""
    from tracker.carrier_files import declared_number_patterns as number_patterns
    from tracker.routes import fold_into, load_route_table

    settings = copy.deepcopy(config.load("rules"))
    transit = settings.setdefault("impossible_transit", {})
    fold_into(settings, load_route_table(str(transit.get("routes_file", "routes.csv"))))
    # configured carriers' number patterns: a number matching one is recognised by that carrier
    settings.setdefault("invalid_tracking_number", {})["carrier_patterns"] = number_patterns()
    for code, table in settings.items():
        if isinstance(table, dict) and "severity" in table and table["severity"] not in SEVERITIES:
            raise BadInput(f"rules.toml: [{code}] severity {table['severity']!r} is not one of {', '.join(SEVERITIES)}")
    return settings


def _fingerprint(settings: dict[str, Any], rules: list[Rule]) -> str:
    """Changes when thresholds or rule versions change: then every order must be looked at again."""
    plain = {k: ({f"{a}->{b}": d for (a, b), d in v["routes"].items()} | {x: y for x, y in v.items() if x != "routes"}
                 if isinstance(v, dict) and "routes" in v else v) for k, v in settings.items()}
    text = json.dumps([plain, [(r.code, r.version) for r in rules]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _changed_orders(conn, last: dict[str, int], as_of: str) -> set[str]:  # noqa: ANN001
    """The orders to re-examine (see the module docstring)."""
    changed: set[str] = set()

    def add(sql: str, params: list) -> None:
        changed.update(r[0] for r in conn.execute(sql, params))

    add("SELECT order_id FROM orders WHERE seq > ?", [last["orders_seq"]])
    add("SELECT order_id FROM orders WHERE tracking_number IN "
        "(SELECT tracking_number FROM tracking_events WHERE id > ?)", [last["event_id"]])
    add("SELECT order_id FROM messages WHERE id > ?", [last["message_id"]])
    add("SELECT order_id FROM orders WHERE tracking_number IN "
        "(SELECT tracking_number FROM poll_log WHERE id > ?)", [last["poll_id"]])
    add("SELECT order_id FROM rule_deadlines WHERE due_at <= ?", [as_of])
    # an order that left a reuse cluster (its number was corrected): its old partners must be looked at again
    for (evidence,) in conn.execute(
        "SELECT evidence FROM flags WHERE code = 'tracking_reused' AND resolved_at IS NULL "
        "AND order_id IN (SELECT value FROM json_each(?))", [store.as_json(changed)]
    ):
        try:
            changed.update(json.loads(evidence).get("other_orders", []))
        except (ValueError, AttributeError):
            continue
    # every order sharing a tracking number with a changed one
    add("SELECT order_id FROM orders WHERE tracking_number IN (SELECT value FROM json_each(?))",
        [store.as_json(store.numbers_of(conn, changed))])
    return changed


def _plain(value: Any) -> Any:
    """A value JSON has no type for, as evidence keeps it: a numpy scalar as its Python value, anything else as text."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# one encoder for every finding (`json.dumps` with options builds a new encoder for each call)
_evidence_encoder = json.JSONEncoder(sort_keys=True, default=_plain, ensure_ascii=False).encode


def _evidence_json(evidence: dict[str, Any]) -> str:
    return _evidence_encoder(evidence)


def _collect(rules: list[Rule], ctx: RuleContext) -> list[Finding]:
    findings: list[Finding] = []
    for r in rules:
        started = time.perf_counter()
        for f in r.check(ctx):
            if f.code != r.code:
                raise ValueError(f"rule {r.code} returned a finding with code {f.code}")
            findings.append(f)
        give_back(r.code)
        log.debug("rules: %s in %.2f s", r.code, time.perf_counter() - started)
    return findings


def _deadlines(rules: list[Rule], ctx: RuleContext) -> pd.Series:
    """The earliest future time per order at which some rule's verdict may change by time alone."""
    parts = [s for r in rules if r.deadlines is not None and len(s := r.deadlines(ctx))]
    if not parts:
        return pd.Series(dtype=float)
    due = pd.concat(parts)
    # a mask of plain arrays: `due[mask]` with a Series mask looks the word "dtype" up among a million order ids
    # (pandas' attribute lookup), 1.4 s at 1M orders
    # and the earliest per order by codes of the sorted ids (as `groupby(level=0).min()`, a third of its time)
    values = due.to_numpy(dtype=float)
    later = values > ctx.as_of_jd
    codes, ids = pd.factorize(due.index[later], sort=True)
    earliest = np.full(len(ids), np.inf)
    np.minimum.at(earliest, codes, values[later])
    return pd.Series(earliest, index=pd.Index(ids, name=due.index.name))


def plan_writes(conn, findings: list[Finding], examined: set[str] | None, as_of: str) -> flag_writes.FlagWrites:  # noqa: ANN001
    """The writes that store the findings of the examined orders (every order when None)."""
    where, params = ("", []) if examined is None else \
        ("WHERE order_id IN (SELECT value FROM json_each(?))", [store.as_json(examined)])
    existing = {
        (r[0], r[1]): r[2:]
        for r in conn.execute(
            f"SELECT order_id, code, severity, explanation, evidence, rule_version, resolved_at FROM flags {where}",
            params)
    }
    out = flag_writes.FlagWrites()
    seen: set[tuple[str, str]] = set()
    for f in findings:
        key = (f.order_id, f.code)
        if key in seen:
            continue
        seen.add(key)
        out.active.append((f.order_id, f.code, f.severity))
        content = (f.severity, f.explanation, _evidence_json(f.evidence), f.rule_version)
        old = existing.get(key)
        if old is None:
            out.inserts.append((*key, *content, as_of))
        elif old[4] is not None:
            out.reactivations.append((*content, as_of, *key))
        elif tuple(old[:4]) != content:
            out.updates.append((*content, *key))
    for key, old in existing.items():
        if old[4] is None and key not in seen and (examined is None or key[0] in examined):
            out.resolutions.append((as_of, *key))
    return out


def _write(conn, findings: list[Finding], examined: set[str] | None, as_of: str) -> tuple[int, int]:  # noqa: ANN001
    """Store the findings of the examined orders (every order when None); return (raised, resolved)."""
    writes = plan_writes(conn, findings, examined, as_of)
    flag_writes.apply_writes(conn, writes)
    return writes.raised, len(writes.resolutions)


class FlagWrite:
    """A whole-store run's flags transaction under way in the writing child (`flag_writes.store_files`): its rows
    go through files in a private folder, removed once they are written."""

    def __init__(self, future: Any, folder: str):
        self.future, self.folder = future, folder

    @classmethod
    def start(cls, writer: Children, path: str, writes: flag_writes.FlagWrites, deadlines: list[tuple[str, str]],
              meta: dict[str, str]) -> FlagWrite:
        folder = scratch.folder("flags")
        try:
            return cls(writer.submit(flag_writes.store_files, path,
                                     flag_writes.to_files(folder, writes, deadlines, meta)), folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def wait(self) -> None:
        """Until it is committed; raises what it raised."""
        started = time.perf_counter()
        try:
            written = self.future.result()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        log.debug("rules: waited %.2f s for the writing child's %d rows", time.perf_counter() - started, written)


def context(conn, plan: Plan, as_of: datetime, settings: dict[str, Any],  # noqa: ANN001
            order_ids: set[str] | None, orders: pd.DataFrame | None = None,
            pressure: Any = None) -> RuleContext:
    """What the rules read, from the store: these orders (every order when None; `orders` when read already)
    and, when first asked for, their events, seller messages and disputes, and the message model (`pressure`,
    by default `registry.message_pressure`)."""
    return RuleContext(
        as_of, settings,
        orders=orders if orders is not None else lambda: readers.rule_frame(conn, order_ids, plan=plan),
        events=lambda numbers: store.event_records(conn, numbers),
        seller_messages=lambda: store.seller_messages(conn, order_ids),
        disputes=lambda: store.disputes(conn, order_ids),
        pressure=pressure or registry.message_pressure,
    )


def run_rules(db: sqlite_utils.Database, as_of: datetime, *, full: bool = False,
              plan: Plan | None = None, run: str | None = None, defer: bool = False,
              on_scope: Callable[[bool], None] | None = None) -> RulesResult:
    """Run every registered rule over the orders that changed (all with `full`) and update `flags`. The shipment
    facts are brought up to date first: the rules read them. `run` names the detect run in `meta` with the marks.
    `defer`: a run that keeps every order for the scoring stage may leave its flags' transaction under way
    (`RulesResult.written()` waits for it). `on_scope` is told, before anything is read, whether the run examines
    every order (`RulesResult.everything`)."""
    conn = db.conn
    plan = plan or plan_for(conn)
    settings = load_settings()
    rules = all_rules()
    as_of_text = to_db(as_of)
    fingerprint = _fingerprint(settings, rules)
    marks = _marks(conn)  # taken before reading, so writes during the run are seen by the next one
    last = {k: int(get_meta(db, META_PREFIX + k, "-1") or -1) for k in marks}
    last_as_of = get_meta(db, META_PREFIX + "as_of")
    scope_all = (
        full
        or last_as_of is None
        or min(last.values()) < 0
        or get_meta(db, META_PREFIX + "fingerprint") != fingerprint
        or as_of_text < last_as_of
    )
    if on_scope is not None:
        on_scope(scope_all)
    # a whole-store run fills the message model's cache of seller messages in a child meanwhile, for the scoring
    filling = pressure_cache.start(conn, plan) if scope_all else pressure_cache.Filling(None, None)
    try:
        result = _run(db, conn, plan, as_of, settings, rules, scope_all, last, marks, fingerprint, run,
                      filling.pressure(conn), defer)
    except BaseException:
        filling.abandon()  # the run failed: nothing waits for its helper
        raise
    started = time.perf_counter()
    scored = filling.wait()  # after the flags' write: the child may need the write lock
    if scored:
        log.debug("rules: waited %.2f s for the pressure of %d messages", time.perf_counter() - started, scored)
    return result


def _run(db: sqlite_utils.Database, conn: Any, plan: Plan, as_of: datetime, settings: dict[str, Any],
         rules: list[Rule], scope_all: bool, last: dict[str, int], marks: dict[str, int], fingerprint: str,
         run: str | None, pressure: Any, defer: bool = False) -> RulesResult:
    kinds = shipment_facts.scan_kinds()
    # every order, and every number's facts to compute anew: the orders are read (by the same child processes)
    # while the facts are computed, joined to them in memory and written meanwhile
    together = scope_all and shipment_facts.watermark(db, kinds) == 0
    as_of_text = to_db(as_of)
    # the run's child processes read the events and the orders, then one writes the facts while the rules run
    # (the writing child: the facts, then the search queue of a big import); a failed run ends them at once
    keep_writer = together and defer  # the writing child stays for the flags' write, after the rules
    with Children(1, lean=True) as writer, Children.of(plan) as children:
        refreshing = None
        folding = search_fold.Folding()
        try:
            # with the seller messages and the destination's places the classifier's frame needs: it is built from
            # this read (`readers.KeptOrders`), not read again
            read = readers.OrderRead(conn, plan, None, fact_columns=(), children=children, side=True,
                                     places=True) if together else None
            kept: list[readers.KeptOrders] = []
            scope_rows: list[readers.ScopeRows] = []
            try:
                started = time.perf_counter()
                refreshing = shipment_facts.start(db, plan, kinds, children=children, writer=writer)
                log.debug("shipment facts: %s in %.2f s", refreshing.done, time.perf_counter() - started)
                folding = search_fold.start(conn, plan, writer)  # after the facts' write, on the same child
                if not keep_writer:
                    writer.release()  # no more work for it: it ends after the fold, not with the rules
                children.release()  # every scan read (and the orders' read queued first): no more work for them
                scope = None if scope_all else _changed_orders(conn, last, as_of_text)
                if not together:
                    refreshing.wait()  # the frame reads the facts from the table
                started = time.perf_counter()
                orders = readers.rule_frame(conn, scope, plan=plan, known_facts=refreshing.facts if together else None,
                                            read=read, keep=kept, scope_rows=scope_rows)
                refreshing.facts = None  # joined: a million numbers' facts need not stay for the rules
                log.debug("rules: %d orders read (%s) in %.2f s", len(orders), orders.attrs.get("read_by"),
                          time.perf_counter() - started)
            finally:
                if read is not None:
                    read.close()
            give_back("the rules' read")  # what the read and the join of a million orders freed
            # an incremental run's rules read the message model's cache of their orders' messages first
            ctx = context(conn, plan, as_of, settings, scope, orders,
                          pressure if scope is None else pressure_cache.scoped(conn, scope))
            examined = set(orders["order_id"])
            del orders
            started = time.perf_counter()
            findings = _collect(rules, ctx)
            due = _deadlines(rules, ctx)
            log.debug("rules: %d findings in %.2f s", len(findings), time.perf_counter() - started)
        finally:
            if refreshing is not None:
                started = time.perf_counter()
                refreshing.wait()  # the facts are in before the flags that rest on them
                log.debug("rules: waited %.2f s for the shipment facts' write", time.perf_counter() - started)
        folding.wait()  # the flags' write takes the lock the fold holds
        writes = plan_writes(conn, findings, None if scope_all else examined, as_of_text)
        deadlines = list(zip(due.index.tolist(), view.jd_to_texts(due.to_numpy()), strict=True))
        del findings, due
        meta = {META_PREFIX + key: str(value) for key, value in marks.items()}
        meta |= {META_PREFIX + "as_of": as_of_text, META_PREFIX + "fingerprint": fingerprint}
        if run is not None:
            meta[META_RUN] = run
        writing = None
        if kept and keep_writer:
            # the writing child commits them while the classifier's frame is built from the kept orders, which
            # take the active flags from here
            kept[0].flags = writes.active
            writing = FlagWrite.start(writer, store_file(conn), writes, deadlines, meta)
        writer.release()
    if writing is None:
        flag_writes.store(db, writes, deadlines, meta, None if scope_all else store.as_json(examined))
    return RulesResult(order_ids=examined, everything=scope_all, raised=writes.raised,
                       resolved=len(writes.resolutions), kept=kept[0] if kept else None,
                       scope_rows=scope_rows[0] if scope_rows else None, writing=writing)
