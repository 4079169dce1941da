"""no_tracking_progress: no physical scan within the grace period after "shipped", no new scan for
`stale_days` on a parcel not delivered, or a gap of `stale_days` without scans before the delivered scan
(the parcel stuck for weeks that turns "delivered" when the buyer disputes).

Silence after a hand-over scan (export, line-haul, import, last-mile acceptance: `handover_codes`) is the
route's untracked last mile: cheap untracked mail and numbers re-labelled in the destination country go
quiet there. It is normal only for a bounded time, the route's `untracked_last_mile_days`
(data/routes.csv, handed in as settings["no_tracking_progress"]["last_mile_days"], and
["express_last_mile_days"] for express parcels); after that the parcel is flagged unless the buyer says
it arrived. Other look-alikes kept out: first scans that lag 3-15 days (the grace period is longer);
parcels the buyer says arrived.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime

import numpy as np
import pandas as pd

from detectors.places import normalize_country
from detectors.rules import Evidence, Finding, RuleContext, answer_in, place_text, rule, stamp
from detectors.rules.impossible_transit import express_number, route_minimum
from detectors.view import PHYSICAL_STATUSES, jd_to_text

CODE = "no_tracking_progress"
VERSION = "2"
_YES = {"yes", "y", "true", "1", "received"}
DEFAULT_HANDOVER = ("CC_*", "LH_*", "GTMS_ACCEPT")
_FMT = "%Y-%m-%dT%H:%M:%SZ"


def _arrived(o: pd.DataFrame) -> np.ndarray:
    """The buyer says it arrived, or confirmed receipt: silent tracking is then an untracked last mile
    (early confirmations have their own rule)."""
    says_yes = answer_in(o["buyer_received"], _YES)
    return says_yes | o["confirmed_jd"].notna().to_numpy()


def _quiet_bounds(cfg: dict) -> np.ndarray:
    """Every silence length after the last scan at which a verdict may change: `stale_days` and each route's
    last-mile bound, sorted."""
    bounds = {float(cfg.get("stale_days", 30)), float(cfg.get("untracked_last_mile_days", 45))}
    for table in ("last_mile_days", "express_last_mile_days"):
        bounds.update(float(v) for v in (cfg.get(table) or {}).values())
    return np.array(sorted(bounds))


def _deadlines(ctx: RuleContext) -> pd.Series:
    cfg = ctx.settings.get(CODE, {})
    o = ctx.tracked
    undelivered = o["delivered_jd"].isna().to_numpy() & ~_arrived(o)
    # a silent parcel's verdict may change when its silence reaches the next bound (conservative: any route's)
    bounds = _quiet_bounds(cfg)
    last = o["last_scan_jd"].to_numpy(dtype=float)
    silent = ctx.as_of_jd - last
    nxt = np.searchsorted(bounds, np.nan_to_num(silent, nan=np.inf), side="right")
    next_bound = np.where(nxt < len(bounds), bounds[np.minimum(nxt, len(bounds) - 1)], np.nan)
    due = np.where(o["n_scans"].to_numpy() == 0, o["shipped_jd"] + float(cfg.get("grace_days", 20)), last + next_bound)
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
    quiet_default = float(cfg.get("untracked_last_mile_days", 45))
    postal_quiet = cfg.get("last_mile_days") or {}
    express_quiet = cfg.get("express_last_mile_days") or {}
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
            if last["status"] == "returned":
                continue
            silent = ctx.as_of_jd - row.last_scan_jd
            where = place_text(last["city"], last["postcode"], last["country"])
            seen = f"'{last['description'] or last['status']}' in {where} on {stamp(last['occurred_at'])}"
            facts = {"tracking_number": row.tracking_number, "last_scan_at": last["occurred_at"],
                     "silent_days": round(float(silent), 1), "last_seen": where}
            if any(fnmatch.fnmatchcase(code, p) for p in handover):
                # handed over to an untracked or re-labelled last mile: silence is normal, for a bounded time
                all_events = events.get(row.tracking_number, [])
                origin = normalize_country(all_events[0]["country"]) if all_events else ""
                dest = normalize_country(row.dest_country)
                # only the number tells an express service here: postal parcels show customs scans too
                express = express_number(row.tracking_number)
                # express last miles are tracked: their silence is held to `stale_days` unless a route says otherwise
                bound = route_minimum(express_quiet if express else postal_quiet, origin, dest,
                                      stale if express else quiet_default)
                if silent < bound:
                    continue
                service = "express" if express else "postal"
                text = (f"no scan for {silent:.0f} days since the hand-over {seen}; the untracked last mile of "
                        f"{service} parcels from {origin or '?'} to {dest or '?'} normally ends within {bound:g} days; "
                        "not delivered and the buyer has not said it arrived")
                facts |= {"handover": True, "route": f"{origin or '?'}->{dest or '?'}", "service_class": service,
                          "untracked_last_mile_days": bound}
            else:
                text = (f"no scan for {silent:.0f} days (more than {stale:g}) since {seen}; not delivered")
                facts |= {"stale_days": stale}
            evidence = Evidence(facts=facts).add_events(last)
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
