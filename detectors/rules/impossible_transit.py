"""impossible_transit: delivered sooner than the route's minimum transit time for its service class, or
delivered with no in-transit scan at all.

Minimums come from data/routes.csv per origin (country of the first event), destination and service class,
handed in as settings["impossible_transit"]["routes"] (postal: (origin, dest) -> days) and
["express_routes"] ('O->D' -> days). Postal/economy and express are kept apart: a parcel travels as express
when its number is an express service's (DHL Express, FedEx Express, UPS, S10 EMS: overlay.toml) or when
its scans show the express chain: export customs, line-haul and import customs. A "postal" parcel
delivered in three days with no customs scan is a fake; an express one with its full chain is not.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import numpy as np

from detectors.places import normalize_country
from detectors.rules import Evidence, Finding, RuleContext, per_distinct, place_text, rule, stamp
from detectors.tracking_numbers import validate

CODE = "impossible_transit"
VERSION = "2"
DEFAULT_LINEHAUL = ("LH_*",)


def route_minimum(routes: Mapping, origin: str, dest: str, default: float) -> float:
    """The value for origin -> dest: exact route, then 'same,same' for domestic, then '*' rows. Keys are
    (origin, dest) tuples or 'O->D' text."""
    text_keys = any(isinstance(k, str) for k in routes)

    def get(a: str, b: str) -> float | None:
        return routes.get(f"{a}->{b}" if text_keys else (a, b))

    if (value := get(origin, dest)) is not None:
        return float(value)
    if origin and origin == dest and (value := get("same", "same")) is not None:
        return float(value)
    for a, b in ((origin, "*"), ("*", dest), ("*", "*")):
        if (value := get(a, b)) is not None:
            return float(value)
    return default


def route_maximum(routes: Mapping, dest: str, default: float) -> float:
    """The largest value `route_minimum` can give for a route to `dest`, whatever its origin: of the rows to
    `dest` or to '*', the domestic row and the default."""
    values = [default]
    for key, value in routes.items():
        to = key.partition("->")[2] if isinstance(key, str) else key[1]
        if to in (dest, "*") or (dest and to == "same"):
            values.append(float(value))
    return max(values)


def express_number(number: str) -> str:
    """'its number is a DHL Express number' when the number's format is an express service's, else ''."""
    best = validate(number).best
    if best is not None and best.valid and best.express:
        return f"its number is a {best.name} number"
    return ""


def express_reason(number: str, events: list[dict], export_codes: tuple[str, ...], import_codes: tuple[str, ...],
                   linehaul_codes: tuple[str, ...]) -> str:
    """Why the parcel travels as express ('' when it does not): its number's service, or its scans' chain."""
    if reason := express_number(number):
        return reason
    codes = [e["raw_code"] for e in events if isinstance(e.get("raw_code"), str)]

    def seen(patterns: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(c, p) for c in codes for p in patterns)

    if seen(export_codes) and seen(linehaul_codes) and seen(import_codes):
        return "its scans show export customs, line-haul and import customs"
    return ""


@rule(CODE, VERSION, "medium")
def check(ctx: RuleContext) -> list[Finding]:
    """Delivered faster than any real parcel of its service class on that route, or with no movement scans."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    routes: dict = cfg.get("routes", {})
    express_routes: dict = cfg.get("express_routes", {})
    default = float(cfg.get("default_min_days", 3.0))
    express_default = float(cfg.get("express_min_days", 0.75))
    no_transit_max = float(cfg.get("no_transit_max_days", 10))
    linehaul = tuple(cfg.get("linehaul_codes", DEFAULT_LINEHAUL))
    kinds = ctx.kinds
    o = ctx.tracked
    # only the columns this rule reads, before any row is picked: a pick copies every column it carries
    o = o[["order_id", "tracking_number", "dest_country", "delivered_jd", "first_event_jd", "shipped_jd",
           "first_scan_jd", "n_transit", "n_export", "n_import"]]
    o = o[o["delivered_jd"].notna().to_numpy()]
    # the longest journey the records allow: from the earliest of "shipped", the first event, the first scan
    # (cheap mail often hides its early scans; a fake is quick from every one of them)
    start = np.fmin(np.fmin(o["first_event_jd"].to_numpy(), o["shipped_jd"].to_numpy()), o["first_scan_jd"].to_numpy())
    duration = o["delivered_jd"].to_numpy() - start
    # the largest minimum of either service class on any route to the destination: only a journey shorter than
    # that can be too fast (which one applies needs the events: the origin, the express chain)
    longest = per_distinct(o["dest_country"], lambda text: max(
        route_maximum(routes, normalize_country(text), default),
        route_maximum(express_routes, normalize_country(text), express_default)), float)
    fast = duration < longest
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
        delivered = next((e for e in ev if e["status"] == "delivered"), None)
        if delivered is None:
            continue
        origin = normalize_country(ev[0]["country"])
        dest = normalize_country(row.dest_country)
        why_express = express_reason(row.tracking_number, ev, kinds.export_codes, kinds.import_codes, linehaul)
        service = "express" if why_express else "postal"
        minimum = (route_minimum(express_routes, origin, dest, express_default) if why_express
                   else route_minimum(routes, origin, dest, default))
        physical = [e for e in ev if e["status"] not in ("info_received", "not_found", "unknown")]
        accepted = physical[0] if physical and physical[0]["id"] != delivered["id"] else ev[0]
        reasons = []
        if dur < minimum:
            reasons.append(f"delivered {dur:.1f} days after shipping, faster than the {minimum:g}-day {service} "
                           f"minimum for {origin or '?'} to {dest or '?'}")
            if not why_express:
                reasons.append("with no express chain of export customs, line-haul and import customs scans")
        if row.n_transit == 0 and dur < no_transit_max:
            reasons.append("delivered with no in-transit scan at all")
        if not reasons:
            continue
        text = (f"{'; '.join(reasons)}: first scan in {place_text(accepted['city'], accepted['postcode'], accepted['country'])} "
                f"on {stamp(accepted['occurred_at'])}, delivered in "
                f"{place_text(delivered['city'], delivered['postcode'], delivered['country'])} on {stamp(delivered['occurred_at'])}")
        evidence = Evidence(facts={
            "tracking_number": row.tracking_number, "transit_days": round(float(dur), 2),
            "route": f"{origin or '?'}->{dest or '?'}", "service_class": service,
            "express_because": why_express or None, "route_min_days": minimum,
            "in_transit_scans": int(row.n_transit), "export_customs_scans": int(row.n_export),
            "import_customs_scans": int(row.n_import),
        }).add_events(accepted, delivered)
        severity = "high" if row.n_transit == 0 or dur < np.float64(minimum) / 3 else str(cfg.get("severity", "medium"))
        findings.append(Finding(row.order_id, CODE, severity, text, evidence.as_dict(), version))
    return findings
