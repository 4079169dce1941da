"""accepted_before_order: the carrier's first scan is earlier than the order (a day of slack for time zones)."""

from __future__ import annotations

from detectors.rules import Evidence, Finding, RuleContext, place_text, rule, stamp
from detectors.view import jd_to_text

CODE = "accepted_before_order"
VERSION = "1"


@rule(CODE, VERSION, "high")
def check(ctx: RuleContext) -> list[Finding]:
    """The carrier had the parcel before the buyer paid: the number belongs to an older parcel."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    slack = float(cfg.get("slack_hours", 24)) / 24
    o = ctx.tracked
    hits = o[(o["first_event_jd"] < o["ordered_jd"] - slack).to_numpy()]
    if hits.empty:
        return []
    events = ctx.events(hits["tracking_number"])
    findings = []
    for row in hits.itertuples(index=False):
        e = next((e for e in events.get(row.tracking_number, []) if e["status"] not in ("not_found", "unknown")), None)
        if e is None:
            continue
        lead = row.ordered_jd - row.first_event_jd
        what = str(e["description"] or e["status"]).strip()
        findings.append(Finding(
            row.order_id, CODE, str(cfg.get("severity", "high")),
            f"first tracking event '{what}' in {place_text(e['city'], e['postcode'], e['country'])} on "
            f"{stamp(e['occurred_at'])}, {lead:.1f} days before the order was placed on {stamp(jd_to_text(row.ordered_jd))}",
            Evidence(facts={"tracking_number": row.tracking_number, "first_scan_at": e["occurred_at"],
                            "ordered_at": jd_to_text(row.ordered_jd), "days_before_order": round(lead, 2)})
            .add_events(e).as_dict(),
            version,
        ))
    return findings
