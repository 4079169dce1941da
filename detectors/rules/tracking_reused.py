"""tracking_reused: one tracking number on orders of different buyers or addresses.

One buyer's (or one address's) orders placed within the consolidation window and sharing a number are a
consolidated parcel, not reuse. Each group of consolidated orders is one "party"; two or more parties on
one number is a reuse cluster, and every order in it is flagged with the other orders as evidence.

Parties, for every number at once (`parties`): the orders of a number are taken in time order (then by order
id); an order joins the earliest party already holding its buyer or its address (country and postcode, else
city) whose first order is at most the window before it, and otherwise starts a party of its own. The
candidates come from a group-by over (number, buyer) and (number, address) within the window; the choices
are settled for all numbers together, in as many rounds as the longest chain of joins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors import places
from detectors.rules import Finding, RuleContext, day, per_distinct, rule

CODE = "tracking_reused"
VERSION = "1"


def _codes(values: np.ndarray, *, sort: bool = False) -> np.ndarray:
    return pd.factorize(values, sort=sort, use_na_sentinel=True)[0].astype(np.int64)


def address_keys(frame: pd.DataFrame) -> np.ndarray:
    """Per order, an integer for its address (normalised country with postcode, else city); -1 when either part
    is unknown (then the address links no orders)."""
    country = per_distinct(frame["dest_country"], places.normalize_country)
    city = per_distinct(frame["dest_city"], places.normalize_city)
    raw_country = frame["dest_country"].to_numpy(dtype=object)
    raw_postcode = frame["dest_postcode"].to_numpy(dtype=object)
    # the postcode reads its country: normalised once per distinct (postcode, country) pair
    pair = _codes(raw_postcode) * (int(_codes(raw_country).max(initial=0)) + 2) + _codes(raw_country) + 1
    distinct, at, back = np.unique(pair, return_index=True, return_inverse=True)
    text = lambda v: v if isinstance(v, str) else ""  # noqa: E731
    normal = np.array([places.normalize_postcode(text(raw_postcode[i]), text(raw_country[i])) for i in at.tolist()]
                      + [""], dtype=object)
    postcode = normal[back.reshape(-1)] if len(distinct) else np.zeros(0, dtype=object)
    local = np.where(postcode != "", postcode, city)
    known = (country != "") & (local != "")
    keys = _codes(np.char.add(np.char.add(country.astype(str), "\x1f"), local.astype(str)))
    return np.where(known, keys, -1)


def _earlier_within(key: np.ndarray, when: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (s, r) of rows (indices; rows already in time order) with the same key >= 0 and a known time, s before
    r, and r at most `window` after s (a few more pairs at the edge of the window are harmless: the caller checks
    the window exactly)."""
    rows = np.flatnonzero((key >= 0) & ~np.isnan(when))
    if len(rows) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = rows[np.lexsort((rows, key[rows]))]  # by key, then time order
    k, t = key[rows], when[rows]
    # one sorted axis: each key's times shifted past the previous key's (and its window), so a single
    # searchsorted finds, for each row, the first row of its key not more than the window before it
    rank = np.r_[0, np.cumsum(k[1:] != k[:-1])]
    span = float(np.nanmax(t) - np.nanmin(t)) + window + 1.0
    axis = rank * span + (t - np.nanmin(t))
    lo = np.searchsorted(axis, axis - window - 1e-6, side="left")
    count = np.arange(len(k)) - lo
    r = np.repeat(np.arange(len(k)), count)
    s = np.repeat(lo, count) + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
    return rows[s], rows[r]


def parties(number: np.ndarray, buyer: np.ndarray, address: np.ndarray, when: np.ndarray,
            window: float) -> np.ndarray:
    """Each row's party (the row index of the party's first order), for rows in time order within each number
    (integer codes; `address` -1 where unknown; `when` in days, NaN unknown)."""
    n = len(number)
    party = np.arange(n)
    width = int(max(buyer.max(initial=0), address.max(initial=0))) + 2
    s1, r1 = _earlier_within(number * width + buyer, when, window)
    s2, r2 = _earlier_within(np.where(address >= 0, number * width + address, -1), when, window)
    s, r = np.r_[s1, s2], np.r_[r1, r2]
    if not len(s):
        return party
    # party[r] = the earliest party of a linked earlier row whose first order is within the window, else r itself:
    # each row depends on earlier rows only, so repeating the step over every pair settles it in as many rounds
    # as the longest chain of joins
    while True:
        candidate = party[s]
        valid = when[r] - when[candidate] <= window
        settled = np.arange(n)
        np.minimum.at(settled, r[valid], candidate[valid])
        if np.array_equal(settled, party):
            return party
        party = settled


@rule(CODE, VERSION, "medium")
def check(ctx: RuleContext) -> list[Finding]:
    """The same number on orders of different buyers (not one buyer's consolidated orders)."""
    cfg = ctx.settings.get(CODE, {})
    version = str(cfg.get("version", VERSION))
    window = float(cfg.get("consolidation_window_days", 6))
    many = int(cfg.get("many_buyers", 3))
    o = ctx.tracked
    shared = o[(o["n_orders_on_number"] > 1).to_numpy()]
    if len(shared) < 2:
        return []
    number = _codes(shared["tracking_number"].to_numpy(dtype=object), sort=True)
    when = shared["ordered_jd"].to_numpy(dtype=float)
    order_rank = _codes(shared["order_id"].to_numpy(dtype=object), sort=True)
    ordered = np.lexsort((order_rank, when, number))  # by number, then time (NaN last), then order id
    frame = shared.iloc[ordered]
    number, when = number[ordered], when[ordered]
    party = parties(number, _codes(frame["buyer_id"].to_numpy(dtype=object)), address_keys(frame), when, window)

    per_number = pd.DataFrame({"number": number, "party": party == np.arange(len(party)),
                               "buyer": frame["buyer_id"].to_numpy(dtype=object)})
    counts = per_number.groupby("number", sort=True).agg(rows=("party", "size"), parties=("party", "sum"),
                                                         buyers=("buyer", "nunique"))
    reused = counts.index[(counts["rows"] >= 2) & (counts["parties"] >= 2)].to_numpy()
    findings: list[Finding] = []
    if not len(reused):
        return findings
    # the findings, in the frame's own order within each number
    picked = np.flatnonzero(np.isin(number, reused))
    picked = picked[np.lexsort((ordered[picked], number[picked]))]
    bounds = np.r_[0, np.flatnonzero(np.diff(number[picked])) + 1, len(picked)]
    ids = frame["order_id"].to_numpy(dtype=object)
    buyers = frame["buyer_id"].to_numpy(dtype=object)
    cities = frame["dest_city"].to_numpy(dtype=object)
    numbers = frame["tracking_number"].to_numpy(dtype=object)
    for first, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        rows = picked[first:end]
        tracking_number = numbers[rows[0]]
        n_buyers = len(set(buyers[rows].tolist()))
        n_parties = int(counts.at[number[rows[0]], "parties"])
        severity = str(cfg.get("many_severity", "high")) if n_buyers >= many else str(cfg.get("severity", "medium"))
        days = when[rows][~np.isnan(when[rows])]
        first_day, last_day = (days.min(), days.max()) if len(days) else (np.nan, np.nan)
        shipped_to = sorted({str(c) for c in cities[rows] if isinstance(c, str) and c.strip()})
        cluster = sorted(ids[rows].tolist())
        text = (f"tracking number {tracking_number} is also on {len(cluster) - 1} other order(s) of {n_buyers} "
                f"different buyers ({n_parties} separate parties, orders placed {day(first_day)} to {day(last_day)}"
                + (f", shipping to {', '.join(shipped_to[:5])}" if shipped_to else "") + ")")
        for order_id in ids[rows].tolist():
            findings.append(Finding(
                order_id, CODE, severity, text,
                {"tracking_number": tracking_number, "reuse_cluster": cluster,
                 "other_orders": [other for other in cluster if other != order_id], "buyers": n_buyers,
                 "parties": n_parties, "event_ids": []},
                version,
            ))
    return findings
