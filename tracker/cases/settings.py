"""The case tracker's settings (data/cases.toml), read once into plain objects and checked.

Statuses, categories, reasons, outcomes, the opening thresholds, the working-day calendar and the dated
timer sets all come from here; nothing in the code names a status except through these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from tracker import config
from tracker.errors import BadInput

SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class Status:
    id: str
    label: str
    description: str
    filter: str
    next: tuple[str, ...]
    terminal: bool
    deadlines: bool
    position: int


@dataclass(frozen=True)
class Reason:
    id: str
    label: str
    category: str
    flags: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class TimerSet:
    name: str
    effective_from: date
    seller_response_days: int
    escalation_after_days: int
    delivered_window_days: int
    complaint_window_days: int
    decision_working_days: int
    coupon_working_days: int
    coupon_valid_days: int
    refund_after_confirm_days: int


@dataclass(frozen=True)
class Calendar:
    timezone: ZoneInfo
    weekend: tuple[int, ...]
    holidays: tuple[date, ...]

    @property
    def weekmask(self) -> str:
        """numpy's busday weekmask: seven 1/0 characters from Monday."""
        return "".join("0" if day in self.weekend else "1" for day in range(1, 8))


@dataclass(frozen=True)
class CaseSettings:
    statuses: dict[str, Status]
    categories: dict[str, str]  # id -> label
    reasons: dict[str, Reason]
    default_status: str
    default_category: str
    fallback_reason: str
    outcomes: tuple[str, ...]
    coupon_outcomes: tuple[str, ...]
    score_threshold: float
    open_severities: tuple[str, ...]
    calendar: Calendar
    timer_sets: tuple[TimerSet, ...]  # sorted by effective_from
    deadline_labels: dict[str, str] = field(default_factory=dict)

    def reason_for_flag(self, code: str) -> Reason | None:
        for reason in self.reasons.values():
            if code in reason.flags:
                return reason
        return None

    def timer_set_for(self, ordered_at: datetime | None) -> TimerSet:
        """The timer set in force on the order's date: the latest one that took effect by then.

        An order older than every set gets the oldest; an order without a date gets the newest.
        """
        if ordered_at is None:
            return self.timer_sets[-1]
        chosen = self.timer_sets[0]
        for timer_set in self.timer_sets:
            if timer_set.effective_from <= ordered_at.date():
                chosen = timer_set
        return chosen

    def check_status(self, status: str) -> Status:
        if status not in self.statuses:
            raise BadInput(f"status {status!r}: unknown; valid statuses: {', '.join(self.statuses)}")
        return self.statuses[status]

    def check_category(self, category: str) -> str:
        if category not in self.categories:
            raise BadInput(f"category {category!r}: unknown; valid categories: {', '.join(self.categories)}")
        return category


def _where(key: str) -> str:
    return f"data/cases.toml [{key}]"


def _parse(raw: dict) -> CaseSettings:
    problems: list[str] = []
    statuses: dict[str, Status] = {}
    for position, (sid, body) in enumerate((raw.get("statuses") or {}).items()):
        statuses[sid] = Status(
            id=sid,
            label=str(body.get("label", sid)),
            description=str(body.get("description", "")),
            filter=str(body.get("filter", body.get("label", sid))),
            next=tuple(body.get("next", [])),
            terminal=bool(body.get("terminal", False)),
            deadlines=bool(body.get("deadlines", True)),
            position=position,
        )
    for status in statuses.values():
        for target in status.next:
            if target not in statuses:
                problems.append(f"{_where('statuses.' + status.id)}: next status {target!r} is not defined")
        if status.terminal and status.next:
            problems.append(f"{_where('statuses.' + status.id)}: a terminal status cannot have next statuses")
    categories = {cid: str(body.get("label", cid)) for cid, body in (raw.get("categories") or {}).items()}
    reasons = {
        rid: Reason(rid, str(body.get("label", rid)), str(body.get("category", "trade_rules")),
                    tuple(body.get("flags", [])), position)
        for position, (rid, body) in enumerate((raw.get("reasons") or {}).items())
    }
    default_status = raw.get("default_status", "new")
    default_category = raw.get("default_category", "trade_rules")
    fallback_reason = raw.get("fallback_reason", next(iter(reasons), ""))
    if default_status not in statuses:
        problems.append(f"data/cases.toml default_status: {default_status!r} is not a defined status")
    if default_category not in categories:
        problems.append(f"data/cases.toml default_category: {default_category!r} is not a defined category")
    if reasons and fallback_reason not in reasons:
        problems.append(f"data/cases.toml fallback_reason: {fallback_reason!r} is not a defined reason")
    cal = raw.get("calendar") or {}
    try:
        tz = ZoneInfo(cal.get("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{_where('calendar')}: unknown time zone {cal.get('timezone')!r}")
        tz = ZoneInfo("UTC")
    try:
        holidays = tuple(date.fromisoformat(str(d)) for d in cal.get("holidays", []))
    except ValueError as exc:
        problems.append(f"{_where('calendar')}: holidays must be YYYY-MM-DD dates ({exc})")
        holidays = ()
    calendar = Calendar(tz, tuple(int(d) for d in cal.get("weekend", [6, 7])), holidays)
    timer_sets = []
    for body in raw.get("timer_sets") or []:
        try:
            timer_sets.append(TimerSet(
                name=str(body["name"]),
                effective_from=date.fromisoformat(str(body["effective_from"])),
                **{k: int(body[k]) for k in TimerSet.__dataclass_fields__ if k not in ("name", "effective_from")},
            ))
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"{_where('timer_sets')}: set {body.get('name', '?')!r} is incomplete or invalid ({exc})")
    if not timer_sets:
        problems.append(f"{_where('timer_sets')}: at least one timer set is required")
    opening = raw.get("open") or {}
    if problems:
        raise BadInput(problems)
    return CaseSettings(
        statuses=statuses,
        categories=categories,
        reasons=reasons,
        default_status=default_status,
        default_category=default_category,
        fallback_reason=fallback_reason,
        outcomes=tuple(raw.get("outcomes", [])),
        coupon_outcomes=tuple(raw.get("coupon_outcomes", ["upheld"])),
        score_threshold=float(opening.get("score_threshold", 0.7)),
        open_severities=tuple(opening.get("severities", ["high"])),
        calendar=calendar,
        timer_sets=tuple(sorted(timer_sets, key=lambda t: t.effective_from)),
        deadline_labels=dict(raw.get("deadline_labels") or {}),
    )


@cache
def _cached() -> CaseSettings:
    return _parse(config.load("cases"))


def load_settings() -> CaseSettings:
    """The settings in force (cached; `tracker.config.reload()` plus `reload_settings()` forget them)."""
    return _cached()


def reload_settings() -> None:
    config.reload()
    _cached.cache_clear()


def publish_settings(db: sqlite_utils.Database, *, strict: bool = True) -> None:
    """Copy statuses, categories and reasons into their tables, so the dashboard can join labels.

    Caller owns the transaction. With `strict=False` a broken settings file is skipped, not raised.
    """
    try:
        settings = load_settings()
    except BadInput:
        if strict:
            raise
        return
    conn = db.conn
    conn.execute("DELETE FROM case_statuses")
    conn.executemany(
        "INSERT INTO case_statuses(id, label, description, filter, next, terminal, deadlines, position)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(s.id, s.label, s.description, s.filter, ",".join(s.next), int(s.terminal), int(s.deadlines), s.position)
         for s in settings.statuses.values()],
    )
    conn.execute("DELETE FROM case_categories")
    conn.executemany(
        "INSERT INTO case_categories(id, label, position) VALUES (?, ?, ?)",
        [(cid, label, i) for i, (cid, label) in enumerate(settings.categories.items())],
    )
    conn.execute("DELETE FROM case_reasons")
    conn.executemany(
        "INSERT INTO case_reasons(id, label, category, flags, position) VALUES (?, ?, ?, ?, ?)",
        [(r.id, r.label, r.category, ",".join(r.flags), r.position) for r in settings.reasons.values()],
    )
