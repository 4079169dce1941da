"""invalid_tracking_number: the number matches no carrier format, fails its check digit, names no real
issuing country, or the carrier keeps answering "not found" long after the grace period."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.rules import Finding, RuleContext, day, rule
from detectors.tracking_numbers import valid_many, validate

CODE = "invalid_tracking_number"
VERSION = "1"


def _not_found_deadlines(ctx: RuleContext) -> pd.Series:
    cfg = ctx.settings.get(CODE, {})
    o = ctx.tracked
    pending = o[(o["n_scans"] == 0) & o["shipped_jd"].notna()]
    return pd.Series((pending["shipped_jd"] + float(cfg.get("not_found_grace_days", 20))).to_numpy(),
                     index=pending["order_id"].to_numpy())


@rule(CODE, VERSION, "high", deadlines=_not_found_deadlines)
def check(ctx: RuleContext) -> list[Finding]:
    """The number cannot be a real parcel's: bad format/check digit/country, or persistently not found."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    o = ctx.tracked
    findings: list[Finding] = []
    if "number_valid" in o:  # computed once with the chat corrections
        is_valid = o["number_valid"].to_numpy(dtype=bool)
    else:
        numbers = o["tracking_number"].to_numpy(dtype=object)
        distinct = list(dict.fromkeys(numbers))
        valid_of = dict(zip(distinct, valid_many(distinct), strict=True))
        is_valid = np.fromiter((valid_of[n] for n in numbers), dtype=bool, count=len(numbers))
    bad = o[~is_valid]
    for row in bad.itertuples(index=False):
        v = validate(row.tracking_number)
        formats = ", ".join(sorted({m.format for m in v.matches})) or "none"
        findings.append(Finding(
            row.order_id, CODE, str(cfg.get("severity", "high")),
            f"tracking number {v.number} is not valid: {v.reason()}",
            {"tracking_number": v.number, "formats_matched": formats, "reason": v.reason(), "event_ids": []},
            version,
        ))

    # a valid-looking number the carrier does not know, long after shipping
    grace = float(cfg.get("not_found_grace_days", 20))
    min_polls = int(cfg.get("not_found_min_polls", 3))
    ok = o[is_valid]
    not_found = (ok["shipment_state"].fillna("") == "not_found") | (ok["not_found_count"] >= min_polls)
    late = (ctx.as_of_jd - ok["shipped_jd"]) >= grace
    hits = ok[not_found.to_numpy() & late.to_numpy() & (ok["n_scans"].to_numpy() == 0)]
    for row in hits.itertuples(index=False):
        findings.append(Finding(
            row.order_id, CODE, str(cfg.get("not_found_severity", "medium")),
            f"carrier {row.carrier or 'unknown'} answered 'not found' for {row.tracking_number} "
            f"{row.not_found_count} times and shows no scan, {grace:g} days after shipping on {day(row.shipped_jd)}",
            {"tracking_number": row.tracking_number, "not_found_count": int(row.not_found_count),
             "shipped_at": day(row.shipped_jd), "event_ids": []},
            version,
        ))
    return findings
