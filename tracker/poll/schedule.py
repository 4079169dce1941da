"""When to look again: the shipment state machine of DOMAIN.md section 5, with intervals from data.

States: pending (no answer with events yet), tracking (moving), delivered (waiting for the one
confirmation poll), done (delivered and confirmed: never polled again), not_found (the carrier has said
"no record" often enough over the grace period), stale (no event for stale_after_days: polled rarely),
retired (nothing for retire_after_days: never polled again).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from tracker.timeutil import parse_time, to_db

FINAL_STATES = ("done", "retired")
FINAL_STATUSES = {"delivered": "delivered_confirmation", "returned": "returned_confirmation"}


def from_db(text: str | None) -> datetime | None:
    """A stored time; tolerant of non-canonical text another writer may have left."""
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def _hours(cfg: dict[str, Any], key: str, rng: random.Random) -> timedelta:
    value = cfg["intervals"].get(key, cfg["intervals"].get("unknown", [6, 12]))
    low, high = (value, value) if isinstance(value, int | float) else (value[0], value[-1])
    return timedelta(hours=low if low == high else rng.uniform(low, high))


def next_poll(
    shipment: dict[str, Any],
    outcome: str,
    now: datetime,
    cfg: dict[str, Any],
    *,
    latest_status: str | None = None,
    latest_event_at: str | None = None,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """The shipment columns to set after one poll with `outcome` ("ok", "not_found" or an error)."""
    rng = random.Random(f"{shipment['tracking_number']}|{to_db(now)}")  # jitter, reproducible under --as-of
    life = cfg["lifecycle"]
    first_seen = from_db(shipment.get("first_seen_at")) or now
    update: dict[str, Any] = {"last_polled_at": to_db(now), "first_seen_at": to_db(first_seen)}
    state = shipment.get("state") or "pending"
    last_event_at = latest_event_at or shipment.get("last_event_at")
    if latest_event_at and (not shipment.get("last_event_at") or latest_event_at > shipment["last_event_at"]):
        update["last_event_at"] = latest_event_at

    if outcome == "invalid_number":  # the carrier's pattern rejects it: no fetch can ever succeed
        update.update(state="invalid", next_poll_at=None)
        return update
    if outcome == "ok":
        update.update(last_success_at=to_db(now), consecutive_failures=0, last_error=None)
        status = latest_status or shipment.get("last_status") or "unknown"
        update["last_status"] = status
        if status in FINAL_STATUSES:
            seen = from_db(shipment.get("delivered_seen_at")) if shipment.get("last_status") == status else None
            if seen is None:
                update.update(delivered_seen_at=to_db(now), state="delivered",
                              next_poll_at=to_db(now + _hours(cfg, FINAL_STATUSES[status], rng)))
            else:  # this was the confirmation poll: stop
                update.update(state="done", next_poll_at=None)
            return update
        update["delivered_seen_at"] = None
        state, interval = "tracking", _hours(cfg, status, rng)
    elif outcome == "no_information":  # the carrier knows the number; no scan yet: not a "no record"
        update.update(last_success_at=to_db(now), consecutive_failures=0, last_error=None)
        interval = _hours(cfg, "not_found", rng)
        state = state if state in ("tracking", "stale") else "pending"
    elif outcome == "not_found":
        count = int(shipment.get("not_found_count") or 0) + 1
        update.update(last_success_at=to_db(now), consecutive_failures=0, last_error=None, not_found_count=count)
        interval = _hours(cfg, "not_found", rng)
        # one "no record" proves nothing (the 3-15 day lag before a first scan): count answers over time
        if (not last_event_at and count >= int(life["not_found_min_answers"])
                and now - first_seen >= timedelta(days=float(life["not_found_grace_days"]))):
            state = "not_found"
            update["last_status"] = "not_found"
    else:
        failures = int(shipment.get("consecutive_failures") or 0) + 1
        update["consecutive_failures"] = failures
        backoff = cfg["intervals"]["error_backoff"]
        interval = timedelta(hours=float(backoff[min(failures, len(backoff)) - 1]))
        interval += timedelta(hours=float(backoff[0]) * rng.random() * 0.5)
        if retry_after:
            interval = max(interval, timedelta(seconds=retry_after))
        if state in FINAL_STATES:
            state = "tracking"

    quiet_since = from_db(last_event_at) or first_seen
    if now - quiet_since >= timedelta(days=float(life["retire_after_days"])):
        update.update(state="retired", next_poll_at=None)
        return update
    if now - quiet_since >= timedelta(days=float(life["stale_after_days"])):
        state = "stale"
        interval = max(interval, _hours(cfg, "stale", rng))
    update["state"] = state
    update["next_poll_at"] = to_db(now + interval)
    return update
