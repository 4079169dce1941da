"""Why an order scores what it scores: its top reasons, in log-odds, from the classifier's exact contributions.

The classifier splits each order's log-odds into a base value (what an average order starts from) plus one
contribution per feature (`detectors.classifier`: the trees' path contributions, the rules prior's terms,
weighted as the blend weighs them). They add up exactly, so a score of 0.999 still says what put it there. The
features are summed per reason group (one flag, the transit times, the seller's aggregates, ...); the flag
count's part is shared among the order's flags. An order scoring at least `min_score` keeps the groups that
raised its log-odds by at least `min_contribution`, the largest first, as JSON `[{"feature", "text",
"weight"}]` (weight in log-odds). No per-order loop: phrases are formatted per group over all its orders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors.features import FEATURE_GROUPS


def groups_of(features: Sequence[str]) -> dict[str, list[int]]:
    """Reason group -> the columns of `features` in it (the flag count has a group of its own)."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(features):
        groups.setdefault(FEATURE_GROUPS[name], []).append(index)
    return groups


def contributions_by_group(classifier: Any, matrix: np.ndarray, features: Sequence[str]
                           ) -> tuple[pd.DataFrame, float]:
    """Per row, each reason group's part of its log-odds, and the base value: base + a row's parts = its log-odds.
    The flag count's part goes to the row's flags in equal shares (to the group 'flag_count' when it has none)."""
    contributions, base = classifier.contributions(np.asfortranarray(matrix))
    names = list(features)
    flags = [j for j, name in enumerate(names) if name.startswith("flag_")]
    return group_parts(contributions, np.nan_to_num(matrix[:, flags]) > 0, names), float(base)


def group_parts(contributions: np.ndarray, on: np.ndarray, features: Sequence[str]) -> pd.DataFrame:
    """Per row, each reason group's part of the row's contributions (one column per feature of `features`), the
    flag count's part shared among the row's flags that are on (`on`: one column per flag feature, in the order of
    `features`)."""
    names = list(features)
    out: dict[str, np.ndarray] = {}
    for group, columns in groups_of(names).items():
        out[group] = contributions[:, columns].sum(axis=1)
    if "n_flags" in names and "flag_count" in out:
        flags = [j for j, name in enumerate(names) if name.startswith("flag_")]
        count = on.sum(axis=1)
        share = np.where(count > 0, out["flag_count"] / np.maximum(count, 1), 0.0)
        for k, j in enumerate(flags):
            out[FEATURE_GROUPS[names[j]]] = out[FEATURE_GROUPS[names[j]]] + np.where(on[:, k], share, 0.0)
        out["flag_count"] = np.where(count > 0, 0.0, out["flag_count"])
    return pd.DataFrame(out)


def explain(classifier: Any, features: pd.DataFrame, matrix: np.ndarray, score: np.ndarray, *, min_score: float,
            max_reasons: int, min_contribution: float) -> list[str]:
    """Top reasons per order as JSON text: the reason groups that raised its log-odds most (see the module)."""
    reasons = ["[]"] * len(score)
    rows = np.flatnonzero(score >= min_score)
    if not len(rows) or not hasattr(classifier, "contributions"):
        return reasons
    parts, _base = contributions_by_group(classifier, matrix[rows], list(features.columns))
    chosen = reasons_of(parts, lambda group, picked: describe_many(group, features.iloc[rows[picked]]),
                        max_reasons=max_reasons, min_contribution=min_contribution)
    for i, text in zip(rows.tolist(), chosen, strict=True):
        reasons[i] = text
    return reasons


def reasons_of(parts: pd.DataFrame, phrases: Any, *, max_reasons: int, min_contribution: float
               ) -> list[str | None]:
    """Per row of group parts (`group_parts`), its reasons as JSON text: the groups that raised its log-odds most.
    `phrases(group, rows)` gives the phrase of each of these rows (positions) for a group, None where it cannot
    (that row's reasons are then None)."""
    names = list(parts.columns)
    values = parts.to_numpy()
    best = np.argsort(-values, axis=1, kind="stable")[:, :max_reasons]
    weight = np.take_along_axis(values, best, axis=1)
    order, slot = np.nonzero(weight >= min_contribution)
    group = best[order, slot]
    weights = weight[order, slot]
    # each group's phrases over all its orders at once, then each order's reasons as JSON text
    phrase = np.empty(len(order), dtype=object)
    for j in np.unique(group).tolist():
        mask = group == j
        phrase[mask] = phrases(names[j], order[mask])
    unknown = np.zeros(len(parts), dtype=bool)
    missing = np.array([p is None for p in phrase.tolist()], dtype=bool)
    unknown[order[missing]] = True
    pieces = _reason_json([names[j] for j in group.tolist()], ["" if p is None else p for p in phrase.tolist()],
                          weights.tolist())
    out: list[str | None] = ["[]"] * len(parts)
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]]) if len(order) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(order)]
    for i, a, b in zip(order[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        out[i] = "[" + ", ".join(pieces[a:b]) + "]"
    for i in np.flatnonzero(unknown).tolist():
        out[i] = None
    return out


def _reason_json(features: list[str], phrases: list[str], weights: list[float]) -> list[str]:
    """`json.dumps({"feature": f, "text": phrase, "weight": round(w, 3)})` per reason, character for character,
    without building a dict per reason."""
    text = json.encoder.encode_basestring_ascii  # what json.dumps uses for strings (ensure_ascii)
    quoted = {name: text(name) for name in set(features)}
    return ['{"feature": ' + quoted[f] + ', "text": ' + text(p) + ', "weight": ' + _number(round(w, 3)) + "}"
            for f, p, w in zip(features, phrases, weights, strict=True)]


def _number(value: float) -> str:
    """A float as json.dumps writes it."""
    return repr(value) if value - value == 0 else json.dumps(value)


def _values(rows: pd.DataFrame, name: str) -> list[float | None]:
    """A feature column as Python floats, None where missing (or where the model does not use the feature)."""
    if name not in rows.columns:
        return [None] * len(rows)
    values = rows[name].to_numpy(dtype=float)
    return [None if v != v else v for v in values.tolist()]


def _clauses(*parts: list[str | None]) -> list[str]:
    """Per order, its non-empty clauses joined with commas."""
    return [", ".join(p for p in row if p) for row in zip(*parts, strict=True)]


def describe_many(group: str, rows: pd.DataFrame) -> list[str]:
    """One English phrase per order (a row of features) for a reason group, with the order's own numbers,
    formatted column by column (a number the model does not use is left out)."""
    if group.startswith("flag:"):
        return [f"rule flag {group[5:]}"] * len(rows)

    def v(name: str) -> list[float | None]:
        return _values(rows, name)

    def count(name: str) -> list[int | None]:
        return [None if x is None else int(x) for x in v(name)]

    if group == "transit":
        return [("no delivered scan yet" if days is None and ratio is None
                 else _clauses([f"delivered {days:.1f} days after the first carrier event" if days is not None
                                else None,
                                f"{ratio:.0%} of the typical transit to this destination" if ratio is not None
                                else None])[0])
                for days, ratio in zip(v("accept_to_delivered_days"), v("transit_vs_typical"), strict=True)]
    if group == "first_scan":
        return ["no carrier event yet" if days is None else f"first carrier event {days:+.1f} days from the order"
                for days in v("order_to_first_scan_days")]
    if group == "customs":
        return [("no customs scan" if not has else "customs scans") if e is None
                else f"{e} export and {i or 0} import customs scans"
                for e, i, has in zip(count("n_export"), count("n_import"), v("has_customs"), strict=True)]
    if group == "scans":
        return _clauses([None if s is None else f"{s} physical scans" for s in count("n_scans")],
                        [None if e is None else f"{e} events" for e in count("n_events")],
                        [None if t is None else f"{t} in transit" for t in count("n_transit")])
    if group == "stale":
        return [f"no new scan for {quiet:.0f} days" if quiet is not None else f"order {age or 0:.0f} days old"
                for quiet, age in zip(v("days_since_last_event"), v("order_age_days"), strict=True)]
    if group == "destination":
        text = {0.0: "another country", 0.5: "another city or postcode", 1.0: "the right country only",
                2.0: "the right city", 3.0: "the right postcode"}
        return ["delivered scan at " + (text.get(level, "an unknown place") if level is not None else "no known place")
                for level in v("dest_match_level")]
    if group == "confirmation":
        return ["buyer confirmed receipt before any delivered scan" if early
                else f"buyer confirmed {days:.1f} days after the delivered scan" if days is not None
                else "buyer has not confirmed receipt"
                for early, days in zip(v("confirmed_before_delivery"), v("confirm_minus_delivered_days"), strict=True)]
    if group == "buyer_says":
        said = {1.0: "buyer says it arrived", 0.0: "buyer says it did not arrive"}
        return [said.get(x, "buyer has not said") for x in v("buyer_received")]
    if group == "reuse":
        return _clauses([None if b is None else f"tracking number on orders of {b} buyers"
                         for b in count("buyers_on_number")],
                        [None if o is None else f"{o} orders" for o in count("orders_on_number")])
    if group == "messages":
        return [f"seller messages: pressure probability {p or 0:.0%}" for p in v("msg_pressure_max")]
    if group == "seller":
        clauses = _clauses(
            [None if r is None else f"{r:.0%} of their other orders flagged" for r in v("seller_flag_rate")],
            [None if r is None else f"{r:.0%} reuse numbers" for r in v("seller_reuse_share")],
            [None if r is None else f"{r:.0%} not received" for r in v("seller_not_received_share")],
            [None if r is None else f"median transit {r:.0%} of the typical" for r in v("seller_transit_vs_typical")],
            [None if r is None else f"{r:.0%} delivered fast" for r in v("seller_fast_share_vs_typical")])
        return ["seller: " + (c or "their other orders") for c in clauses]
    if group == "buyer":
        return _clauses([None if f is None else f"buyer's other orders: {f} flagged" for f in count("buyer_flagged_other")],
                        [None if r is None else f"{r} not received" for r in count("buyer_not_received_other")])
    if group == "flag_count":
        return ["no rule flag"] * len(rows)
    if group == "delivery":
        return ["delivered" if d else "not delivered" for d in v("delivered")]
    if group == "order":
        return [f"promised {d or 0:.0f} days" for d in v("promised_days")]
    return [group] * len(rows)
