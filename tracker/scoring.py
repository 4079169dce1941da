"""Scores orders with the active classifier and writes `scores`. (Owned by the classifier work: issue 5.)"""

from __future__ import annotations

from datetime import datetime

import sqlite_utils


def score_orders(db: sqlite_utils.Database, order_ids: set[str], as_of: datetime, *, full: bool = False) -> set[str]:
    """Rescore these orders (every order after a new model); return the order ids scored."""
    return set()  # placeholder until the classifier lands
