"""seller_pressure: seller messages push the buyer to confirm receipt, close a dispute, or take payment or a
refund off the platform.

Scored by the larger of the message model's probability (`detectors.message_model`: TF-IDF + logistic
regression, for paraphrases no phrase list holds; handed over as `ctx.pressure`) and the transparent phrase
baseline in `detectors.pressure` (which alone is used when there is no model or it fails). Messages that
touch no pressure topic are not scored at all.
"""

from __future__ import annotations

import logging

import numpy as np

from detectors import pressure
from detectors.rules import Finding, ModelRefused, Pressure, RuleContext, rule, stamp
from detectors.view import jd_to_text

CODE = "seller_pressure"
VERSION = "1"
log = logging.getLogger(__name__)
_ASKS = {"off-platform payment": "take payment or a refund off the platform"}


DEFAULT_TOPICS = (
    "confirm", "comfirm", "confrim", "receiv", "reciev", "reciv", "recieve", "finish", "complete", "click",
    "button", "dispute", "dispit", "disput", "refund", "claim", "case", "complain", "close", "cancel",
    "withdraw", "pay", "money", "transfer", "western", "whatsapp", "wechat", "telegram", "email", "e-mail",
    "@", "card", "bank", "contact me", "add me", "mark",
)


def score_messages(texts: list[str], method: str = "model", topics: tuple[str, ...] = DEFAULT_TOPICS,
                   model: Pressure | None = None, kinds: dict[str, list[str]] | None = None) -> tuple[list[float], str]:
    """Pressure score per message (0-1) and what scored it: 'model+phrases' or 'phrases'.

    Only messages that touch a pressure topic (confirming, disputes, payment, contact details: `topics`,
    lower-case substrings) are scored at all; the score is the larger of the `model`'s probability and the
    phrase baseline's 0/1. `kinds`, when given, gets each scored text's kinds of pressure (the baseline's
    `pressure.pressure_kinds`), so a caller need not work them out again.
    """
    topic = pressure.Folded.of(pressure.any_of(topics))
    scores = [0.0] * len(texts)
    idx = [i for i, t in enumerate(texts) if topic.search(t)]
    if not idx:
        return scores, method
    candidates = [texts[i] for i in idx]
    found = [pressure.pressure_kinds(t) for t in candidates]  # the phrase baseline, as `predict_pressure` scores
    if kinds is not None:
        kinds.update(zip(candidates, found, strict=True))
    phrase_scores = [1.0 if k else 0.0 for k in found]
    used = "phrases"
    if method == "model":
        try:
            if model is None:
                raise LookupError("none was loaded")
            model_scores = model(candidates)
            phrase_scores = [max(a, b) for a, b in zip(model_scores, phrase_scores, strict=True)]
            used = "model+phrases"
        except ModelRefused:
            raise  # present but made with another scikit-learn: refused, not replaced by the phrases
        except Exception as exc:  # noqa: BLE001 - any failure of the model falls back, visibly
            log.warning("seller_pressure: message model unavailable (%s); using the phrase baseline", exc)
    for i, score in zip(idx, phrase_scores, strict=True):
        scores[i] = score
    return scores, used


@rule(CODE, VERSION, "medium")
def check(ctx: RuleContext) -> list[Finding]:
    """A seller message that pressures the buyer."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    messages = ctx.seller_messages
    if messages.empty:
        return []
    texts = [t if isinstance(t, str) else "" for t in messages["text"].to_numpy(dtype=object)]
    distinct = list(dict.fromkeys(texts))  # templated chats repeat: score each text once
    kinds_of: dict[str, list[str]] = {}
    distinct_scores, method = score_messages(distinct, str(cfg.get("method", "model")),
                                             tuple(cfg.get("topics", DEFAULT_TOPICS)), ctx.pressure, kinds_of)
    score_of = dict(zip(distinct, distinct_scores, strict=True))
    threshold = float(cfg.get("model_threshold", 0.7))
    # an honest phrasing ("contact us before opening a dispute") with no pressure phrase is not pressure
    # unless the model is very sure
    override = float(cfg.get("honest_override", 0.9))
    by_order: dict[str, list[tuple[float, int, float, str]]] = {}
    # only the messages scored at the threshold or above are looked at one by one (a few in a hundred)
    low = np.fromiter(map(score_of.__getitem__, texts), dtype=float, count=len(texts)) < threshold
    kept = np.flatnonzero(~low)
    ids, orders, sent = (messages[c].to_numpy()[kept].tolist() for c in ("id", "order_id", "sent_jd"))
    for message_id, order_id, sent_jd, text in zip(ids, orders, sent, [texts[i] for i in kept.tolist()], strict=True):
        score = score_of[text]
        if text not in kinds_of:
            kinds_of[text] = pressure.pressure_kinds(text)
        if score < override and not kinds_of[text] and pressure.is_honest(text):
            continue
        by_order.setdefault(str(order_id), []).append((score, int(message_id), float(sent_jd), text))
    findings = []
    for order_id in sorted(by_order):
        group = sorted(by_order[order_id], key=lambda m: (-m[0], m[1]))
        score, _, sent_jd, top_text = group[0]
        quote = " ".join(top_text.split())
        quote = quote if len(quote) <= 160 else quote[:157] + "..."
        kinds = kinds_of[top_text]
        what = " and ".join(_ASKS.get(k, k) for k in kinds)
        text = (f"seller message on {stamp(jd_to_text(sent_jd))} asks the buyer to {what}"
                if kinds else f"seller message on {stamp(jd_to_text(sent_jd))} pressures the buyer")
        text += f" ({method} score {score:.2f}): \"{quote}\""
        if len(group) > 1:
            text += f"; {len(group) - 1} more such message(s)"
        ordered = sorted(group, key=lambda m: m[1])
        findings.append(Finding(
            order_id, CODE, str(cfg.get("severity", "medium")), text,
            {"message_ids": [m[1] for m in ordered], "scores": [round(m[0], 3) for m in ordered],
             "method": method, "kinds": kinds, "event_ids": []},
            version,
        ))
    return findings



