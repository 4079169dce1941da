"""A seller's aggregates, defined once: what each order adds to its seller's book, and the features read from it.

Each order contributes a few yes/no signals (flagged, delivered fast, delivered, delivered fast for its
destination, delivered to a destination with a typical transit, on a number several buyers share, delivered
without customs scans, said not received, pressed by the seller) and its transit time, in days and as a share of
its destination's typical transit (`typical_transit`, see `detectors.features`). A seller's statistics are the
count of their orders, the sum of each signal and the median of each transit; an order's seller features are
its seller's rates over the seller's *other* (counted) orders, the count and the medians.

`add_seller_aggregates(frame)` computes them over a frame holding every order of each seller (a full run,
training). `SellerStats` are the same statistics from any set of orders grouped by seller, so a store that keeps
each seller's signals (`tracker.detection.seller_books`) computes the same features for a few orders without
reading the sellers' whole books again, and tells which other orders' features moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SIGNALS = ("flagged", "fast", "delivered", "reused", "no_customs", "not_received", "pressured", "fast_typical",
           "delivered_typical")
BITS = np.uint16  # one bit per signal
BIT = {name: BITS(1 << i) for i, name in enumerate(SIGNALS)}
COUNT = "seller_n_orders"
# feature -> which transit it is the seller's median of (a column of `spans`: days, share of the typical)
MEDIANS = {"seller_median_transit": 0, "seller_transit_vs_typical": 1}
SPANS = 2
MEDIAN = "seller_median_transit"
# feature -> (the signal it is the share of, the signal that says an order counts; None: every order counts).
# A signal with a counting signal is stored already masked by it ("fast" means delivered, and fast).
RATES: dict[str, tuple[str, str | None]] = {
    "seller_flag_rate": ("flagged", None),
    "seller_fast_share": ("fast", "delivered"),
    "seller_fast_share_vs_typical": ("fast_typical", "delivered_typical"),
    "seller_reuse_share": ("reused", None),
    "seller_no_customs_share": ("no_customs", "delivered"),
    "seller_not_received_share": ("not_received", None),
    "seller_pressure_share": ("pressured", None),
}
FEATURES = (COUNT, *MEDIANS, *RATES)
# The points a trained model's thresholds on each seller feature may sit between
# (`detectors.classifier.FraudClassifier(grids=...)`): each fitting row's value is moved to its grid's nearest
# point, so every threshold the boosting learns is a midpoint of two points. A seller's statistics move by one
# order at a time: one more order of a seller with 300 moves a rate by a fifteenth of a 5-point step, where with
# thresholds at the quantiles of the training values nearly every order of a seller whose statistics moved crossed
# one and was scored again (issue 19). The scores still read the exact values.
GRIDS: dict[str, tuple[float, ...]] = {
    "count": (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0, 192.0, 256.0, 384.0,
              512.0, 768.0, 1024.0, 1536.0, 2048.0, 3072.0, 4096.0, 6144.0, 8192.0),  # orders: half octaves
    "days": tuple(float(d) for d in range(0, 121)),  # a median transit: whole days
    "ratio": tuple(round(0.1 * k, 1) for k in range(0, 51)),  # a median share of the typical transit: tenths
    "share": tuple(round(0.05 * k, 2) for k in range(0, 21)),  # a rate: steps of 5 points
}
GRID_OF: dict[str, str] = {COUNT: "count", "seller_median_transit": "days", "seller_transit_vs_typical": "ratio",
                           **{name: "share" for name in RATES}}
BY_PATTERN_SELLERS = 100_000  # `SellerStats.of` counts per seller and pattern of signals up to this many sellers
FAST_DAYS = 6.0  # a delivery within this many days of the first scan is fast
FAST_SHARE_OF_TYPICAL = 0.6  # a delivery below this share of its destination's typical transit is fast for it


def order_signals(frame: pd.DataFrame, flag_columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per order of a feature frame (its flag indicators, facts, number context, message pressure and typical
    transit already added), its signals as bits (`BIT`) and its spans (`SPANS` columns: its transit in days and as
    a share of its destination's typical transit; NaN: not delivered)."""
    delivered_jd = frame["delivered_jd"].to_numpy(dtype=float)
    transit = delivered_jd - frame["first_event_jd"].to_numpy(dtype=float)
    relative = transit / frame["typical_transit"].to_numpy(dtype=float)
    delivered = ~np.isnan(delivered_jd)
    flagged = frame[flag_columns].to_numpy().sum(axis=1) > 0
    no_customs = ((frame["n_export"] + frame["n_import"]) == 0).to_numpy()
    said = frame["buyer_received"].to_numpy(dtype=object)
    codes, uniques = pd.factorize(said, use_na_sentinel=True)
    not_received = np.r_[[isinstance(u, str) and u.strip().lower() == "no" for u in uniques], False].astype(bool)
    bits = np.zeros(len(frame), dtype=BITS)
    for name, on in (("flagged", flagged), ("fast", delivered & (transit < FAST_DAYS)), ("delivered", delivered),
                     ("reused", frame["buyers_on_number"].to_numpy(dtype=float) > 1),
                     ("no_customs", delivered & no_customs), ("not_received", not_received[codes]),
                     ("pressured", frame["msg_pressure_max"].to_numpy(dtype=float) >= 0.5),
                     ("fast_typical", delivered & (relative < FAST_SHARE_OF_TYPICAL)),
                     ("delivered_typical", delivered & ~np.isnan(relative))):
        bits |= np.where(on, BIT[name], BITS(0))
    return bits, np.column_stack([transit, relative])


@dataclass
class SellerStats:
    """Per seller (integer codes 0..n-1): how many orders, each signal's sum, the median of each span."""

    orders: np.ndarray  # int64
    sums: np.ndarray  # int64, one column per signal of SIGNALS
    median: np.ndarray  # float64, one column per span (SPANS), NaN where no order was delivered

    @classmethod
    def of(cls, seller: np.ndarray, n_sellers: int, bits: np.ndarray, spans: np.ndarray,
           median: np.ndarray | None = None) -> SellerStats:
        """The statistics of these orders (seller codes, bits, spans); `median`: known already."""
        orders = np.bincount(seller, minlength=n_sellers).astype(np.int64)
        if not n_sellers:
            sums = np.zeros((0, len(SIGNALS)), np.int64)
        elif len(seller) and n_sellers <= BY_PATTERN_SELLERS:
            # how many orders of each seller show each pattern of signals (one count over the orders; only the
            # patterns that occur), then each signal's sum from the patterns': the same integers as a count per signal
            patterns = 1 << len(SIGNALS)
            low = (bits & (patterns - 1)).astype(np.int64)
            present = np.flatnonzero(np.bincount(low, minlength=patterns))
            code = np.zeros(patterns, dtype=np.int64)
            code[present] = np.arange(len(present))
            per_pattern = np.bincount(seller.astype(np.int64) * len(present) + code[low],
                                      minlength=n_sellers * len(present)).reshape(n_sellers, len(present))
            sums = per_pattern @ ((present[:, None] >> np.arange(len(SIGNALS))) & 1).astype(np.int64)
        else:
            sums = np.stack([np.bincount(seller[(bits & BIT[name]) > 0], minlength=n_sellers) for name in SIGNALS],
                            axis=1).astype(np.int64)
        return cls(orders, sums, medians(seller, n_sellers, spans) if median is None else median)

    def features(self, seller: np.ndarray, bits: np.ndarray) -> dict[str, np.ndarray]:
        """Each order's seller features, from its seller's statistics and its own signals (left out of rates)."""
        out: dict[str, np.ndarray] = {COUNT: self.orders[seller]}
        out |= {name: self.median[seller, column] for name, column in MEDIANS.items()}
        for feature, (signal, counted) in RATES.items():
            own = ((bits & BIT[signal]) > 0).astype(np.int64)
            total = self.sums[seller, SIGNALS.index(signal)] - own
            if counted is None:
                n = self.orders[seller] - 1
            else:
                n = self.sums[seller, SIGNALS.index(counted)] - ((bits & BIT[counted]) > 0).astype(np.int64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[feature] = np.where(n > 0, total.astype(float) / n.astype(float), np.nan)
        return out


def snap(grid: str, values: np.ndarray) -> np.ndarray:
    """Each value moved to the nearest point of the grid named `grid` (`GRIDS`; below its first point, the first,
    beyond its last, the last; a value halfway between two points goes to the lower one, as a threshold halfway
    between them sends it left); NaN stays NaN."""
    points = np.asarray(GRIDS[grid], dtype=float)
    values = np.asarray(values, dtype=float)
    at = np.searchsorted((points[:-1] + points[1:]) / 2, values, side="left")
    return np.where(np.isnan(values), np.nan, points[np.minimum(at, len(points) - 1)])


def medians(seller: np.ndarray, n_sellers: int, values: np.ndarray) -> np.ndarray:
    """Per seller, the median of their non-NaN values (NaN when none): the middle value, or the mean of the two
    middle ones, as pandas' grouped median computes it; one column per column of a 2-D `values`."""
    if values.ndim == 2:
        return np.column_stack([medians(seller, n_sellers, values[:, j]) for j in range(values.shape[1])]) \
            if values.shape[1] else np.zeros((n_sellers, 0))
    out = np.full(n_sellers, np.nan)
    known = ~np.isnan(values)
    if not known.any():
        return out
    s, v = seller[known], values[known]
    order = np.lexsort((v, s))
    s, v = s[order], v[order]
    counts = np.bincount(s, minlength=n_sellers)
    present = np.flatnonzero(counts)
    start = np.r_[0, np.cumsum(counts)][present]
    k = counts[present]
    low, high = v[start + (k - 1) // 2], v[start + k // 2]
    out[present] = np.where(k % 2 == 1, low, (low + high) / 2)
    return out


def seller_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes of the sellers of a frame (a missing seller is a group of its own) and how many there are."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, n = values.cat.codes.to_numpy(), len(values.cat.categories)
    else:
        codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
        n = len(uniques)
    return codes.astype(np.int64) + 1, n + 1


def add_seller_aggregates(frame: pd.DataFrame, flag_columns: list[str]) -> None:
    """The seller features of every order of a frame that holds each seller's whole book, in place."""
    seller, n_sellers = seller_codes(frame["seller_id"])
    bits, spans = order_signals(frame, flag_columns)
    for name, values in SellerStats.of(seller, n_sellers, bits, spans).features(seller, bits).items():
        frame[name] = values


# A seller's totals as columns, for engines that sum them elsewhere (Dask group-bys): per order its part ("n": 1,
# each signal as 0/1) and its spans; per seller their sums and the spans' medians.
SUMS = ("n", *SIGNALS)
SPAN_COLUMNS = ("transit", "relative")
MEDIAN_COLUMNS = ("median_transit", "median_relative")


def book_columns(frame: pd.DataFrame, flag_columns: list[str]) -> dict[str, np.ndarray]:
    """Per order of a feature frame, its parts of its seller's totals (SUMS, as floats) and its spans."""
    bits, spans = order_signals(frame, flag_columns)
    out: dict[str, np.ndarray] = {"n": np.ones(len(frame))}
    out |= {name: ((bits & BIT[name]) > 0).astype(float) for name in SIGNALS}
    out |= {name: spans[:, j] for j, name in enumerate(SPAN_COLUMNS)}
    return out


def add_from_totals(frame: pd.DataFrame, flag_columns: list[str], totals: pd.DataFrame) -> None:
    """The seller features of a frame's orders from their sellers' totals over the whole store (`totals`: indexed
    by seller id, SUMS and MEDIAN_COLUMNS), in place: the same values as over a frame holding every book."""
    at = totals.index.get_indexer(frame["seller_id"].to_numpy(dtype=object))
    if (at < 0).any():
        raise ValueError("seller totals lack some of the frame's sellers")
    stats = SellerStats(totals["n"].to_numpy(dtype=np.int64),
                        totals[list(SIGNALS)].to_numpy(dtype=np.int64),
                        totals[list(MEDIAN_COLUMNS)].to_numpy(dtype=float))
    bits, _ = order_signals(frame, flag_columns)
    for name, values in stats.features(at.astype(np.int64), bits).items():
        frame[name] = values
