"""complaint.txt: the Trade Rules form's answers and the strongest facts, in at most 1000 characters.

The platform's complaint field takes 1000 characters of English. The form's questions come first (short,
bounded answers), then the facts: active flag explanations, highest severity first, each cut to fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from tracker.cases.settings import SEVERITY_RANK, CaseSettings

LIMIT = 1000
ELLIPSIS = "..."
_MIN_FACT = 40  # a fact cut shorter than this says nothing; stop instead


def _clip(text: str, width: int) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= width else text[: max(0, width - len(ELLIPSIS))].rstrip() + ELLIPSIS


def _sentence(text: str) -> str:
    """A fact as a sentence: capital first letter, final full stop."""
    text = _clip(text, 5 * LIMIT)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _answers(case: dict[str, Any], order: dict[str, Any], codes: set[str]) -> list[str]:
    completed = order.get("buyer_confirmed_at")
    received = (order.get("buyer_received") or "").strip().lower()
    tracking = order.get("tracking_number") or ""
    lines = [
        f"Order Number: {_clip(case['order_id'], 40)}",
        "Is your order completed or not? "
        + (f"Completed: receipt was confirmed on {completed[:10]}." if completed else "No, not completed."),
        "Did seller induce you to confirm receipt of delivery before the product arrived? "
        + ("Yes, the seller pushed me to confirm receipt early." if "seller_pressure" in codes
           else "Yes, I confirmed before any delivery scan." if "early_confirmation" in codes else "No."),
        "Have you received the product or not? "
        + ({"no": "No, the product has not arrived.", "yes": "Yes."}.get(received, "Not confirmed.")),
    ]
    if tracking:
        carrier = f" ({_clip(order['carrier'], 20)})" if order.get("carrier") else ""
        claim = (" The seller claims to have sent the goods, but this is not a valid tracking number for "
                 "this order." if case.get("reason") == "false_shipment" else "")
        lines.append(f"Tracking number: {_clip(tracking, 40)}{carrier}.{claim}")
    else:
        lines.append("Tracking number: none was provided by the seller.")
    return lines


def compose_complaint(
    case: dict[str, Any],
    order: dict[str, Any],
    flags: Sequence[dict[str, Any]],
    settings: CaseSettings,
    *,
    scrub: Callable[[str], str] = lambda s: s,
    limit: int = LIMIT,
) -> str:
    """The complaint text: never longer than `limit` characters, whatever the case holds."""
    active = [f for f in flags if not f.get("resolved_at")]
    codes = {f["code"] for f in active}

    def strength(flag: dict[str, Any]) -> tuple:
        # severity first; then the order of reasons and of their flags in data (strongest listed first)
        reason = settings.reason_for_flag(flag["code"])
        rank = (reason.position, reason.flags.index(flag["code"])) if reason else (99, 99)
        return (-SEVERITY_RANK.get(flag["severity"], 0), *rank, flag["code"])

    text = "\n".join(scrub(line) for line in _answers(case, order, codes))
    facts = [scrub(_sentence(f["explanation"])) for f in sorted(active, key=strength) if f.get("explanation")]
    if facts:
        text += "\nFacts:"
    for fact in facts:
        room = limit - len(text) - len("\n- ")
        if room < _MIN_FACT:
            break
        text += "\n- " + _clip(fact, room)
    # the answers alone are bounded, but the limit is a promise: never exceed it
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS
