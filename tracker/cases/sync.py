"""Opens or updates cases from flags and scores. (Owned by the case-tracker work: issue 6.)

Set-based: the orders to look at go into a temporary table (for many orders, those of the few that can matter
which need work: `tracker.cases.picking`), one query joins them to their
scores, active flags, first delivered scan and existing case; the deadlines of cases with no dispute yet (every
new case) are worked out for all at once; new cases, their 'opened' events and deadlines go in with one
INSERT ... SELECT each, in one transaction. Detection never touches a case's status: that is a person's decision (`set_status`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlite_utils

from tracker.cases import picking
from tracker.cases.deadlines import (
    PLAIN_DEADLINES,
    CaseFacts,
    Deadline,
    before_any_dispute,
    compute_deadlines,
    is_canonical,
    next_deadline,
)
from tracker.cases.settings import SEVERITY_RANK, CaseSettings, load_settings, publish_settings
from tracker.plan import thresholds
from tracker.search_index import fold_pending
from tracker.timeutil import to_db

log = logging.getLogger(__name__)
DETECTOR = "detector"
# one encoder for every event: json.dumps(..., sort_keys=True) would build a new one per call
_encode = json.JSONEncoder(sort_keys=True).encode

# an order's first delivered scan: from the events (each number's, in time order), or from its number's
# `shipment_facts` row when the table is current (`delivered_jd`, the same scan: `detectors.facts`), one lookup
# instead of a walk over the number's events (for the 41k cases a million orders open, 0.5 s against 0.7-1.0 s)
_DELIVERED_FROM_EVENTS = ("(SELECT MIN(e.occurred_at) FROM tracking_events e "
                          " WHERE e.tracking_number = o.tracking_number AND e.status = 'delivered')")
_DELIVERED_FROM_FACTS = ("(SELECT strftime('%Y-%m-%dT%H:%M:%SZ', sf.delivered_jd) FROM shipment_facts sf "
                         " WHERE sf.tracking_number = o.tracking_number)")


def _fact_columns(delivered: str = _DELIVERED_FROM_EVENTS) -> str:
    return ("o.ordered_at, o.shipped_at, o.promised_days, o.buyer_confirmed_at, "
            f"{delivered} AS delivered_at, "
            "c.dispute_opened_at, c.dispute_escalated_at, c.dispute_closed_at, c.complaint_submitted_at, "
            "c.decision_at, c.outcome, c.coupon_issued_at")


def _delivered_sql(db: sqlite_utils.Database) -> str:
    """How this sync reads each order's first delivered scan: from the facts when they are current (a detect run
    refreshed them before its rules), else from the events (a cluster run, which keeps its facts in its own
    folder, or events imported since)."""
    from tracker.detection import shipment_facts

    return _DELIVERED_FROM_FACTS if shipment_facts.current(db) else _DELIVERED_FROM_EVENTS


def _stamp(dt: datetime) -> str:
    """Same text as timeutil.to_db, several times faster (it runs for every deadline of every case)."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _t(text: str | None) -> datetime | None:
    # stored times are canonical 'YYYY-MM-DDTHH:MM:SSZ'; fromisoformat is far faster than strptime
    return datetime.fromisoformat(text) if text else None


def facts_from_row(row: dict[str, Any]) -> CaseFacts:
    """CaseFacts from a row selected with `_fact_columns`."""
    promised = row["promised_days"]
    return CaseFacts(
        ordered_at=_t(row["ordered_at"]),
        shipped_at=_t(row["shipped_at"]),
        promised_days=int(promised) if promised not in (None, "") else None,
        buyer_confirmed_at=_t(row["buyer_confirmed_at"]),
        delivered_at=_t(row["delivered_at"]),
        dispute_opened_at=_t(row["dispute_opened_at"]),
        dispute_escalated_at=_t(row["dispute_escalated_at"]),
        dispute_closed_at=_t(row["dispute_closed_at"]),
        complaint_submitted_at=_t(row["complaint_submitted_at"]),
        decision_at=_t(row["decision_at"]),
        outcome=row["outcome"],
        coupon_issued_at=_t(row["coupon_issued_at"]),
    )


def _parse_flags(text: str | None) -> list[tuple[str, str]]:
    """'code:severity,...' -> [(code, severity)], strongest first."""
    pairs = []
    for item in (text or "").split(","):
        if item:
            code, _, severity = item.partition(":")
            pairs.append((code, severity))
    return sorted(set(pairs), key=lambda p: (-SEVERITY_RANK.get(p[1], 0), p[0]))


def choose_reason(flags: Sequence[tuple[str, str]], score_codes: str | None, settings: CaseSettings) -> str:
    """The reason of the strongest flag (severity, then the reason order in data); else the score's codes."""
    best: tuple[int, int, str] | None = None
    for code, severity in flags:
        reason = settings.reason_for_flag(code)
        if reason is not None:
            key = (-SEVERITY_RANK.get(severity, 0), reason.position, reason.id)
            best = key if best is None or key < best else best
    if best is not None:
        return best[2]
    for code in (score_codes or "").replace(";", ",").split(","):
        reason = settings.reason_for_flag(code.strip())
        if reason is not None:
            return reason.id
    return settings.fallback_reason


def _deadline_rows(case_id: int, deadlines: Iterable[Deadline], timer_set: str) -> list[tuple]:
    return [(case_id, d.name, _stamp(d.due_at), d.label, timer_set) for d in deadlines]


def _write_deadlines(db: sqlite_utils.Database, by_case: dict[int, list[tuple]]) -> None:
    if not by_case:
        return
    db.conn.executemany("DELETE FROM case_deadlines WHERE case_id = ?", [(cid,) for cid in by_case])
    db.conn.executemany(
        "INSERT INTO case_deadlines(case_id, name, due_at, label, timer_set) VALUES (?, ?, ?, ?, ?)",
        [row for rows in by_case.values() for row in rows],
    )


def _existing_deadlines(db: sqlite_utils.Database) -> dict[int, list[tuple]]:
    """Stored deadlines of the cases of the orders in _sync_orders."""
    out: dict[int, list[tuple]] = {}
    for cid, name, due, label, tset in db.conn.execute(
            "SELECT d.case_id, d.name, d.due_at, d.label, d.timer_set FROM _sync_orders t"
            " JOIN cases c ON c.order_id = t.order_id JOIN case_deadlines d ON d.case_id = c.id ORDER BY 1, 3, 2"):
        out.setdefault(cid, []).append((cid, name, due, label, tset))
    return out


def _picked_sql(n_severities: int, threshold: float) -> str:
    """Each order of _sync_orders that has a case or deserves one; parameters: threshold, severities."""
    severities = ", ".join("?" * n_severities) or "NULL"
    return f"""
            SELECT t.order_id FROM _sync_orders t
            WHERE EXISTS (SELECT 1 FROM scores s WHERE s.order_id = t.order_id AND s.score >= ?)
               OR EXISTS (SELECT 1 FROM flags f WHERE f.order_id = t.order_id AND f.resolved_at IS NULL
                          AND f.severity IN ({severities}))
               OR EXISTS (SELECT 1 FROM cases c WHERE c.order_id = t.order_id)"""


def _fill(conn: sqlite3.Connection, table: str, order_ids: Iterable[str]) -> None:
    """A temporary table of order ids. One statement, sorted: several times faster than executemany of
    random-order keys."""
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (order_id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute(f"DELETE FROM {table}")
    conn.execute(f"INSERT OR IGNORE INTO {table}(order_id) SELECT value FROM json_each(?) ORDER BY 1",
                 [json.dumps(list(order_ids))])


def _moved(conn: sqlite3.Connection, order_ids: list[str], settings: CaseSettings) -> list[str]:
    """Those of these orders with a case (only rescored: their order, scans and flags unchanged) whose score,
    flags or reason differ from their case's."""
    if not order_ids:
        return []
    _fill(conn, "_sync_check", order_ids)
    rows = conn.execute(
        """
        SELECT t.order_id, s.score, s.codes,
               (SELECT group_concat(f.code || ':' || f.severity, ',') FROM flags f
                WHERE f.order_id = t.order_id AND f.resolved_at IS NULL) AS flags,
               c.reason, c.score, c.flag_codes
        FROM _sync_check t JOIN cases c ON c.order_id = t.order_id LEFT JOIN scores s ON s.order_id = t.order_id
        """).fetchall()
    conn.execute("DELETE FROM _sync_check")
    parsed: dict[str | None, tuple[list[tuple[str, str]], str]] = {}
    reasons: dict[tuple, str] = {}
    moved = []
    for order_id, score, codes, flag_text, old_reason, old_score, old_codes in rows:
        found = parsed.get(flag_text)
        if found is None:
            flags = _parse_flags(flag_text)
            found = parsed[flag_text] = (flags, ",".join(code for code, _ in flags))
        reason = reasons.get((flag_text, codes))
        if reason is None:
            reason = reasons[(flag_text, codes)] = choose_reason(found[0], codes, settings)
        if reason != old_reason or found[1] != old_codes or _score_changed(old_score, score):
            moved.append(order_id)
    return moved


def _score_changed(old: float | None, new: float | None) -> bool:
    return (old is None) != (new is None) or (new is not None and abs(new - old) > 1e-9)


# the picked orders' row, as `sync_cases` reads it (then `_fact_columns`' twelve)
_ROW = ("order_id", "new_score", "score_codes", "flags", "case_id", "reason", "score", "flag_codes", "timer_set",
        "next_deadline_at", "next_deadline_name", "ordered_at", "shipped_at", "promised_days", "buyer_confirmed_at",
        "delivered_at", "dispute_opened_at", "dispute_escalated_at", "dispute_closed_at", "complaint_submitted_at",
        "decision_at", "outcome", "coupon_issued_at")
_TIMES = tuple(_ROW.index(c) for c in ("ordered_at", "shipped_at", "buyer_confirmed_at", "delivered_at"))
_DISPUTE = tuple(range(_ROW.index("dispute_opened_at"), len(_ROW)))  # the last columns
# new cases go in through temporary tables: one INSERT ... SELECT each for the cases, their 'opened' events and
# their deadlines, instead of one statement a row (every statement on a table with triggers pays for its own
# statement journal)
_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS _new_cases (order_id TEXT PRIMARY KEY, category TEXT, reason TEXT, score REAL,"
    " flag_codes TEXT, next_deadline_at TEXT, next_deadline_name TEXT, timer_set TEXT, opened TEXT) WITHOUT ROWID",
    "CREATE TEMP TABLE IF NOT EXISTS _new_case_deadlines (order_id TEXT, position INTEGER, name TEXT, due_at TEXT,"
    " label TEXT, timer_set TEXT, PRIMARY KEY (order_id, position)) WITHOUT ROWID",
)


class _Deadlines:
    """Every picked case's deadlines: those of cases with no dispute yet worked out for all at once
    (`deadlines.before_any_dispute`), the others one by one (`compute_deadlines`)."""

    def __init__(self, rows: list[tuple], settings: CaseSettings):
        self.settings = settings
        first, nothing = _DISPUTE[0], (None,) * len(_DISPUTE)
        plain = [i for i, row in enumerate(rows) if row[first:] == nothing and type(row[13]) in (int, type(None))]
        for j in _TIMES:  # canonical stored times only (anything else goes the way of compute_deadlines)
            odd = {i for i in plain if not is_canonical(rows[i][j])} if any(
                not is_canonical(rows[i][j]) for i in plain) else set()
            plain = [i for i in plain if i not in odd] if odd else plain
        self.at = {i: k for k, i in enumerate(plain)}
        column = lambda j: [rows[i][j] for i in plain]  # noqa: E731
        self.chosen, self.names, due = before_any_dispute(column(11), column(12), column(13), column(14),
                                                          column(15), settings)
        self.due = np.char.add(np.datetime_as_string(due, unit="s"), "Z").tolist() if len(plain) else []
        self.rows = rows
        self.labels = {name: settings.deadline_labels.get(name, name.replace("_", " "))
                       for name in PLAIN_DEADLINES if name}
        self.as_of: tuple[datetime, str] | None = None

    def of(self, i: int, as_of: datetime) -> tuple[str, list[tuple[str, str, str]], str | None, str | None]:
        """Row i's timer set name, deadlines (name, due text, label) in time order, and next deadline (text, name)."""
        k = self.at.get(i)
        if k is None:
            timers, deadlines = compute_deadlines(facts_from_row(dict(zip(_ROW, self.rows[i], strict=True))),
                                                  self.settings)
            upcoming = next_deadline(deadlines, as_of)
            return (timers.name, [(d.name, _stamp(d.due_at), d.label) for d in deadlines],
                    _stamp(upcoming.due_at) if upcoming else None, upcoming.name if upcoming else None)
        timers = self.settings.timer_sets[self.chosen[k]]
        name = PLAIN_DEADLINES[self.names[k]]
        if name is None:
            return timers.name, [], None, None
        due = self.due[k]
        if self.as_of is None or self.as_of[0] != as_of:
            self.as_of = (as_of, _stamp(as_of))
        ahead = due > self.as_of[1]  # canonical UTC text compares as time (the due time has whole seconds)
        return timers.name, [(name, due, self.labels[name])], due if ahead else None, name if ahead else None


def sync_cases(db: sqlite_utils.Database, order_ids: Collection[str], as_of: datetime, *,
               rescored: Collection[str] = (), run: str | None = None, previous_run: str | None = None) -> tuple[int, int]:
    """Open a case for each order whose score passes the threshold or that has an active flag of an
    opening severity; refresh flags, score, reason and deadlines of existing ones. Return (opened, updated).

    `order_ids`: the orders detection examined (anything about them may have changed); `rescored`: orders it
    only rescored. `run` names this detect run and `previous_run` the one before it (`detect.run` in `meta` before
    this run's rules): when the last run's cases were synced too, a rescored order is worked out only if its
    score, flags or reason moved (`tracker.cases.picking`); otherwise it is worked out like an examined one.
    Idempotent: a second run with nothing changed opens and updates nothing.
    """
    if not order_ids and not rescored:
        with db.conn:
            roll_next_deadlines(db, as_of)
            fold_pending(db.conn)
        return 0, 0
    settings = load_settings()
    now_text = to_db(as_of)
    conn = db.conn
    digest = picking.settings_digest(settings)
    with conn:
        publish_settings(db)
        delivered = _delivered_sql(db)
        shortcut = picking.mark_holds(picking.read_mark(conn), digest, now_text, previous_run)
        if len(order_ids) + len(rescored) >= thresholds().cases_whole_store_min:
            picked = picking.from_candidates(conn, order_ids, rescored, settings, rescored_in_full=not shortcut)
            every_case = picked.every_case
            _fill(conn, "_sync_orders", picked.full + _moved(conn, picked.check, settings))
            chosen = "SELECT order_id FROM _sync_orders"
        else:  # few orders: look each one up, the rescored ones like the examined
            every_case = False
            _fill(conn, "_sync_orders", set(order_ids) | set(rescored))
            chosen = _picked_sql(len(settings.open_severities), settings.score_threshold)
        rows = conn.execute(
            f"""
            WITH picked(order_id) AS ({chosen})
            SELECT p.order_id, s.score AS new_score, s.codes AS score_codes,
                   (SELECT group_concat(f.code || ':' || f.severity, ',') FROM flags f
                    WHERE f.order_id = p.order_id AND f.resolved_at IS NULL) AS flags,
                   c.id AS case_id, c.reason, c.score, c.flag_codes, c.timer_set,
                   c.next_deadline_at, c.next_deadline_name, {_fact_columns(delivered)}
            FROM picked p
            JOIN orders o ON o.order_id = p.order_id
            LEFT JOIN scores s ON s.order_id = p.order_id
            LEFT JOIN cases c ON c.order_id = p.order_id
            """,
            [] if chosen.startswith("SELECT order_id") else [settings.score_threshold, *settings.open_severities],
        ).fetchall()
        old_deadlines = _existing_deadlines(db)
        parsed_flags: dict[str | None, list[tuple[str, str]]] = {}  # a few distinct sets of flags
        reasons: dict[tuple, str] = {}
        opening = set(settings.open_severities)

        kept = []  # (row, flags, reason): an existing case, or an order that opens one
        for row in rows:
            flags = parsed_flags.get(row[3])
            if flags is None:
                flags = parsed_flags[row[3]] = _parse_flags(row[3])
            score = row[1]
            if row[4] is None and not ((score is not None and score >= settings.score_threshold)
                                       or any(sev in opening for _, sev in flags)):
                continue
            reason = reasons.get((row[3], row[2]))
            if reason is None:
                reason = reasons[(row[3], row[2])] = choose_reason(flags, row[2], settings)
            kept.append((row, flags, reason))
        deadlines = _Deadlines([row for row, _, _ in kept], settings)

        new_cases: list[tuple] = []  # staged: order_id, category, reason, score, codes, next_at, next_name, timers, opened
        new_deadlines: list[tuple] = []
        substantive: list[tuple] = []  # reason/score/flags/timers changed: updated_at moves, counted
        refreshed: list[tuple] = []  # only the next deadline moved with the clock
        change_events: list[tuple] = []
        deadlines_by_case: dict[int, list[tuple]] = {}
        opened_prefix: dict[tuple[str, str], str] = {}
        for i, (row, flags, reason) in enumerate(kept):
            score = row[1]
            flag_codes = ",".join(code for code, _ in flags)
            timer_name, due, next_at, next_name = deadlines.of(i, as_of)
            cid = row[4]
            if cid is None:
                category = settings.reasons[reason].category if reason in settings.reasons \
                    else settings.default_category
                prefix = opened_prefix.get((flag_codes, reason))
                if prefix is None:  # the 'opened' event's data as _encode writes it, the score appended
                    prefix = opened_prefix[(flag_codes, reason)] = _encode(
                        {"flags": flag_codes.split(",") if flag_codes else [], "reason": reason})[:-1]
                shown = float.__repr__(score) if type(score) is float else _encode(score)  # as json writes it
                new_cases.append((row[0], category, reason, score, flag_codes, next_at, next_name, timer_name,
                                  f"{prefix}, \"score\": {shown}}}"))
                new_deadlines += [(row[0], k, *d, timer_name) for k, d in enumerate(due)]
                continue
            new_rows = [(cid, *d[:2], d[2], timer_name) for d in due]
            deadlines_changed = new_rows != old_deadlines.get(cid, [])
            if deadlines_changed:
                deadlines_by_case[cid] = new_rows
            old_score = row[6]
            score_changed = _score_changed(old_score, score)
            if (reason != row[5] or flag_codes != row[7] or score_changed
                    or timer_name != row[8] or deadlines_changed):
                substantive.append((reason, score, flag_codes, timer_name, next_at, next_name, now_text, cid))
                if reason != row[5] or flag_codes != row[7]:
                    change_events.append((cid, {
                        "flags": flag_codes.split(",") if flag_codes else [],
                        "previous_flags": row[7].split(",") if row[7] else [],
                        "reason": reason, "score": score,
                    }))
            elif (next_at, next_name) != (row[9], row[10]):
                refreshed.append((next_at, next_name, cid))

        if new_cases:
            _open(conn, new_cases, new_deadlines, settings.default_status, now_text)
        conn.executemany(
            "UPDATE cases SET reason = ?, score = ?, flag_codes = ?, timer_set = ?, next_deadline_at = ?,"
            " next_deadline_name = ?, updated_at = ? WHERE id = ?",
            substantive,
        )
        conn.executemany("UPDATE cases SET next_deadline_at = ?, next_deadline_name = ? WHERE id = ?", refreshed)
        conn.executemany(
            "INSERT INTO case_events(case_id, at, actor, kind, data) VALUES (?, ?, ?, 'redetected', ?)",
            [(cid, now_text, DETECTOR, _encode(data)) for cid, data in change_events],
        )
        _write_deadlines(db, deadlines_by_case)
        conn.execute("DELETE FROM _sync_orders")
        # every case is now up to date under these settings when this sync worked them all out, or when they
        # were before and this run's examined orders were all worked out
        picking.write_mark(conn, {"settings": digest, "as_of": now_text, "run": run}
                           if (every_case or shortcut) and run is not None else None)
        roll_next_deadlines(db, as_of)
        started = time.perf_counter()
        folded = fold_pending(conn)  # search sees the cases (and any import before them) once this commits
        log.debug("cases: %d opened, %d updated; %d queued rows folded into the search indexes in %.2f s",
                  len(new_cases), len(substantive), folded, time.perf_counter() - started)
    return len(new_cases), len(substantive)


def _open(conn: sqlite3.Connection, cases: list[tuple], deadlines: list[tuple], status: str, now_text: str) -> None:
    """Insert new cases (ids in order-id order: stable, whatever order the orders came in), each with its
    'opened' event and its deadlines, through the staging tables. Caller owns the transaction."""
    for sql in _STAGE:
        conn.execute(sql)
    conn.execute("DELETE FROM temp._new_cases")
    conn.execute("DELETE FROM temp._new_case_deadlines")
    cases.sort()
    conn.executemany("INSERT INTO temp._new_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", cases)
    conn.executemany("INSERT INTO temp._new_case_deadlines VALUES (?, ?, ?, ?, ?, ?)", deadlines)
    last_id = conn.execute("SELECT coalesce(max(id), 0) FROM cases").fetchone()[0]
    conn.execute(
        "INSERT INTO main.cases(order_id, status, category, reason, score, flag_codes, opened_at, updated_at,"
        " next_deadline_at, next_deadline_name, timer_set) SELECT order_id, ?, category, reason, score, flag_codes,"
        " ?, ?, next_deadline_at, next_deadline_name, timer_set FROM temp._new_cases ORDER BY order_id",
        [status, now_text, now_text])
    conn.execute(
        "INSERT INTO main.case_events(case_id, at, actor, kind, to_status, data) SELECT c.id, ?, ?, 'opened', ?,"
        " n.opened FROM main.cases c JOIN temp._new_cases n ON n.order_id = c.order_id WHERE c.id > ? ORDER BY c.id",
        [now_text, DETECTOR, status, last_id])
    conn.execute(
        "INSERT INTO main.case_deadlines(case_id, name, due_at, label, timer_set) SELECT c.id, d.name, d.due_at,"
        " d.label, d.timer_set FROM main.cases c JOIN temp._new_case_deadlines d ON d.order_id = c.order_id"
        " WHERE c.id > ? ORDER BY c.id, d.position", [last_id])
    conn.execute("DELETE FROM temp._new_cases")
    conn.execute("DELETE FROM temp._new_case_deadlines")


def roll_next_deadlines(db: sqlite_utils.Database, as_of: datetime) -> int:
    """Move every case whose stored next deadline has passed on to its following one (set-based).

    Keeps `cases.next_deadline_at` (what the dashboard sorts by) true for cases detection did not touch.
    Caller owns the transaction; returns the number of cases moved.
    """
    cursor = db.conn.execute(
        """
        UPDATE cases SET (next_deadline_at, next_deadline_name) = (
            SELECT d.due_at, d.name FROM case_deadlines d WHERE d.case_id = cases.id AND d.due_at > :now
            ORDER BY d.due_at, d.name LIMIT 1)
        WHERE next_deadline_at IS NOT NULL AND next_deadline_at <= :now
        """,
        {"now": to_db(as_of)},
    )
    return cursor.rowcount


def refresh_deadlines(db: sqlite_utils.Database, case_id: int, as_of: datetime) -> list[Deadline]:
    """Recompute one case's deadlines after its dispute timeline changed. Caller owns the transaction."""
    settings = load_settings()
    picking.after_one_case(db.conn, picking.settings_digest(settings), to_db(as_of))
    cursor = db.conn.execute(
        f"SELECT {_fact_columns()} FROM cases c JOIN orders o ON o.order_id = c.order_id WHERE c.id = ?", [case_id])
    found = cursor.fetchone()
    if found is None:  # a case whose order vanished keeps no deadlines
        _write_deadlines(db, {case_id: []})
        return []
    row = dict(zip([d[0] for d in cursor.description], found, strict=True))
    timers, deadlines = compute_deadlines(facts_from_row(row), settings)
    _write_deadlines(db, {case_id: _deadline_rows(case_id, deadlines, timers.name)})
    upcoming = next_deadline(deadlines, as_of)
    db.conn.execute(
        "UPDATE cases SET timer_set = ?, next_deadline_at = ?, next_deadline_name = ? WHERE id = ?",
        [timers.name, to_db(upcoming.due_at) if upcoming else None, upcoming.name if upcoming else None, case_id],
    )
    return deadlines
