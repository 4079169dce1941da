"""Times in the store are UTC text in one canonical form, so they sort and compare as strings."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# next_poll_at of a shipment never polled: earlier than any --as-of, so a new number is due at once
DUE_AT_ONCE = "1970-01-01T00:00:00Z"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 date or datetime; without an offset it is UTC. Raises ValueError."""
    s = text.strip()
    if not s:
        raise ValueError("empty time")
    if _DATE_ONLY.match(s):
        d = date.fromisoformat(s)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    if s.endswith(("z", "Z")):
        s = s[:-1] + "+00:00"
    s = s.replace(" ", "T", 1) if "T" not in s and " " in s else s
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_db(dt: datetime) -> str:
    """The canonical stored form of a time: 2026-09-14T10:00:00Z."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime(FORMAT)


def normalize_time(text: str) -> str:
    """User text to the canonical stored form. Raises ValueError with a readable reason."""
    try:
        return to_db(parse_time(text))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date or datetime ({text!r})") from exc


def from_db(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, FORMAT).replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def resolve_as_of(as_of: str | None) -> datetime:
    """The "now" of a run: --as-of when given, else the clock."""
    return parse_time(as_of) if as_of else now()


def days(n: float) -> timedelta:
    return timedelta(days=n)
