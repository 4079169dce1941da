"""Which orders a case sync must work out: the cheap first half of `sync.sync_cases`.

A sync is given the orders detection examined (their flags, order or scans may have changed) and the orders it
rescored (only their score and score codes may have changed). Every examined order that has a case or deserves
one is worked out in full. A rescored order needs work only when it now deserves a case it lacks, or when its
case's score, flags or reason would change: its deadlines rest on the order, its scans and its dispute timeline,
which did not change, and `roll_next_deadlines` moves its next deadline with the clock as a recompute would.

That shortcut holds while every case was last worked out under the current settings and at an `as_of` no later
than this sync's (a later one could have left an earlier deadline behind); the mark in `meta` says so, and
without it a rescored order is worked out in full like an examined one.

For many orders, the sync starts from the few that can matter (high scores, opening flags, existing cases),
each an index read, and keeps those in the given sets: no per-order lookups, no million ids through SQL.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from tracker.cases.settings import CaseSettings
from tracker.migrations import SCORES_INDEXED_FROM

MARK = "cases.synced"  # meta: {"settings": digest, "as_of": the latest as_of a case was worked out at, "run": ...}


def settings_digest(settings: CaseSettings) -> str:
    """A digest of everything in the settings (dataclasses, tuples and dicts: a stable repr)."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def read_mark(conn: sqlite3.Connection) -> dict:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [MARK]).fetchone()
    try:
        mark = json.loads(row[0]) if row else {}
    except ValueError:
        return {}
    return mark if isinstance(mark, dict) else {}


def write_mark(conn: sqlite3.Connection, mark: dict | None) -> None:
    """Record that every case is up to date as `mark` says (None: no longer known). Caller owns the transaction."""
    if mark is None:
        conn.execute("DELETE FROM meta WHERE key = ?", [MARK])
        return
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 [MARK, json.dumps(mark, sort_keys=True)])


def mark_holds(mark: dict, digest: str, as_of_text: str, previous_run: str | None) -> bool:
    """Whether every case was last worked out under these settings, at an as_of no later than this one, and the
    detect run before this one (`previous_run`) synced its cases."""
    return (previous_run is not None and mark.get("run") == previous_run and mark.get("settings") == digest
            and str(mark.get("as_of", "~")) <= as_of_text)


def after_one_case(conn: sqlite3.Connection, digest: str, as_of_text: str) -> None:
    """Keep the mark true after one case was worked out at `as_of_text` (`refresh_deadlines`). Caller owns the
    transaction."""
    mark = read_mark(conn)
    if not mark:
        return
    if mark.get("settings") != digest:
        write_mark(conn, None)
    elif str(mark.get("as_of", "")) < as_of_text:
        write_mark(conn, {**mark, "as_of": as_of_text})


def qualifying_sql(n_severities: int, threshold: float) -> str:
    """The orders that deserve a case: a score at the threshold or above, or an active flag of an opening severity.
    Parameters: threshold, severities.

    The high scores come from the partial score index, which holds the scores from SCORES_INDEXED_FROM on: the
    query names that bound too, so SQLite knows it may use it (a threshold below it scans the table).
    """
    severities = ", ".join("?" * n_severities) or "NULL"
    indexed = f" AND score >= {SCORES_INDEXED_FROM!r}" if threshold >= SCORES_INDEXED_FROM else ""
    return f"""
        SELECT order_id FROM scores WHERE score >= ?{indexed}
        UNION SELECT order_id FROM flags WHERE resolved_at IS NULL AND severity IN ({severities})"""


@dataclass
class Picked:
    """`full`: the orders to work out in full, each with a case or deserving one; `check`: orders with a case
    that were only rescored (worked out in full only when their score, flags or reason moved); `every_case`:
    whether `full` holds every case."""

    full: list[str]
    check: list[str]
    every_case: bool


def from_candidates(conn: sqlite3.Connection, examined: Collection[str], rescored: Collection[str],
                    settings: CaseSettings, *, rescored_in_full: bool) -> Picked:
    """Start from the orders that can matter and keep those in the given sets (see the module docstring);
    `rescored_in_full`: the rescored orders are worked out in full, like the examined ones."""
    qualifying = [r[0] for r in conn.execute(
        qualifying_sql(len(settings.open_severities), settings.score_threshold),
        [settings.score_threshold, *settings.open_severities])]
    cased = [r[0] for r in conn.execute("SELECT order_id FROM cases")]
    if rescored_in_full:
        full = [o for o in cased if o in examined or o in rescored]
        check = []
    else:
        full = [o for o in cased if o in examined]
        check = [o for o in cased if o in rescored and o not in examined] if rescored else []
    every_case = len(full) == len(cased)
    has_case = set(cased)
    full += [o for o in qualifying if o not in has_case and (o in examined or o in rescored)]
    return Picked(full, check, every_case)
