"""invalid_tracking_number: the number claims a known format and fails it (check digit, issuing country,
service rule), or the carrier keeps answering "not found" long after the grace period.

A number of no known format is not evidence on its own (carriers we have no data for issue such numbers):
it gets at most a low-severity note, and only when nothing was heard of it by the end of the grace period.
Scans shown for a number prove it is real: a number with physical scans is never flagged here.
The configured carriers' `number_pattern`s come in as settings['invalid_tracking_number']['carrier_patterns'].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.rules import Finding, RuleContext, day, rule
from detectors.tracking_numbers import valid_many, validate, verdicts_many

CODE = "invalid_tracking_number"
VERSION = "2"


def _not_found_deadlines(ctx: RuleContext) -> pd.Series:
    cfg = ctx.settings.get(CODE, {})
    o = ctx.tracked
    pending = o[(o["n_scans"] == 0) & o["shipped_jd"].notna()]
    return pd.Series((pending["shipped_jd"] + float(cfg.get("not_found_grace_days", 20))).to_numpy(),
                     index=pending["order_id"].to_numpy())


def _verdicts(o: pd.DataFrame, patterns: dict[str, str]) -> np.ndarray:
    """Per row: valid / invalid / unknown. Rows already known valid (computed once with the chat corrections)
    skip the work; the rest are judged once per distinct number, with the carrier files' patterns."""
    numbers = o["tracking_number"].to_numpy(dtype=object)
    if "number_valid" in o:
        known = o["number_valid"].to_numpy(dtype=bool)
    else:
        distinct = list(dict.fromkeys(numbers))
        valid_of = dict(zip(distinct, valid_many(distinct), strict=True))
        known = np.fromiter((valid_of[n] for n in numbers), dtype=bool, count=len(numbers))
    out = np.full(len(numbers), "valid", dtype=object)
    rest = np.flatnonzero(~known)
    if len(rest):
        distinct = list(dict.fromkeys(numbers[rest].tolist()))
        verdict_of = dict(zip(distinct, verdicts_many(distinct, patterns), strict=True))
        out[rest] = [verdict_of[n] for n in numbers[rest].tolist()]
    return out


@rule(CODE, VERSION, "high", deadlines=_not_found_deadlines)
def check(ctx: RuleContext) -> list[Finding]:
    """The number cannot be a real parcel's: it fails the format it claims, or the carrier never knew it."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    patterns = dict(cfg.get("carrier_patterns") or {})
    grace = float(cfg.get("not_found_grace_days", 20))
    o = ctx.tracked
    verdict = _verdicts(o, patterns)
    unscanned = o["n_scans"].fillna(0).to_numpy() == 0
    late = (ctx.as_of_jd - o["shipped_jd"].to_numpy()) >= grace
    min_polls = int(cfg.get("not_found_min_polls", 3))
    not_found = ((o["shipment_state"].fillna("") == "not_found").to_numpy()
                 | (o["not_found_count"].fillna(0) >= min_polls).to_numpy())
    findings: list[Finding] = []

    for row in o[(verdict == "invalid") & unscanned].itertuples(index=False):
        v = validate(row.tracking_number, patterns)
        findings.append(Finding(
            row.order_id, CODE, str(cfg.get("severity", "high")),
            f"tracking number {v.number} has the shape of {v.best.name} but is not valid: {v.reason()}",
            {"tracking_number": v.number, "verdict": "invalid", "format": v.best.format,
             "carrier": v.best.carrier, "reason": v.reason(), "event_ids": []},
            version,
        ))

    for row in o[(verdict == "unknown") & unscanned & late & ~not_found].itertuples(index=False):
        seen = f"{int(row.n_events)} non-physical event(s)" if row.n_events and row.n_events > 0 else "no event at all"
        findings.append(Finding(
            row.order_id, CODE, str(cfg.get("unknown_severity", "low")),
            f"tracking number {row.tracking_number} matches no known carrier format, and {grace:g} days after "
            f"shipping on {day(row.shipped_jd)} it shows {seen}",
            {"tracking_number": row.tracking_number, "verdict": "unknown", "shipped_at": day(row.shipped_jd),
             "event_ids": []},
            version,
        ))

    # a number the carrier does not know, long after shipping (a single failed fetch never counts)
    hits = o[(verdict != "invalid") & not_found & late & unscanned]
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
