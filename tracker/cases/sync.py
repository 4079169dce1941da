"""Opens or updates cases from flags and scores. (Owned by the case-tracker work: issue 6.)"""

from __future__ import annotations

from datetime import datetime

import sqlite_utils


def sync_cases(db: sqlite_utils.Database, order_ids: set[str], as_of: datetime) -> tuple[int, int]:
    """Return (opened, updated)."""
    return 0, 0  # placeholder until the case tracker lands
