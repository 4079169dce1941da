"""no_tracking_progress: no physical scan within the grace period after "shipped", no new scan for
`stale_days` on a parcel not delivered, or a gap of `stale_days` without scans before the delivered scan
(the parcel stuck for weeks that turns "delivered" when the buyer disputes).

Look-alikes kept out: first scans that lag 3-15 days (the grace period is longer); cheap untracked mail
and numbers re-labelled in the destination country, whose tracking ends at a hand-over scan (export,
line-haul, import, last-mile acceptance: `handover_codes`); parcels the buyer says arrived.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime

import numpy as np
import pandas as pd

from detectors.rules import Evidence, Finding, RuleContext, answer_in, place_text, rule, stamp
from detectors.view import PHYSICAL_STATUSES, jd_to_text

CODE = "no_tracking_progress"
VERSION = "1"
_YES = {"yes", "y", "true", "1", "received"}
DEFAULT_HANDOVER = ("CC_*", "LH_*", "GTMS_ACCEPT")
_FMT = "%Y-%m-%dT%H:%M:%SZ"


def _arrived(o: pd.DataFrame) -> np.ndarray:
    """The buyer says it arrived, or confirmed receipt: silent tracking is then an untracked last mile
    (early confirmations have their own rule)."""
    says_yes = answer_in(o["buyer_received"], _YES)
    return says_yes | o["confirmed_jd"].notna().to_numpy()


def _deadlines(ctx: RuleContext) -> pd.Series:
    cfg = ctx.settings.get(CODE, {})
    o = ctx.tracked
    undelivered = o["delivered_jd"].isna().to_numpy() & ~_arrived(o)
    due = np.where(o["n_scans"].to_numpy() == 0, o["shipped_jd"] + float(cfg.get("grace_days", 20)),
                   o["last_scan_jd"] + float(cfg.get("stale_days", 30)))
    keep = undelivered & ~np.isnan(due)
    return pd.Series(due[keep], index=o["order_id"].to_numpy()[keep])


def _max_gap(scans: list[dict], until: str) -> tuple[float, dict | None, dict | None]:
    """The longest stretch without a physical scan before `until`, with the scans on either side."""
    before = [e for e in scans if e["occurred_at"] <= until]
    best: tuple[float, dict | None, dict | None] = (0.0, None, None)
    for a, b in zip(before, before[1:], strict=False):
        gap = (datetime.strptime(b["occurred_at"], _FMT) - datetime.strptime(a["occurred_at"], _FMT)).total_seconds() / 86400
        if gap > best[0]:
            best = (gap, a, b)
    return best


@rule(CODE, VERSION, "medium", deadlines=_deadlines)
def check(ctx: RuleContext) -> list[Finding]:
    """The tracking never moves, or stops moving for weeks."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    severity = str(cfg.get("severity", "medium"))
    grace = float(cfg.get("grace_days", 20))
    stale = float(cfg.get("stale_days", 30))
    handover = tuple(cfg.get("handover_codes", DEFAULT_HANDOVER))
    o = ctx.tracked
    arrived = _arrived(o)
    findings: list[Finding] = []

    never = (o["n_scans"].to_numpy() == 0) & (ctx.as_of_jd - o["shipped_jd"].to_numpy() >= grace) & ~arrived
    for row in o[never].itertuples(index=False):
        seen = f"only {int(row.n_events)} non-physical event(s) such as 'info received'" if row.n_events else "no event at all"
        findings.append(Finding(
            row.order_id, CODE, severity,
            f"shipped on {stamp(jd_to_text(row.shipped_jd))} and no physical carrier scan within the {grace:g}-day "
            f"grace period (by {stamp(jd_to_text(row.shipped_jd + grace))}): {seen}",
            {"tracking_number": row.tracking_number, "shipped_at": jd_to_text(row.shipped_jd), "grace_days": grace,
             "event_ids": []},
            version,
        ))

    undelivered = o["delivered_jd"].isna().to_numpy()
    stuck = (o["n_scans"].to_numpy() > 0) & undelivered & (ctx.as_of_jd - o["last_scan_jd"].to_numpy() >= stale) & ~arrived
    long_trip = ~undelivered & (o["delivered_jd"].to_numpy() - o["first_scan_jd"].to_numpy() >= stale) & ~arrived
    candidates = o[stuck | long_trip]
    if candidates.empty:
        return findings
    events = ctx.events(candidates["tracking_number"])
    for row in candidates.itertuples(index=False):
        scans = [e for e in events.get(row.tracking_number, []) if e["status"] in PHYSICAL_STATUSES]
        if not scans:
            continue
        if np.isnan(row.delivered_jd):
            last = scans[-1]
            code = last["raw_code"] if isinstance(last["raw_code"], str) else ""
            if last["status"] == "returned" or any(fnmatch.fnmatchcase(code, p) for p in handover):
                continue  # handed over to an untracked or re-labelled last mile: silence is normal
            text = (f"no new scan in the {stale:g} days after the last one, '{last['description'] or last['status']}' "
                    f"in {place_text(last['city'], last['postcode'], last['country'])} on {stamp(last['occurred_at'])}; "
                    "not delivered")
            evidence = Evidence(facts={"tracking_number": row.tracking_number, "last_scan_at": last["occurred_at"],
                                       "stale_days": stale}).add_events(last)
        else:
            delivered = next(e for e in scans if e["status"] == "delivered")
            gap, before, after = _max_gap(scans, delivered["occurred_at"])
            if gap < stale or before is None:
                continue
            text = (f"no scan for {gap:.0f} days before delivery: '{before['description'] or before['status']}' on "
                    f"{stamp(before['occurred_at'])}, then '{after['description'] or after['status']}' on "
                    f"{stamp(after['occurred_at'])}")
            evidence = Evidence(facts={"tracking_number": row.tracking_number, "gap_days": round(gap, 1),
                                       "stale_days": stale}).add_events(before, after)
        findings.append(Finding(row.order_id, CODE, severity, text, evidence.as_dict(), version))
    return findings
