"""delivered_not_received: the tracking says delivered; the buyer says it did not arrive.

Carriers sometimes scan "delivered" at the depot a day or three early, so the finding waits
`depot_grace_days` after the scan. A delivered scan that appears right after a dispute opens is noted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.rules import Evidence, Finding, RuleContext, answer_in, place_text, rule, stamp
from detectors.view import jd_to_text

CODE = "delivered_not_received"
VERSION = "1"
_NO = {"no", "n", "false", "0", "not received"}


def _says_no(o: pd.DataFrame) -> np.ndarray:
    return answer_in(o["buyer_received"], _NO)


def _deadlines(ctx: RuleContext) -> pd.Series:
    cfg = ctx.settings.get(CODE, {})
    o = ctx.tracked
    waiting = o[_says_no(o) & o["delivered_jd"].notna().to_numpy()]
    return pd.Series((waiting["delivered_jd"] + float(cfg.get("depot_grace_days", 3))).to_numpy(),
                     index=waiting["order_id"].to_numpy())


@rule(CODE, VERSION, "high", deadlines=_deadlines)
def check(ctx: RuleContext) -> list[Finding]:
    """A delivered scan the buyer contradicts."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    grace = float(cfg.get("depot_grace_days", 3))
    after_dispute = float(cfg.get("after_dispute_hours", 72)) / 24
    o = ctx.tracked
    hits = o[_says_no(o) & (o["delivered_jd"] <= ctx.as_of_jd - grace).to_numpy()]
    if hits.empty:
        return []
    disputes = ctx.disputes.set_index("order_id")["dispute_jd"].to_dict() if not ctx.disputes.empty else {}
    events = ctx.events(hits["tracking_number"])
    findings = []
    for row in hits.itertuples(index=False):
        e = next((e for e in events.get(row.tracking_number, []) if e["status"] == "delivered"), None)
        if e is None:
            continue
        text = (f"the tracking shows delivered in {place_text(e['city'], e['postcode'], e['country'])} on "
                f"{stamp(e['occurred_at'])}; the buyer says the parcel did not arrive")
        facts = {"tracking_number": row.tracking_number, "delivered_at": e["occurred_at"], "buyer_received": "no"}
        severity = str(cfg.get("severity", "high"))
        opened = disputes.get(row.order_id)
        if opened is not None and 0 <= row.delivered_jd - opened <= after_dispute:
            hours = (row.delivered_jd - opened) * 24
            text += f"; the delivered scan appeared {hours:.0f} hours after the dispute opened on {stamp(jd_to_text(opened))}"
            facts["dispute_opened_at"] = jd_to_text(opened)
            severity = "high"
        evidence = Evidence(facts=facts).add_events(e)
        findings.append(Finding(row.order_id, CODE, severity, text, evidence.as_dict(), version))
    return findings
