"""tracking_reused: one tracking number on orders of different buyers or addresses.

One buyer's (or one address's) orders placed within the consolidation window and sharing a number are a
consolidated parcel, not reuse. Each group of consolidated orders is one "party"; two or more parties on
one number is a reuse cluster, and every order in it is flagged with the other orders as evidence.
"""

from __future__ import annotations

import pandas as pd

from detectors.places import Place
from detectors.rules import Finding, RuleContext, day, rule

CODE = "tracking_reused"
VERSION = "1"


def _parties(cluster: pd.DataFrame, window: float) -> list[list[int]]:
    """Split a cluster's rows into consolidation groups (same buyer or same address, close in time)."""
    rows = cluster.sort_values(["ordered_jd", "order_id"])
    groups: list[dict] = []
    for idx, r in zip(rows.index, rows.itertuples(index=False), strict=True):
        address = Place.of(r.dest_country, r.dest_city, r.dest_postcode)
        key = (address.country, address.postcode or address.city)
        for g in groups:
            same_party = r.buyer_id in g["buyers"] or (all(key) and key in g["addresses"])
            if same_party and r.ordered_jd - g["first"] <= window:
                g["rows"].append(idx)
                g["buyers"].add(r.buyer_id)
                g["addresses"].add(key)
                break
        else:
            groups.append({"rows": [idx], "buyers": {r.buyer_id}, "addresses": {key}, "first": r.ordered_jd})
    return [g["rows"] for g in groups]


@rule(CODE, VERSION, "medium")
def check(ctx: RuleContext) -> list[Finding]:
    """The same number on orders of different buyers (not one buyer's consolidated orders)."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    window = float(cfg.get("consolidation_window_days", 6))
    many = int(cfg.get("many_buyers", 3))
    o = ctx.tracked
    shared = o[o["n_orders_on_number"] > 1]
    findings: list[Finding] = []
    for number, cluster in shared.groupby("tracking_number", sort=True):
        if len(cluster) < 2:
            continue
        parties = _parties(cluster, window)
        if len(parties) < 2:
            continue
        buyers = sorted(set(cluster["buyer_id"]))
        severity = str(cfg.get("many_severity", "high")) if len(buyers) >= many else str(cfg.get("severity", "medium"))
        first, last = cluster["ordered_jd"].min(), cluster["ordered_jd"].max()
        cities = sorted({str(c) for c in cluster["dest_city"].dropna() if str(c).strip()})
        for row in cluster.itertuples(index=False):
            others = sorted(set(cluster["order_id"]) - {row.order_id})
            findings.append(Finding(
                row.order_id, CODE, severity,
                f"tracking number {number} is also on {len(others)} other order(s) of {len(buyers)} different "
                f"buyers ({len(parties)} separate parties, orders placed {day(first)} to {day(last)}"
                + (f", shipping to {', '.join(cities[:5])}" if cities else "") + ")",
                {"tracking_number": number, "reuse_cluster": sorted(cluster["order_id"]), "other_orders": others,
                 "buyers": len(buyers), "parties": len(parties), "event_ids": []},
                version,
            ))
    return findings
