"""`tracker detect`: shipment facts -> rules -> flags, classifier -> scores, then cases. One pipeline.

- `tracker.plan.plan_for` decides once, from the store's size and the machine, which fast paths the run takes.
- `flagging.run_rules` brings each tracking number's facts up to date (`shipment_facts`: only numbers with
  new events), runs every registered rule over the orders that changed (or all with `full`), writes `flags`
  idempotently and returns the order ids it examined.
- `scoring.score_orders` rescores those orders (all of them after a new model is trained).
- `tracker.cases.sync.sync_cases` opens or updates cases from flags and scores, never overriding a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils


@dataclass
class DetectSummary:
    examined: int = 0
    flags_raised: int = 0
    flags_resolved: int = 0
    scored: int = 0
    cases_opened: int = 0
    cases_updated: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"examined {self.examined} orders: {self.flags_raised} flags raised, {self.flags_resolved} resolved, "
            f"{self.scored} scored, {self.cases_opened} cases opened, {self.cases_updated} updated"
        )


def detect(db: sqlite_utils.Database, as_of: datetime, *, full: bool = False) -> DetectSummary:
    import time

    from tracker.cases import sync
    from tracker.detection import flagging, scoring
    from tracker.plan import plan_for

    summary = DetectSummary()
    t0 = time.perf_counter()
    plan = plan_for(db.conn)
    result = flagging.run_rules(db, as_of, full=full, plan=plan)
    summary.examined, summary.flags_raised, summary.flags_resolved = (
        len(result.order_ids), result.raised, result.resolved)
    t1 = time.perf_counter()
    scored = scoring.score_orders(db, result.order_ids, as_of, full=full, plan=plan)
    summary.scored = len(scored)
    t2 = time.perf_counter()
    opened, updated = sync.sync_cases(db, result.order_ids | scored, as_of)
    summary.cases_opened, summary.cases_updated = opened, updated
    t3 = time.perf_counter()
    summary.seconds = {"rules": t1 - t0, "scoring": t2 - t1, "cases": t3 - t2}
    return summary
