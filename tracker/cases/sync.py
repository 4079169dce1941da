"""Opens or updates cases from flags and scores. (Owned by the case-tracker work: issue 6.)

Set-based: the orders to look at go into a temporary table, one query joins them to their scores,
active flags, first delivered scan and existing case, and the writes go in with executemany inside one
transaction. Detection never touches a case's status: that is a person's decision (`set_status`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from tracker.cases.deadlines import CaseFacts, Deadline, compute_deadlines, next_deadline
from tracker.cases.settings import SEVERITY_RANK, CaseSettings, load_settings, publish_settings
from tracker.migrations import SCORES_INDEXED_FROM
from tracker.plan import thresholds
from tracker.search_index import fold_pending
from tracker.timeutil import to_db

DETECTOR = "detector"
# one encoder for every event: json.dumps(..., sort_keys=True) would build a new one per call
_encode = json.JSONEncoder(sort_keys=True).encode

_FACT_COLUMNS = (
    "o.ordered_at, o.shipped_at, o.promised_days, o.buyer_confirmed_at, "
    "(SELECT MIN(e.occurred_at) FROM tracking_events e "
    " WHERE e.tracking_number = o.tracking_number AND e.status = 'delivered') AS delivered_at, "
    "c.dispute_opened_at, c.dispute_escalated_at, c.dispute_closed_at, c.complaint_submitted_at, "
    "c.decision_at, c.outcome, c.coupon_issued_at"
)


def _stamp(dt: datetime) -> str:
    """Same text as timeutil.to_db, several times faster (it runs for every deadline of every case)."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _t(text: str | None) -> datetime | None:
    # stored times are canonical 'YYYY-MM-DDTHH:MM:SSZ'; fromisoformat is far faster than strptime
    return datetime.fromisoformat(text) if text else None


def facts_from_row(row: dict[str, Any]) -> CaseFacts:
    """CaseFacts from a row selected with _FACT_COLUMNS."""
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


def _existing_deadlines(db: sqlite_utils.Database, *, every_case: bool) -> dict[int, list[tuple]]:
    """Stored deadlines of the cases of the orders in _sync_orders (or of every case)."""
    sql = ("SELECT d.case_id, d.name, d.due_at, d.label, d.timer_set FROM case_deadlines d ORDER BY 1, 3, 2"
           if every_case else
           "SELECT d.case_id, d.name, d.due_at, d.label, d.timer_set FROM _sync_orders t"
           " JOIN cases c ON c.order_id = t.order_id JOIN case_deadlines d ON d.case_id = c.id ORDER BY 1, 3, 2")
    out: dict[int, list[tuple]] = {}
    for cid, name, due, label, tset in db.conn.execute(sql):
        out.setdefault(cid, []).append((cid, name, due, label, tset))
    return out


def _picked_sql(whole_store: bool, n_severities: int, threshold: float) -> str:
    """The orders that have or deserve a case; parameters: threshold, severities.

    For (nearly) the whole store, start from the few orders that can matter (high scores, opening flags,
    existing cases) and let the caller filter by its set: no per-order lookups, no temporary table. The
    high scores come from the partial score index, which holds the scores from SCORES_INDEXED_FROM on: the
    query names that bound too, so SQLite knows it may use it (a threshold below it scans the table).
    Otherwise look up each order of _sync_orders.
    """
    severities = ", ".join("?" * n_severities) or "NULL"
    if whole_store:
        indexed = f" AND score >= {SCORES_INDEXED_FROM!r}" if threshold >= SCORES_INDEXED_FROM else ""
        return f"""
            SELECT order_id FROM scores WHERE score >= ?{indexed}
            UNION SELECT order_id FROM flags WHERE resolved_at IS NULL AND severity IN ({severities})
            UNION SELECT order_id FROM cases"""
    return f"""
            SELECT t.order_id FROM _sync_orders t
            WHERE EXISTS (SELECT 1 FROM scores s WHERE s.order_id = t.order_id AND s.score >= ?)
               OR EXISTS (SELECT 1 FROM flags f WHERE f.order_id = t.order_id AND f.resolved_at IS NULL
                          AND f.severity IN ({severities}))
               OR EXISTS (SELECT 1 FROM cases c WHERE c.order_id = t.order_id)"""


def _covers_most_of_the_store(db: sqlite_utils.Database, order_ids: set[str]) -> bool:
    if len(order_ids) < thresholds().cases_whole_store_min:  # below it the per-order lookups are cheap
        return False
    total = db.conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    return len(order_ids) * 2 >= total


def sync_cases(db: sqlite_utils.Database, order_ids: set[str], as_of: datetime) -> tuple[int, int]:
    """Open a case for each order whose score passes the threshold or that has an active flag of an
    opening severity; refresh flags, score, reason and deadlines of existing ones. Return (opened, updated).

    Idempotent: a second run with nothing changed opens and updates nothing.
    """
    if not order_ids:
        with db.conn:
            roll_next_deadlines(db, as_of)
            fold_pending(db.conn)
        return 0, 0
    settings = load_settings()
    now_text = to_db(as_of)
    conn = db.conn
    with conn:
        publish_settings(db)
        whole_store = _covers_most_of_the_store(db, order_ids)
        if not whole_store:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS _sync_orders (order_id TEXT PRIMARY KEY) WITHOUT ROWID")
            conn.execute("DELETE FROM _sync_orders")
            # one statement, sorted: several times faster than executemany of random-order keys
            conn.execute("INSERT OR IGNORE INTO _sync_orders(order_id) SELECT value FROM json_each(?) ORDER BY 1",
                         [json.dumps(list(order_ids))])
        cursor = conn.execute(
            f"""
            WITH picked(order_id) AS ({_picked_sql(whole_store, len(settings.open_severities),
                                                  settings.score_threshold)})
            SELECT p.order_id, s.score AS new_score, s.codes AS score_codes,
                   (SELECT group_concat(f.code || ':' || f.severity, ',') FROM flags f
                    WHERE f.order_id = p.order_id AND f.resolved_at IS NULL) AS flags,
                   c.id AS case_id, c.reason, c.score, c.flag_codes, c.timer_set,
                   c.next_deadline_at, c.next_deadline_name, {_FACT_COLUMNS}
            FROM picked p
            JOIN orders o ON o.order_id = p.order_id
            LEFT JOIN scores s ON s.order_id = p.order_id
            LEFT JOIN cases c ON c.order_id = p.order_id
            """,
            [settings.score_threshold, *settings.open_severities],
        )
        names = [d[0] for d in cursor.description]
        old_deadlines = _existing_deadlines(db, every_case=whole_store)
        # streamed, not materialised: a full re-detection may bring 100k+ candidate rows
        rows = (dict(zip(names, r, strict=True)) for r in cursor)
        if whole_store:
            rows = (row for row in rows if row["order_id"] in order_ids)

        new_cases: list[tuple] = []  # (order_id, category, reason, score, codes, next_at, next_name, timers, deadlines)
        substantive: list[tuple] = []  # reason/score/flags/timers changed: updated_at moves, counted
        refreshed: list[tuple] = []  # only the next deadline moved with the clock
        change_events: list[tuple] = []
        deadlines_by_case: dict[int, list[tuple]] = {}
        for row in rows:
            flags = _parse_flags(row["flags"])
            score = row["new_score"]
            opens = (score is not None and score >= settings.score_threshold) or any(
                sev in settings.open_severities for _, sev in flags)
            if row["case_id"] is None and not opens:
                continue
            flag_codes = ",".join(code for code, _ in flags)
            reason = choose_reason(flags, row["score_codes"], settings)
            timers, deadlines = compute_deadlines(facts_from_row(row), settings)
            upcoming = next_deadline(deadlines, as_of)
            next_at, next_name = (_stamp(upcoming.due_at), upcoming.name) if upcoming else (None, None)
            if row["case_id"] is None:
                category = settings.reasons[reason].category if reason in settings.reasons \
                    else settings.default_category
                new_cases.append((row["order_id"], category, reason, score, flag_codes, next_at, next_name,
                                  timers.name, _deadline_rows(0, deadlines, timers.name)))
                continue
            cid = row["case_id"]
            new_rows = _deadline_rows(cid, deadlines, timers.name)
            deadlines_changed = new_rows != old_deadlines.get(cid, [])
            if deadlines_changed:
                deadlines_by_case[cid] = new_rows
            old_score = row["score"]
            score_changed = (old_score is None) != (score is None) or (
                score is not None and abs(score - old_score) > 1e-9)
            if (reason != row["reason"] or flag_codes != row["flag_codes"] or score_changed
                    or timers.name != row["timer_set"] or deadlines_changed):
                substantive.append((reason, score, flag_codes, timers.name, next_at, next_name, now_text, cid))
                if reason != row["reason"] or flag_codes != row["flag_codes"]:
                    change_events.append((cid, {
                        "flags": flag_codes.split(",") if flag_codes else [],
                        "previous_flags": row["flag_codes"].split(",") if row["flag_codes"] else [],
                        "reason": reason, "score": score,
                    }))
            elif (next_at, next_name) != (row["next_deadline_at"], row["next_deadline_name"]):
                refreshed.append((next_at, next_name, cid))

        new_cases.sort()  # by order id: stable case ids, whatever order the set came in
        last_id = conn.execute("SELECT coalesce(max(id), 0) FROM cases").fetchone()[0]
        conn.executemany(
            "INSERT INTO cases(order_id, status, category, reason, score, flag_codes, opened_at, updated_at,"
            " next_deadline_at, next_deadline_name, timer_set) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(oid, settings.default_status, category, reason, score, codes, now_text, now_text, next_at, next_name,
              tset) for oid, category, reason, score, codes, next_at, next_name, tset, _ in new_cases],
        )
        if new_cases:
            ids = dict(conn.execute("SELECT order_id, id FROM cases WHERE id > ?", [last_id]))
            conn.executemany(
                "INSERT INTO case_events(case_id, at, actor, kind, to_status, data) VALUES (?, ?, ?, 'opened', ?, ?)",
                [(ids[oid], now_text, DETECTOR, settings.default_status, _encode({
                    "flags": codes.split(",") if codes else [], "reason": reason, "score": score}))
                 for oid, _, reason, score, codes, *_ in new_cases],
            )
            conn.executemany(
                "INSERT INTO case_deadlines(case_id, name, due_at, label, timer_set) VALUES (?, ?, ?, ?, ?)",
                [(ids[case[0]], *row[1:]) for case in new_cases for row in case[-1]],
            )
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
        if not whole_store:
            conn.execute("DELETE FROM _sync_orders")
        roll_next_deadlines(db, as_of)
        fold_pending(conn)  # search sees the cases (and any import before them) once this commits
    return len(new_cases), len(substantive)


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
    cursor = db.conn.execute(
        f"SELECT {_FACT_COLUMNS} FROM cases c JOIN orders o ON o.order_id = c.order_id WHERE c.id = ?", [case_id])
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
