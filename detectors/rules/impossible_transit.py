"""impossible_transit: delivered sooner than the route's minimum transit time, or delivered with no
in-transit scan at all.

Route minimums (origin country of the first event -> destination country) come from data/routes.csv,
handed in as settings["impossible_transit"]["routes"]. Express services are fast but show the full chain
of export and import customs scans: with both, only a delivery faster than `express_min_days` is flagged.
"""

from __future__ import annotations

import numpy as np

from detectors.places import normalize_country
from detectors.rules import Evidence, Finding, RuleContext, place_text, rule, stamp

CODE = "impossible_transit"
VERSION = "1"


def route_minimum(routes: dict[tuple[str, str], float], origin: str, dest: str, default: float) -> float:
    """The minimum transit days from origin to dest: exact route, then 'same,same' for domestic, then '*'."""
    if (origin, dest) in routes:
        return routes[(origin, dest)]
    if origin and origin == dest and ("same", "same") in routes:
        return routes[("same", "same")]
    for key in ((origin, "*"), ("*", dest), ("*", "*")):
        if key in routes:
            return routes[key]
    return default


@rule(CODE, VERSION, "medium")
def check(ctx: RuleContext) -> list[Finding]:
    """Delivered faster than any real parcel on that route could be, or with no movement scans at all."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    routes: dict[tuple[str, str], float] = cfg.get("routes", {})
    default = float(cfg.get("default_min_days", 3.0))
    express_min = float(cfg.get("express_min_days", 0.75))
    no_transit_max = float(cfg.get("no_transit_max_days", 10))
    longest = max([default, *routes.values()])
    o = ctx.tracked
    o = o[o["delivered_jd"].notna().to_numpy()]
    # the longest journey the records allow: from the earliest of "shipped", the first event, the first scan
    # (cheap mail often hides its early scans; a fake is quick from every one of them)
    start = np.fmin(np.fmin(o["first_event_jd"].to_numpy(), o["shipped_jd"].to_numpy()), o["first_scan_jd"].to_numpy())
    duration = o["delivered_jd"].to_numpy() - start
    full_customs = ((o["n_export"] > 0) & (o["n_import"] > 0)).to_numpy()
    fast = (duration < longest) & ~(full_customs & (duration >= express_min))
    no_transit = (o["n_transit"].to_numpy() == 0) & (duration < no_transit_max)
    hits = o[fast | no_transit]
    if hits.empty:
        return []
    by_number = ctx.events(hits["tracking_number"])
    findings = []
    for row, dur in zip(hits.itertuples(index=False), duration[fast | no_transit], strict=True):
        ev = by_number.get(row.tracking_number)
        if not ev:
            continue
        first = ev[0]
        origin = normalize_country(first["country"])
        dest = normalize_country(row.dest_country)
        minimum = route_minimum(routes, origin, dest, default)
        delivered = next((e for e in ev if e["status"] == "delivered"), None)
        if delivered is None:
            continue
        physical = [e for e in ev if e["status"] not in ("info_received", "not_found", "unknown")]
        accepted = physical[0] if physical and physical[0]["id"] != delivered["id"] else first
        reasons = []
        too_fast = dur < minimum and not (row.n_export > 0 and row.n_import > 0 and dur >= express_min)
        if too_fast:
            reasons.append(f"delivered {dur:.1f} days after shipping, faster than the {minimum:g}-day minimum "
                           f"for {origin or '?'} to {dest or '?'}")
            if not (row.n_export > 0 and row.n_import > 0):
                reasons.append("with no export and import customs scans")
        if row.n_transit == 0 and dur < no_transit_max:
            reasons.append("delivered with no in-transit scan at all")
        if not reasons:
            continue
        text = (f"{'; '.join(reasons)}: first scan in {place_text(accepted['city'], accepted['postcode'], accepted['country'])} "
                f"on {stamp(accepted['occurred_at'])}, delivered in "
                f"{place_text(delivered['city'], delivered['postcode'], delivered['country'])} on {stamp(delivered['occurred_at'])}")
        evidence = Evidence(facts={
            "tracking_number": row.tracking_number, "transit_days": round(float(dur), 2),
            "route": f"{origin or '?'}->{dest or '?'}", "route_min_days": minimum,
            "in_transit_scans": int(row.n_transit), "export_customs_scans": int(row.n_export),
            "import_customs_scans": int(row.n_import),
        }).add_events(accepted, delivered)
        severity = "high" if row.n_transit == 0 or dur < np.float64(minimum) / 3 else str(cfg.get("severity", "medium"))
        findings.append(Finding(row.order_id, CODE, severity, text, evidence.as_dict(), version))
    return findings
