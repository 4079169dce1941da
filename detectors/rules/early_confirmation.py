"""early_confirmation: the buyer confirmed receipt before any delivered scan.

The doorstep case is innocent: a buyer who confirms minutes or hours before the courier's "delivered" scan
reaches the carrier's system. Only a confirmation more than `doorstep_slack_hours` before the first delivered
scan (or with none at all, that long after) counts.
"""

from __future__ import annotations

import pandas as pd

from detectors.rules import Evidence, Finding, RuleContext, rule, stamp
from detectors.view import jd_to_text

CODE = "early_confirmation"
VERSION = "1"


def _deadlines(ctx: RuleContext) -> pd.Series:
    cfg = ctx.settings.get(CODE, {})
    o = ctx.tracked
    waiting = o[(o["confirmed_jd"].notna() & o["delivered_jd"].isna()).to_numpy()]
    return pd.Series((waiting["confirmed_jd"] + float(cfg.get("doorstep_slack_hours", 12)) / 24).to_numpy(),
                     index=waiting["order_id"].to_numpy())


@rule(CODE, VERSION, "medium", deadlines=_deadlines)
def check(ctx: RuleContext) -> list[Finding]:
    """Receipt confirmed while the parcel had not been delivered."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    slack = float(cfg.get("doorstep_slack_hours", 12)) / 24
    o = ctx.tracked
    confirmed = o["confirmed_jd"]
    before_delivery = confirmed.notna() & (o["delivered_jd"] > confirmed + slack)
    never_delivered = confirmed.notna() & o["delivered_jd"].isna() & (ctx.as_of_jd >= confirmed + slack)
    # untracked last miles (cheap mail, numbers re-labelled in the destination country): the tracking goes
    # quiet and the parcel arrives anyway; a confirmation late enough after shipping and after the last
    # scan is the buyer receiving it, not confirming early
    untracked_days = float(cfg.get("untracked_arrival_days", 10))
    went_quiet = o["last_scan_jd"].isna() | (confirmed > o["last_scan_jd"])
    plausible_arrival = went_quiet & (confirmed >= o["shipped_jd"].fillna(o["ordered_jd"]) + untracked_days)
    never_delivered &= ~plausible_arrival
    hits = o[(before_delivery | never_delivered).to_numpy()]
    if hits.empty:
        return []
    numbers = [n for n in hits["tracking_number"].fillna("") if n]
    events = ctx.events(numbers)
    findings = []
    for row in hits.itertuples(index=False):
        when_confirmed = stamp(jd_to_text(row.confirmed_jd))
        facts = {"tracking_number": row.tracking_number, "buyer_confirmed_at": jd_to_text(row.confirmed_jd)}
        evidence = Evidence(facts=facts)
        e = next((e for e in events.get(row.tracking_number, []) if e["status"] == "delivered"), None)
        if e is not None:
            gap = row.delivered_jd - row.confirmed_jd
            text = (f"the buyer confirmed receipt on {when_confirmed}, {gap:.1f} days before the first delivered "
                    f"scan on {stamp(e['occurred_at'])}")
            facts["first_delivered_at"] = e["occurred_at"]
            evidence.add_events(e)
        else:
            text = f"the buyer confirmed receipt on {when_confirmed}; the tracking shows no delivered scan"
            if row.n_events:
                text += f" ({int(row.n_events)} events, the last physical scan on {stamp(jd_to_text(row.last_scan_jd))})" \
                    if row.n_scans else f" ({int(row.n_events)} events, none a physical scan)"
        findings.append(Finding(row.order_id, CODE, str(cfg.get("severity", "medium")), text, evidence.as_dict(),
                                version))
    return findings
