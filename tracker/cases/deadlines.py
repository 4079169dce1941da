"""A case's deadlines, from the timer set in force on the order's date (data/cases.toml).

Calendar-day timers are plain additions in UTC. Working-day timers (the complaint decision, the coupons)
are counted on the platform's calendar: the start is taken in the platform's time zone, weekends and
holidays are skipped (numpy's business-day arithmetic), and the deadline keeps the start's local clock
time. A start on a day off counts from the next working day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from tracker.cases.settings import Calendar, CaseSettings, TimerSet


@dataclass(frozen=True)
class Deadline:
    name: str
    due_at: datetime
    label: str


@dataclass
class CaseFacts:
    """What the deadlines depend on: the order, its first delivered scan and the dispute timeline."""

    ordered_at: datetime | None = None
    shipped_at: datetime | None = None
    promised_days: int | None = None
    buyer_confirmed_at: datetime | None = None
    delivered_at: datetime | None = None
    dispute_opened_at: datetime | None = None
    dispute_escalated_at: datetime | None = None
    dispute_closed_at: datetime | None = None
    complaint_submitted_at: datetime | None = None
    decision_at: datetime | None = None
    outcome: str | None = None
    coupon_issued_at: datetime | None = None


def add_working_days(start: datetime, n: int, calendar: Calendar) -> datetime:
    """`start` plus `n` working days on the platform's calendar, at the same local clock time."""
    local = start.astimezone(calendar.timezone)
    day = np.busday_offset(
        np.datetime64(local.date()), n, roll="backward",
        weekmask=calendar.weekmask, holidays=[np.datetime64(h) for h in calendar.holidays],
    )
    target = day.astype(object)  # numpy datetime64[D] -> datetime.date
    return datetime.combine(target, local.time().replace(tzinfo=None), tzinfo=calendar.timezone).astimezone(
        start.tzinfo
    )


def compute_deadlines(facts: CaseFacts, settings: CaseSettings) -> tuple[TimerSet, list[Deadline]]:
    """Every deadline that applies to the case now, sorted by time, and the timer set used."""
    timers = settings.timer_set_for(facts.ordered_at)
    labels = settings.deadline_labels
    out: list[Deadline] = []

    def add(name: str, due: datetime | None) -> None:
        if due is not None:
            out.append(Deadline(name, due, labels.get(name, name.replace("_", " "))))

    # Buyer protection runs until the buyer confirms or opens a dispute (a dispute freezes the timer).
    if facts.buyer_confirmed_at is None and facts.dispute_opened_at is None:
        start = facts.shipped_at or facts.ordered_at
        end = start + timedelta(days=facts.promised_days) if start and facts.promised_days else None
        if facts.delivered_at is not None and timers.delivered_window_days > 0:
            shortened = facts.delivered_at + timedelta(days=timers.delivered_window_days)
            end = min(end, shortened) if end else shortened
        add("protection_end", end)
    if facts.buyer_confirmed_at is not None and facts.dispute_opened_at is None:
        add("refund_request_end", facts.buyer_confirmed_at + timedelta(days=timers.refund_after_confirm_days))

    dispute_open = facts.dispute_opened_at is not None and facts.dispute_closed_at is None
    if dispute_open and facts.dispute_escalated_at is None:
        add("seller_response", facts.dispute_opened_at + timedelta(days=timers.seller_response_days))
        add("escalation", facts.dispute_opened_at + timedelta(days=timers.escalation_after_days))
    if facts.dispute_escalated_at is not None and facts.dispute_closed_at is not None \
            and facts.complaint_submitted_at is None:
        add("complaint_window", facts.dispute_closed_at + timedelta(days=timers.complaint_window_days))
    if facts.complaint_submitted_at is not None and facts.decision_at is None:
        add("decision_due", add_working_days(facts.complaint_submitted_at, timers.decision_working_days,
                                             settings.calendar))
    if facts.decision_at is not None and facts.outcome in settings.coupon_outcomes:
        coupon_due = add_working_days(facts.decision_at, timers.coupon_working_days, settings.calendar)
        if facts.coupon_issued_at is None:
            add("coupon_due", coupon_due)
        add("coupon_expiry", (facts.coupon_issued_at or coupon_due) + timedelta(days=timers.coupon_valid_days))
    out.sort(key=lambda d: (d.due_at, d.name))
    return timers, out


def next_deadline(deadlines: list[Deadline], as_of: datetime) -> Deadline | None:
    """The earliest deadline still ahead at `as_of`."""
    ahead = [d for d in deadlines if d.due_at > as_of]
    return min(ahead, key=lambda d: (d.due_at, d.name)) if ahead else None
