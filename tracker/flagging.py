"""Runs the detectors' rules over the store and writes `flags`. (Owned by the rules work: issue 4.)

Rules (`detectors.rules`) only read and return findings; this engine decides what to store:

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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils

from detectors import view
from detectors.rules import SEVERITIES, Finding, Rule, RuleContext, all_rules
from tracker import config
from tracker.db import get_meta, set_meta
from tracker.errors import BadInput
from tracker.timeutil import to_db

META_PREFIX = "detect."
CHANGED = "temp.detect_changed"


@dataclass
class RulesResult:
    order_ids: set[str] = field(default_factory=set)  # every order examined this run
    raised: int = 0
    resolved: int = 0


def load_routes(name: str = "routes.csv") -> dict[tuple[str, str], float]:
    """Postal route minimum transit days, origin -> destination ('*' any, 'same,same' domestic), from data."""
    from tracker.routes import fold_into, load_route_table

    return fold_into({}, load_route_table(name))["impossible_transit"]["routes"]


def load_settings() -> dict[str, Any]:
    """data/rules.toml with the route table (tracker.routes.fold_into) and the configured carriers' number
    patterns (settings['invalid_tracking_number']['carrier_patterns']) folded in."""
    from tracker.carriers import number_patterns
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


def _marks(conn) -> dict[str, int]:  # noqa: ANN001
    one = lambda sql: int(conn.execute(sql).fetchone()[0] or 0)  # noqa: E731
    return {
        "orders_seq": one("SELECT max(seq) FROM orders"),
        "event_id": one("SELECT max(id) FROM tracking_events"),
        "message_id": one("SELECT max(id) FROM messages"),
        "poll_id": one("SELECT max(id) FROM poll_log"),
    }


def _changed_orders(conn, last: dict[str, int], as_of: str) -> None:  # noqa: ANN001
    """Fill the temp table CHANGED with the orders to re-examine (see the module docstring)."""
    conn.execute(f"DROP TABLE IF EXISTS {CHANGED}")
    conn.execute(f"CREATE TABLE {CHANGED} (order_id TEXT PRIMARY KEY)")
    add = f"INSERT OR IGNORE INTO {CHANGED} "
    conn.execute(add + "SELECT order_id FROM orders WHERE seq > ?", [last["orders_seq"]])
    conn.execute(add + "SELECT order_id FROM orders WHERE tracking_number IN "
                 "(SELECT tracking_number FROM tracking_events WHERE id > ?)", [last["event_id"]])
    conn.execute(add + "SELECT order_id FROM messages WHERE id > ?", [last["message_id"]])
    conn.execute(add + "SELECT order_id FROM orders WHERE tracking_number IN "
                 "(SELECT tracking_number FROM poll_log WHERE id > ?)", [last["poll_id"]])
    conn.execute(add + "SELECT order_id FROM rule_deadlines WHERE due_at <= ?", [as_of])
    # an order that left a reuse cluster (its number was corrected): its old partners must be looked at again
    partners: set[str] = set()
    for (evidence,) in conn.execute(
        f"SELECT evidence FROM flags WHERE code = 'tracking_reused' AND resolved_at IS NULL "
        f"AND order_id IN (SELECT order_id FROM {CHANGED})"
    ):
        try:
            partners.update(json.loads(evidence).get("other_orders", []))
        except (ValueError, AttributeError):
            continue
    conn.executemany(add + "VALUES (?)", [(p,) for p in partners])
    # every order sharing a tracking number with a changed one
    conn.execute(add + f"""SELECT o2.order_id FROM orders o2 WHERE o2.tracking_number IN (
        SELECT o.tracking_number FROM {CHANGED} c CROSS JOIN orders o ON o.order_id = c.order_id
        WHERE o.tracking_number IS NOT NULL AND o.tracking_number <> '')""")


def _evidence_json(evidence: dict[str, Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        return str(value)

    return json.dumps(evidence, sort_keys=True, default=plain, ensure_ascii=False)


def _collect(rules: list[Rule], ctx: RuleContext) -> list[Finding]:
    findings: list[Finding] = []
    for r in rules:
        for f in r.check(ctx):
            if f.code != r.code:
                raise ValueError(f"rule {r.code} returned a finding with code {f.code}")
            findings.append(f)
    return findings


def _deadlines(rules: list[Rule], ctx: RuleContext) -> pd.Series:
    """The earliest future time per order at which some rule's verdict may change by time alone."""
    parts = [s for r in rules if r.deadlines is not None and len(s := r.deadlines(ctx))]
    if not parts:
        return pd.Series(dtype=float)
    due = pd.concat(parts)
    due = due[due > ctx.as_of_jd]
    return due.groupby(level=0).min()


def _write(conn, findings: list[Finding], scope_all: bool, examined: set[str], as_of: str) -> tuple[int, int]:  # noqa: ANN001
    where = "" if scope_all else f"WHERE order_id IN (SELECT order_id FROM {view.SCOPE_ORDERS})"
    existing = {
        (r[0], r[1]): r[2:]
        for r in conn.execute(
            f"SELECT order_id, code, severity, explanation, evidence, rule_version, resolved_at FROM flags {where}"
        )
    }
    inserts, updates, reactivations, resolutions = [], [], [], []
    seen: set[tuple[str, str]] = set()
    for f in findings:
        key = (f.order_id, f.code)
        if key in seen:
            continue
        seen.add(key)
        content = (f.severity, f.explanation, _evidence_json(f.evidence), f.rule_version)
        old = existing.get(key)
        if old is None:
            inserts.append((*key, *content, as_of))
        elif old[4] is not None:
            reactivations.append((*content, as_of, *key))
        elif tuple(old[:4]) != content:
            updates.append((*content, *key))
    for key, old in existing.items():
        if old[4] is None and key not in seen and key[0] in examined:
            resolutions.append((as_of, *key))
    conn.executemany(
        "INSERT INTO flags (order_id, code, severity, explanation, evidence, rule_version, detected_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", inserts)
    conn.executemany(
        "UPDATE flags SET severity = ?, explanation = ?, evidence = ?, rule_version = ?, detected_at = ?, "
        "resolved_at = NULL WHERE order_id = ? AND code = ?", reactivations)
    conn.executemany(
        "UPDATE flags SET severity = ?, explanation = ?, evidence = ?, rule_version = ? WHERE order_id = ? AND code = ?",
        updates)
    conn.executemany("UPDATE flags SET resolved_at = ? WHERE order_id = ? AND code = ?", resolutions)
    return len(inserts) + len(reactivations), len(resolutions)


def run_rules(db: sqlite_utils.Database, as_of: datetime, *, full: bool = False) -> RulesResult:
    """Run every registered rule over the orders that changed (all with `full`) and update `flags`."""
    conn = db.conn
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
    try:
        if scope_all:
            view.set_scope(conn, None)
        else:
            _changed_orders(conn, last, as_of_text)
            conn.execute(f"DROP TABLE IF EXISTS {view.SCOPE_ORDERS}")
            conn.execute(f"CREATE TABLE {view.SCOPE_ORDERS} (order_id TEXT PRIMARY KEY)")
            conn.execute(f"INSERT INTO {view.SCOPE_ORDERS} SELECT order_id FROM {CHANGED}")
            view._scope_numbers(conn)
        ctx = RuleContext(conn, as_of, settings)
        examined = set(ctx.orders["order_id"])
        findings = _collect(rules, ctx)
        due = _deadlines(rules, ctx)
        with conn:
            raised, resolved = _write(conn, findings, scope_all, examined, as_of_text)
            if scope_all:
                conn.execute("DELETE FROM rule_deadlines")
            else:
                conn.execute(f"DELETE FROM rule_deadlines WHERE order_id IN (SELECT order_id FROM {view.SCOPE_ORDERS})")
            conn.executemany(
                "INSERT OR REPLACE INTO rule_deadlines (order_id, due_at) VALUES (?, ?)",
                [(order_id, view.jd_to_text(jd)) for order_id, jd in due.items()],
            )
            for key, value in marks.items():
                set_meta(db, META_PREFIX + key, str(value))
            set_meta(db, META_PREFIX + "as_of", as_of_text)
            set_meta(db, META_PREFIX + "fingerprint", fingerprint)
    finally:
        view.set_scope(conn, None)
        conn.execute(f"DROP TABLE IF EXISTS {CHANGED}")
    return RulesResult(order_ids=examined, raised=raised, resolved=resolved)
