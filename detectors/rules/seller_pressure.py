"""seller_pressure: seller messages push the buyer to confirm receipt, close a dispute, or take payment or a
refund off the platform.

Scored by the larger of `detectors.message_model.predict_pressure` (TF-IDF + logistic regression, for
paraphrases no phrase list holds) and the transparent phrase baseline in `detectors.pressure` (which alone
is used when the model cannot be loaded). Messages that touch no pressure topic are not scored at all.
"""

from __future__ import annotations

import importlib
import logging
import re

import pandas as pd

from detectors import pressure
from detectors.rules import Finding, RuleContext, rule, stamp
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
                   ) -> tuple[list[float], str]:
    """Pressure score per message (0-1) and what scored it: 'model+phrases' or 'phrases'.

    Only messages that touch a pressure topic (confirming, disputes, payment, contact details: `topics`,
    lower-case substrings) are scored at all; the score is the larger of the model's probability and the
    phrase baseline's 0/1.
    """
    topic = re.compile("|".join(re.escape(t) for t in topics), re.I)
    scores = [0.0] * len(texts)
    idx = [i for i, t in enumerate(texts) if topic.search(t)]
    if not idx:
        return scores, method
    candidates = [texts[i] for i in idx]
    phrase_scores = pressure.predict_pressure(candidates)
    used = "phrases"
    if method == "model":
        try:
            message_model = importlib.import_module("detectors.message_model")
            model_scores = message_model.predict_pressure(candidates)
            phrase_scores = [max(a, b) for a, b in zip(model_scores, phrase_scores, strict=True)]
            used = "model+phrases"
        except Exception as exc:  # noqa: BLE001 - any failure to load the model falls back, visibly
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
    scores, method = score_messages(texts, str(cfg.get("method", "model")),
                                    tuple(cfg.get("topics", DEFAULT_TOPICS)))
    threshold = float(cfg.get("model_threshold", 0.7))
    messages = messages.assign(score=scores)
    hits = messages[messages["score"] >= threshold]
    # an honest phrasing ("contact us before opening a dispute") with no pressure phrase is not pressure
    # unless the model is very sure
    override = float(cfg.get("honest_override", 0.9))
    veto = [pressure.is_honest(t) and not pressure.pressure_kinds(t) and s < override
            for t, s in zip(hits["text"], hits["score"], strict=True)]
    hits = hits[~pd.Series(veto, index=hits.index, dtype=bool)]
    findings = []
    for order_id, group in hits.groupby("order_id", sort=True):
        top = group.sort_values(["score", "id"], ascending=[False, True]).iloc[0]
        quote = " ".join(str(top["text"]).split())
        quote = quote if len(quote) <= 160 else quote[:157] + "..."
        kinds = pressure.pressure_kinds(top["text"])
        what = " and ".join(_ASKS.get(k, k) for k in kinds)
        text = (f"seller message on {stamp(jd_to_text(top['sent_jd']))} asks the buyer to {what}"
                if kinds else f"seller message on {stamp(jd_to_text(top['sent_jd']))} pressures the buyer")
        text += f" ({method} score {top['score']:.2f}): \"{quote}\""
        if len(group) > 1:
            text += f"; {len(group) - 1} more such message(s)"
        findings.append(Finding(
            str(order_id), CODE, str(cfg.get("severity", "medium")), text,
            {"message_ids": [int(i) for i in group["id"]], "scores": [round(float(s), 3) for s in group["score"]],
             "method": method, "kinds": kinds, "event_ids": []},
            version,
        ))
    return findings



