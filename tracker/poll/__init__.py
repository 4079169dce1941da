"""The cron job's insides: scheduling, polite HTTP, storage of what the carriers say, the run lock.

    from tracker.poll import poll, run_lock
    with run_lock(db_path):
        summary = poll(db, as_of, base_url="http://127.0.0.1:8123")
    print(summary.line())
"""

from __future__ import annotations

from tracker.poll.lock import LockHeld, lock_path, run_lock
from tracker.poll.runner import PollSummary, breaker_status, poll, polling_settings

__all__ = ["LockHeld", "PollSummary", "breaker_status", "lock_path", "poll", "polling_settings", "run_lock"]
