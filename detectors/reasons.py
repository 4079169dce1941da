"""Why an order scores what it scores: its top reasons, worked out from the classifier and its features.

For an order scoring at least `min_score`, each feature group (one flag, the transit times, the seller's
aggregates, ...) is set back to the training population's median and the order rescored; the groups whose
reset lowers the score most are its top reasons, as JSON `[{"feature", "text", "weight"}]`. One batched
prediction per group: no per-order loop. When no single reset moves a score (several flags that each
suffice), those flags share the drop of resetting them all together. Phrases are formatted per group over
all its orders (`describe_many`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from detectors.classifier import fraud_probability
from detectors.features import FEATURE_GROUPS, FEATURES


def _groups() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(FEATURES):
        groups.setdefault(FEATURE_GROUPS[name], []).append(index)
    return groups


def explain(classifier: Any, features: pd.DataFrame, matrix: np.ndarray, score: np.ndarray, *, min_score: float,
            max_reasons: int, min_contribution: float) -> list[str]:
    """Top reasons per order as JSON text: the feature groups whose reset to the median lowers the score most.

    An order whose score rests on several findings that each suffice (no single reset moves it) is explained
    by those flags together: the drop when all of them are reset, shared out in proportion to what each one
    alone adds to an order without the others (see `_shared_flag_drops`).
    """
    reasons = ["[]"] * len(score)
    rows = np.flatnonzero(score >= min_score)
    reference = getattr(classifier, "reference_", None)
    if not len(rows) or reference is None:
        return reasons
    sub = matrix[rows]
    names: list[str] = []
    drops = np.zeros((len(rows), 0))
    n_flags = FEATURES.index("n_flags")
    # binned once: a reset group's bins are the reference's bins (binning is per value), so most groups
    # skip binning their rows again
    bins = classifier.bins(sub) if hasattr(classifier, "bins") else None
    reference_bins = classifier.bins(reference[None, :])[0] if bins is not None else None
    # and each tree's part of every score: resetting a group walks again only the trees that test it
    trees = classifier.tree_values(bins) if bins is not None else None
    for name, columns in _groups().items():
        if name == "flag_count":  # the count is explained by the flags that make it up, one by one
            continue
        changed = ~np.all((sub[:, columns] == reference[columns]) |
                          (np.isnan(sub[:, columns]) & np.isnan(reference[columns])), axis=1)
        drop = np.zeros(len(rows))
        if not changed.any():
            pass
        elif bins is not None and not name.startswith("flag:"):
            reset_bins = bins[changed]
            reset_bins[:, columns] = reference_bins[columns]
            drop[changed] = score[rows][changed] - classifier.fraud_probability_replacing(
                reset_bins, trees[:, changed], columns)
        else:  # a flag's few orders: n_flags changes too, and is binned anew with the rest of the row
            reset = sub[changed].copy()
            reset[:, columns] = reference[columns]
            if name.startswith("flag:"):  # without this flag the order also has one flag fewer
                reset[:, n_flags] -= sub[changed][:, columns[0]] - reference[columns[0]]
            if bins is None:
                drop[changed] = score[rows][changed] - fraud_probability(classifier, reset)
            else:
                drop[changed] = score[rows][changed] - classifier.fraud_probability_replacing(
                    classifier.bins(np.asfortranarray(reset)), trees[:, changed], [*columns, n_flags])
        drops = np.column_stack([drops, drop])
        names.append(name)

    best = np.argsort(-drops, axis=1)[:, :max_reasons]
    chosen = np.take_along_axis(drops, best, axis=1) >= min_contribution
    saturated = ~chosen.any(axis=1)
    flag_groups = [j for j, name in enumerate(names) if name.startswith("flag:")]
    flag_columns = [FEATURES.index(f"flag_{names[j][5:]}") for j in flag_groups]
    active = (sub[:, flag_columns] != 0) & saturated[:, None]
    shared = _shared_flag_drops(classifier, sub, score[rows], active, flag_columns, reference, n_flags)

    # every reason shown as (order, group, weight, suffix): an order's own top groups (in order of weight), or
    # for a saturated order its heaviest shares of the flags (equal shares keep the flags' own order)
    order, slot = np.nonzero(chosen)
    group = best[order, slot]
    weight = drops[order, group]
    suffix = np.zeros(len(order), dtype=bool)
    several = np.flatnonzero(active.any(axis=1))
    if len(several):
        mine = active[several]
        ranked = np.argsort(np.where(mine, -shared[several], np.inf), axis=1, kind="stable")[:, :max_reasons]
        at, place = np.nonzero(np.take_along_axis(mine, ranked, axis=1))
        flag = ranked[at, place]
        order = np.concatenate([order, several[at]])
        group = np.concatenate([group, np.asarray(flag_groups, dtype=np.int64)[flag]])
        weight = np.concatenate([weight, shared[several[at], flag]])
        suffix = np.concatenate([suffix, np.ones(len(at), dtype=bool)])
    # each group's phrases over all its orders at once, then each order's reasons as JSON text
    phrase = np.empty(len(order), dtype=object)
    for j in np.unique(group).tolist():
        mask = group == j
        phrase[mask] = describe_many(names[j], features.iloc[rows[order[mask]]])
    pieces = _reason_json([names[j] for j in group.tolist()], phrase.tolist(), suffix.tolist(), weight.tolist())
    sort = np.argsort(order, kind="stable")  # by order; within one, in the order found above
    order = order[sort]
    starts = np.flatnonzero(np.r_[True, order[1:] != order[:-1]]) if len(order) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(order)]
    pieces = [pieces[k] for k in sort.tolist()]
    for i, a, b in zip(order[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        reasons[rows[i]] = "[" + ", ".join(pieces[a:b]) + "]"
    return reasons


_SEVERAL = " (one of several that each suffice)"


def _reason_json(features: list[str], phrases: list[str], several: list[bool], weights: list[float]) -> list[str]:
    """`json.dumps({"feature": f, "text": phrase (+ the 'one of several' note), "weight": round(w, 3)})` per
    reason, character for character, without building a dict per reason."""
    text = json.encoder.encode_basestring_ascii  # what json.dumps uses for strings (ensure_ascii)
    quoted = {name: text(name) for name in set(features)}
    return ['{"feature": ' + quoted[f] + ', "text": ' + text(p + _SEVERAL if s else p) + ', "weight": '
            + _number(round(w, 3)) + "}"
            for f, p, s, w in zip(features, phrases, several, weights, strict=True)]


def _number(value: float) -> str:
    """A float as json.dumps writes it."""
    return repr(value) if value - value == 0 else json.dumps(value)


def _shared_flag_drops(classifier: Any, sub: np.ndarray, score: np.ndarray, active: np.ndarray,
                       flag_columns: list[int], reference: np.ndarray, n_flags: int) -> np.ndarray:
    """For each order and each of its `active` flags, that flag's share of the score's drop when all of them are
    reset together. Shares follow what each flag alone adds to the order with the others reset (equal shares
    when none adds anything alone). Two batched predictions, no per-order loop."""
    shared = np.zeros(active.shape)
    orders = np.flatnonzero(active.any(axis=1))
    if not len(orders):
        return shared
    mine = active[orders]
    base = sub[orders]
    cleared = base.copy()
    for k, column in enumerate(flag_columns):
        on = mine[:, k]
        cleared[on, column] = reference[column]
        cleared[on, n_flags] -= base[on, column] - reference[column]
    p_cleared = fraud_probability(classifier, cleared)
    # one row per (order, flag): the order with only that one of its flags put back
    who, which = np.nonzero(mine)
    alone = cleared[who].copy()
    columns = np.asarray(flag_columns)[which]
    alone[np.arange(len(who)), columns] = base[who, columns]
    alone[:, n_flags] += base[who, columns] - reference[columns]
    adds = np.zeros(mine.shape)
    adds[who, which] = np.clip(fraud_probability(classifier, alone) - p_cleared[who], 0.0, None)
    total = adds.sum(axis=1, keepdims=True)
    share = np.where(total > 0, adds / np.where(total > 0, total, 1.0), mine / mine.sum(axis=1, keepdims=True))
    shared[orders] = share * (score[orders] - p_cleared)[:, None] * mine
    return shared


def _values(rows: pd.DataFrame, name: str) -> list[float | None]:
    """A feature column as Python floats, None where missing."""
    values = rows[name].to_numpy(dtype=float)
    return [None if v != v else v for v in values.tolist()]


def describe_many(group: str, rows: pd.DataFrame) -> list[str]:
    """One English phrase per order (a row of features) for a reason group, with the order's own numbers,
    formatted column by column."""
    if group.startswith("flag:"):
        return [f"rule flag {group[5:]}"] * len(rows)

    def v(name: str) -> list[float | None]:
        return _values(rows, name)

    def count(name: str) -> list[int]:
        return [int(x or 0) for x in v(name)]

    if group == "transit":
        return [("no delivered scan yet" if days is None else f"delivered {days:.1f} days after the first scan"
                 + (f" ({ratio:.0%} of the route's median)" if ratio is not None else ""))
                for days, ratio in zip(v("accept_to_delivered_days"), v("transit_vs_route_median"), strict=True)]
    if group == "first_scan":
        return ["no carrier event yet" if days is None else f"first carrier event {days:+.1f} days from the order"
                for days in v("order_to_first_scan_days")]
    if group == "customs":
        return [f"{e} export and {i} import customs scans" for e, i in zip(count("n_export"), count("n_import"),
                                                                            strict=True)]
    if group == "scans":
        return [f"{s} physical scans, {e} events" for s, e in zip(count("n_scans"), count("n_events"), strict=True)]
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
        return [f"tracking number on {o} orders of {b} buyers"
                for o, b in zip(count("orders_on_number"), count("buyers_on_number"), strict=True)]
    if group == "messages":
        return [f"seller messages: pressure probability {p or 0:.0%}" for p in v("msg_pressure_max")]
    if group == "seller":
        return [", ".join([f"seller with {n} orders"]
                          + ([f"{rate:.0%} of the others flagged"] if rate is not None else [])
                          + ([f"{fast:.0%} delivered within 6 days"] if fast is not None else [])
                          + ([f"median transit {median:.1f} days"] if median is not None else []))
                for n, rate, fast, median in zip(count("seller_n_orders"), v("seller_flag_rate"),
                                                 v("seller_fast_share"), v("seller_median_transit"), strict=True)]
    if group == "buyer":
        return [f"buyer with {n} orders, {f} others flagged, {r} others not received"
                for n, f, r in zip(count("buyer_n_orders"), count("buyer_flagged_other"),
                                   count("buyer_not_received_other"), strict=True)]
    if group == "flag_count":
        return [f"{n} rule flags" for n in count("n_flags")]
    if group == "delivery":
        return ["delivered" if d else "not delivered" for d in v("delivered")]
    if group == "carrier":
        return ["carrier"] * len(rows)
    if group == "order":
        return [f"promised {d or 0:.0f} days" for d in v("promised_days")]
    return [group] * len(rows)
