"""Scores worked out again from the books' binned input, without reading the orders: the orders whose own inputs
did not change, but whose seller's or buyer's statistics did (`tracker.detection.rescoring` says which).

Such an order's model input is its stored bytes (`detectors.classifier.BinnedInput`) with its seller and buyer
columns binned again from the books' statistics, so its score is the one a full rescore gives, bit for bit. Its
reasons too: their weights are the classifier's contributions of those bytes (the trees' paths only compare
bins), and their texts are the seller's and buyer's phrases made from the new statistics, the flags' fixed ones,
and every other group's phrase as the order's stored reasons give it (its own values did not change). An order
whose reasons would need a phrase its stored reasons do not hold is left to be read whole.

An order whose score and reasons come out as they are stored is not written again (most orders whose seller
crossed a threshold somewhere in the trees never reach that split).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from detectors import seller_aggregates
from detectors.features import FLAG_CODES
from detectors.reasons import describe_many, group_parts, reasons_of
from tracker.detection import score_writer, store
from tracker.detection.seller_books import OTHER_CODES, Books, BuyerStats, codes_text, pick

BUYER_FEATURES = ("buyer_n_orders", "buyer_not_received_other", "buyer_flagged_other")


@dataclass
class Quick:
    """What the quick rescoring found: the rows to write (order_id, score, codes, reasons, order_rowid), the
    entries (positions in the books) left to be read whole, and how many it worked out."""

    written: pd.DataFrame
    whole: np.ndarray
    worked_out: int


def rescore(conn: Any, walk: Any, classifier: Any, names: list[str], books: Books, rows: np.ndarray,
            sellers: seller_aggregates.SellerStats, buyers: BuyerStats, settings: dict[str, Any]) -> Quick | None:
    """Score these entries of the books (`rows`, positions) again from their bytes, their seller (`sellers`) and
    buyer (`buyers`) columns binned anew; update their scores in the books (not their bytes: see below). None: a
    value a byte cannot keep (every one is then read whole)."""
    min_score = float(settings.get("reasons_min_score", 0.1))
    entries = pick(books.entries, rows)
    binned = books.bins[rows].copy()
    columns = {**sellers.features(books.seller[rows], entries["bits"]), **buyers.features(entries)}
    probe = np.zeros((len(rows), len(names)))
    at = [j for j, name in enumerate(names) if name in columns]
    for j in at:
        probe[:, j] = columns[names[j]]
    if not walk.rebin(binned, probe, at):
        return None
    score = walk.fraud_probability(binned)
    old = entries["score"]
    high = score >= min_score
    # a low score stored as it is (to the digits a score is stored with) has no reasons either way: nothing to write
    stored_score = np.round(score, score_writer.SCORE_DIGITS)
    same_score = stored_score == np.round(old, score_writer.SCORE_DIGITS)
    changed = ~high & ~same_score
    # the stored rows of the high ones (their reasons) and of those whose codes the book cannot spell; the others
    # need only their order id
    other = (entries["codes"] & OTHER_CODES) != 0
    ids = _stored(conn, entries["order"][high | (changed & other)])
    whole = np.zeros(len(rows), dtype=bool)
    reasons = np.full(len(rows), "[]", dtype=object)
    if high.any() and hasattr(classifier, "contributions"):
        picked = np.flatnonzero(high)
        stored = [_phrases(ids.get(int(r), (None, "", "[]"))[2]) for r in entries["order"][picked].tolist()]
        contributions, _ = walk.contributions(binned[picked])
        flags = [j for j, name in enumerate(names) if name.startswith("flag_")]
        bit = {f"flag_{code}": np.uint16(1 << k) for k, code in enumerate(FLAG_CODES)}
        on = np.column_stack([(entries["flags"][picked] & bit[names[j]]) != 0 for j in flags]) if flags else \
            np.zeros((len(picked), 0), dtype=bool)
        parts = group_parts(contributions, on, names)
        values = pd.DataFrame({name: columns[name][picked] for name in names if name in columns},
                              index=pd.RangeIndex(len(picked)))

        def phrases(group: str, positions: np.ndarray) -> list[str | None]:
            if group.startswith("flag:") or group == "flag_count":
                return describe_many(group, values.iloc[positions])
            if group in ("seller", "buyer"):
                return describe_many(group, values.iloc[positions])
            return [stored[p].get(group) for p in positions.tolist()]

        texts = reasons_of(parts, phrases, max_reasons=int(settings.get("max_reasons", 3)),
                           min_contribution=float(settings.get("min_contribution", 0.1)))
        unknown = np.array([t is None for t in texts], dtype=bool)
        whole[picked[unknown]] = True
        reasons[picked] = np.array(["[]" if t is None else t for t in texts], dtype=object)
        same = np.array([not unknown[k] and same_score[p] and texts[k] == ids.get(int(r), (None, "", None))[2]
                         for k, (p, r) in enumerate(zip(picked.tolist(), entries["order"][picked].tolist(),
                                                        strict=True))], dtype=bool)
        changed[picked] = ~unknown & ~same
    elif high.any():
        changed |= high
    # the scores of every row worked out (a row read whole gets them anew there); not their bytes: only the seller
    # and buyer columns moved, and those are binned again from the books' statistics before every use, so the
    # books need not append the entry of an order whose score stayed
    books.entries["score"][rows] = score
    write = np.flatnonzero(changed & ~whole)
    rowids = entries["order"][write]
    order_ids = _order_ids(conn, rowids[~np.isin(rowids, np.fromiter(ids, dtype=np.int64, count=len(ids)))])
    spelt = codes_text(entries["codes"][write] & ~OTHER_CODES, FLAG_CODES)
    found = [ids.get(r) or ((order_ids[r], spelt[k], None) if r in order_ids and not other[write[k]] else None)
             for k, r in enumerate(rowids.tolist())]
    kept = np.array([f is not None for f in found], dtype=bool)
    whole[write[~kept]] = True  # no longer in the store as expected: read whole
    write = write[kept]
    found = [f for f in found if f is not None]
    written = pd.DataFrame({"order_id": pd.Series([f[0] for f in found], dtype=object),
                            "score": score[write], "codes": pd.Series([f[1] for f in found], dtype=object),
                            "reasons": pd.Series(reasons[write], dtype=object),
                            "order_rowid": entries["order"][write]})
    return Quick(written, rows[whole], len(rows))


def _stored(conn: Any, rowids: np.ndarray) -> dict[int, tuple[str, str, str]]:
    """Per order rowid (those with a stored score): its order id and stored codes and reasons."""
    if not len(rowids):
        return {}
    # in rowid order: neighbouring orders share pages
    return {r[0]: (r[1], r[2] or "", r[3] or "[]") for r in conn.execute(
        "SELECT j.value, o.order_id, s.codes, s.reasons FROM json_each(?) j CROSS JOIN orders o ON o.rowid = j.value "
        "JOIN scores s ON s.order_id = o.order_id", [store.as_json(np.unique(rowids).tolist())])}


def _order_ids(conn: Any, rowids: np.ndarray) -> dict[int, str]:
    """Per order rowid (of the orders still in the store): its order id."""
    if not len(rowids):
        return {}
    return dict(conn.execute("SELECT j.value, o.order_id FROM json_each(?) j CROSS JOIN orders o ON o.rowid = j.value",
                             [store.as_json(np.unique(rowids).tolist())]))


def _phrases(reasons: str) -> dict[str, str]:
    """Reason group -> its phrase, in stored reasons (none where they cannot be read)."""
    try:
        return {str(r["feature"]): str(r["text"]) for r in json.loads(reasons or "[]")}
    except (ValueError, TypeError, KeyError):
        return {}
