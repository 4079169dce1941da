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


# --- many cases at once ------------------------------------------------------------------------------------

def _seconds(texts: list[str | None]) -> np.ndarray:
    """Canonical stored times ('YYYY-MM-DDTHH:MM:SSZ', or None) as datetime64[s] (NaT for None)."""
    return np.array([t[:19] if t else "NaT" for t in texts], dtype="datetime64[s]")


def before_any_dispute(ordered_at: list[str | None], shipped_at: list[str | None], promised_days: list[int | None],
                       buyer_confirmed_at: list[str | None], delivered_at: list[str | None],
                       settings: CaseSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`compute_deadlines` for many cases that have no dispute timeline yet (every new case), at once: per case
    the index of its timer set in `settings.timer_sets`, its one deadline's name (0 none, 1 protection_end,
    2 refund_request_end) and due time. Times are canonical stored text (see `is_canonical`)."""
    sets = settings.timer_sets
    ordered, shipped = _seconds(ordered_at), _seconds(shipped_at)
    confirmed, delivered = _seconds(buyer_confirmed_at), _seconds(delivered_at)
    promised = np.array([np.nan if d is None else float(d) for d in promised_days], dtype=float)
    # the timer set in force on the order's (UTC) date: the latest that took effect by then, the oldest before
    # them all, the newest without a date
    starts = np.array([s.effective_from.isoformat() for s in sets], dtype="datetime64[D]")
    chosen = np.maximum(np.searchsorted(starts, ordered.astype("datetime64[D]"), side="right") - 1, 0)
    chosen[np.isnat(ordered)] = len(sets) - 1
    window = np.array([s.delivered_window_days for s in sets], dtype=np.int64)[chosen]
    refund = np.array([s.refund_after_confirm_days for s in sets], dtype=np.int64)[chosen]

    start = np.where(np.isnat(shipped), ordered, shipped)
    has_end = ~np.isnat(start) & ~np.isnan(promised) & (np.nan_to_num(promised) != 0)
    end = start + (np.nan_to_num(promised).astype(np.int64) * 86400).astype("timedelta64[s]")
    shortens = ~np.isnat(delivered) & (window > 0)
    shortened = delivered + (window * 86400).astype("timedelta64[s]")
    end = np.where(shortens & has_end, np.minimum(end, shortened), np.where(shortens, shortened, end))
    has_end |= shortens

    name = np.zeros(len(ordered), dtype=np.int8)
    due = np.full(len(ordered), np.datetime64("NaT"), dtype="datetime64[s]")
    protected = np.isnat(confirmed) & has_end
    name[protected], due[protected] = 1, end[protected]
    refunding = ~np.isnat(confirmed)
    name[refunding] = 2
    due[refunding] = confirmed[refunding] + (refund[refunding] * 86400).astype("timedelta64[s]")
    return chosen, name, due


PLAIN_DEADLINES = (None, "protection_end", "refund_request_end")  # `before_any_dispute`'s names


def is_canonical(text: object) -> bool:
    """A stored time in the one form `before_any_dispute` reads: 'YYYY-MM-DDTHH:MM:SSZ' (or none)."""
    return text is None or (isinstance(text, str) and len(text) == 20 and text[10] == "T" and text[19] == "Z")
