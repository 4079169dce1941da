"""`tracker case show` as text: the case, the order, why it is suspicious, what is due, what happened."""

from __future__ import annotations

import json
import math
from typing import Any

from tracker.cases.timeline import TIMELINE


def _reason_line(item: Any) -> str:
    """One entry of scores.reasons, whatever shape the classifier gives it."""
    if isinstance(item, dict):
        name = item.get("feature") or item.get("name") or item.get("code") or item.get("reason")
        value = item.get("contribution", item.get("weight", item.get("value")))
        text = item.get("explanation") or item.get("text")
        parts = [str(name) if name is not None else json.dumps(item, sort_keys=True)]
        if value is not None:
            parts.append(f"{value:+.2f}" if isinstance(value, int | float) else str(value))
        if text:
            parts.append(str(text))
        return "  ".join(parts)
    if isinstance(item, list | tuple):
        return "  ".join(str(v) for v in item)
    return str(item)


def render_case(detail: dict[str, Any], *, top_reasons: int = 5) -> str:
    case, order = detail["case"], detail["order"] or {}
    lines = [
        f"Case {case['id']}  order {case['order_id']}",
        f"  status:   {case['status']} ({case['status_label']}; My Reports filter: {case['filter']})",
        f"            next: {', '.join(case['allowed_next']) or 'none (terminal)'}",
        f"  category: {case['category']} ({case['category_label']})",
        f"  reason:   {case['reason'] or '-'}" + (f" ({case['reason_label']})" if case.get("reason_label") else ""),
        f"  opened:   {case['opened_at']}   updated: {case['updated_at']}",
        "",
        "Order",
    ]
    for key in ("buyer_id", "seller_id", "ordered_at", "shipped_at", "promised_days", "buyer_confirmed_at",
                "buyer_received", "tracking_number", "carrier", "dest_country", "dest_city", "dest_postcode",
                "amount", "currency", "item_title"):
        if order.get(key) not in (None, ""):
            lines.append(f"  {key}: {order[key]}")
    lines += ["", "Flags"]
    for flag in detail["flags"] or []:
        state = f" (resolved {flag['resolved_at']})" if flag["resolved_at"] else ""
        lines.append(f"  [{flag['severity']}] {flag['code']}{state}: {flag['explanation']}")
    if not detail["flags"]:
        lines.append("  none")
    score = detail["score"]
    lines += ["", "Score"]
    if score:
        value = float(score["score"])
        odds = f"  (log-odds {math.log(value / (1 - value)):+.2f})" if 0 < value < 1 else ""
        lines.append(f"  {value:.3f}{odds}" + (f"  model {score['model_id']}" if score.get("model_id") else ""))
        by = score.get("scored_by")
        if by:
            lines.append(f"  scored by {by['summary']}")
        reasons = score["reasons"] if isinstance(score["reasons"], list) else [score["reasons"]]
        if reasons:
            base = by.get("base_log_odds") if by else None
            lines.append("  reasons, in log-odds" + (f" added to a base of {base:+.2f} (an average order)"
                                                     if base is not None else "") + ":")
        for item in reasons[:top_reasons]:
            lines.append(f"    {_reason_line(item)}")
    else:
        lines.append("  not scored")
    lines += ["", "Deadlines"]
    for deadline in detail["deadlines"]:
        mark = "passed" if deadline["passed"] else ("NEXT" if deadline["due_at"] == case["next_deadline_at"] else "")
        lines.append(f"  {deadline['due_at']}  {deadline['name']:<20} {deadline['label'] or ''}  {mark}".rstrip())
    if not detail["deadlines"]:
        lines.append("  none")
    lines += ["", "Dispute timeline"]
    recorded = [(option.lstrip("-"), case.get(column)) for column, option in TIMELINE.items() if case.get(column)]
    for name, value in recorded:
        lines.append(f"  {name}: {value}")
    if case.get("outcome"):
        lines.append(f"  outcome: {case['outcome']}")
    if case.get("coupon_value") is not None:
        lines.append(f"  coupon value: {case['coupon_value']}")
    if not recorded and not case.get("outcome"):
        lines.append("  nothing recorded")
    lines += ["", f"Tracking ({len(detail['tracking_events'])} events)"]
    for event in detail["tracking_events"]:
        lines.append(f"  {event['occurred_at']}  {event['status']:<16} {event['description'] or ''}"
                     + (f"  @ {event['location']}" if event.get("location") else ""))
    lines += ["", "History"]
    for item in detail["history"]:
        move = f" {item['from_status'] or ''} -> {item['to_status']}" if item["to_status"] else ""
        data = f" {json.dumps(item['data'], sort_keys=True)}" if item["data"] and item["kind"] != "status" else ""
        note = f" — {item['note']}" if item["note"] else ""
        lines.append(f"  {item['at']}  {item['actor']}  {item['kind']}{move}{note}{data}")
    return "\n".join(lines) + "\n"
