"""Order features for the classifier: the feature frame, and a transformer that turns it into numbers.

Two steps, so training and scoring share every line:

1. `feature_frame(orders, side, ...)` completes an order frame (`detectors.view`: orders and the facts of
   their tracking numbers, read by `tracker.detection.readers`) with the active flag codes, seller-message
   pressure, tracking-number reuse, buyer history, the store's typical transit per destination and
   seller-level aggregates. Seller aggregates need a seller's whole book, so the frame always holds every
   order of each seller involved (`target` marks the orders asked for). No label is read: aggregates cannot
   leak. A low-severity flag is a note, not evidence: it is listed in `codes` but sets no flag feature (an
   unknown number format never raises a score on its own).
2. `OrderFeatures` (`detectors.order_features`, found here too: reading frames imports no scikit-learn), a
   scikit-learn transformer, derives the numeric features from that frame (durations,
   times relative to the store's typical transit, match levels, flag indicators, shares). It learns nothing
   from the rows it is fitted on: a model trained on generated worlds reads a user's store the same way.

`FEATURES` (`detectors.feature_basics`, found here too) is every feature this version can compute; a model uses
those it was trained on (`features=`, chosen when the shipped model is built), and `MONOTONIC` says which may only
raise a score (evidence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from detectors import places, seller_aggregates, view
from detectors.feature_basics import FEATURE_GROUPS, FEATURES, FLAG_CODES, MONOTONIC  # noqa: F401 - imported from here
from detectors.feature_basics import answer as _answer
from detectors.feature_basics import codes_of as _codes_of
from detectors.feature_basics import per_value as _per_value

# a delivered parcel whose transit is below this share of its destination's typical one counts as fast
FAST_SHARE_OF_TYPICAL = seller_aggregates.FAST_SHARE_OF_TYPICAL
# fewer deliveries than this to a destination: the store-wide typical transit stands in for its own
MIN_DELIVERIES_FOR_TYPICAL = 20
# the typical transit the scores were made with stays until the store's own moves by more than this share of it
TYPICAL_DRIFT = 0.05

# the facts of a tracking number the features read (see detectors.facts)
FEATURE_FACTS = ("n_events", "n_scans", "n_transit", "n_export", "n_import", "first_event_jd", "first_scan_jd",
                 "last_scan_jd", "delivered_jd", "delivered_country", "delivered_city", "delivered_postcode")


MessageScorer = Callable[[pd.DataFrame], np.ndarray]
# the whole-store readers' normalised place columns: name -> (texts, each row's index into them)
Normalised = dict[str, tuple[list[str], np.ndarray]]


def score_messages(messages: pd.DataFrame, pressure: Callable[[list[str]], list[float]]) -> np.ndarray:
    """Pressure probability of each message (columns id, order_id, text), each distinct text scored once."""
    texts = messages["text"].fillna("").astype(str)
    unique_texts = pd.unique(texts)  # templated chats repeat a lot
    probability = dict(zip(unique_texts, pressure(list(unique_texts)), strict=True))
    return texts.map(probability).to_numpy(dtype=float)


class Side(NamedTuple):
    """Active flags (order_id, code[, severity]) and seller messages (id, order_id, text) of the frame's orders, and
    when the reader found them, each one's frame row (-1: an order outside the frame)."""

    flags: pd.DataFrame
    messages: pd.DataFrame
    flag_row: np.ndarray | None = None
    message_row: np.ndarray | None = None


# outside the frame's own orders, what the number and buyer context counts (see `add_number_and_buyer_context`):
# per number n_orders_on_number, buyers_on_number; per buyer buyer_n_orders, _buyer_not_received, _buyer_flagged
Context = tuple[pd.DataFrame, pd.DataFrame]


def feature_frame(frame: pd.DataFrame, side: Side, pressure: np.ndarray | None, as_of: datetime,
                  normalised: Normalised | None = None, context: Context | None = None,
                  sellers: pd.DataFrame | Callable[[pd.DataFrame], None] | None = None,
                  typical: Mapping[str, float] | None = None,
                  kept_typical: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The order frame completed for `OrderFeatures`, in place: flags as indicator columns (medium and high
    severity) and codes (every active flag), seller messages' count and strongest pressure (`pressure`: one
    probability per message of `side`), tracking-number reuse and buyer history (over the frame itself, or
    `context` when the frame is part of the store), the destination match, each order's destination's typical
    transit (over the frame, or `typical` from `typical_transit` over the whole store when the frame is part of
    it), seller aggregates (`detectors.seller_aggregates`: over the frame's own orders, which then hold each
    seller's whole book; or from `sellers`: a frame of seller totals over the whole store, `seller_totals`, or a
    function that adds them, from statistics kept elsewhere). `kept_typical`: the typical transit the store's
    scores were made with, kept while the frame's own is within TYPICAL_DRIFT of it (see `settled_typical`).
    `normalised`: place columns a reader normalised already."""
    if frame.empty:
        return frame
    add_side(frame, side, pressure)
    add_number_and_buyer_context(frame, context)
    frame["as_of_jd"] = view.datetime_to_jd(as_of)
    frame["dest_match_level"] = destination_match_level(frame, normalised)
    add_typical_transit(frame, typical, kept_typical)
    _add_seller_aggregates(frame, sellers)
    return frame


def normalised_countries(values: pd.Series) -> np.ndarray:
    """Per row, the country as `places.normalize_country` reads it (computed once per distinct value)."""
    return _per_value(values, places.normalize_country, object)


def add_typical_transit(frame: pd.DataFrame, typical: Mapping[str, float] | None = None,
                        kept: Mapping[str, float] | None = None) -> None:
    """Each order's destination's typical transit (`typical`: the store's, else over the frame itself, settled
    against `kept`), in place; the one used is kept in `frame.attrs["typical_transit"]` (the store's, when the
    frame holds it)."""
    country = normalised_countries(frame["dest_country"])
    if typical is None:
        transit = (frame["delivered_jd"] - frame["first_event_jd"]).to_numpy(dtype=np.float64)
        typical = settled_typical(typical_transit(country, transit), kept)
    frame["typical_transit"] = _typical_of(country, typical)
    frame.attrs["typical_transit"] = dict(typical)


def add_side(frame: pd.DataFrame, side: Side, pressure: np.ndarray | None) -> None:
    """Each order's own flags (indicator columns and `codes`) and seller messages (`n_seller_messages`,
    `msg_pressure_max`), in place."""
    flag_row, message_row = side.flag_row, side.message_row
    if flag_row is None or message_row is None:
        # order id -> row, hashed once (object dtype: pandas would first copy the ids into its string dtype)
        position = pd.Index(frame["order_id"].to_numpy(dtype=object), dtype=object)
        flag_row = position.get_indexer(side.flags["order_id"].to_numpy(dtype=object))
        message_row = position.get_indexer(side.messages["order_id"].to_numpy(dtype=object))

    flag_code = side.flags["code"].to_numpy(dtype=object)
    evidence = flag_row >= 0
    if "severity" in side.flags.columns:  # a low-severity flag is a note: in `codes`, not a feature
        evidence &= side.flags["severity"].to_numpy(dtype=object) != "low"
    for code in FLAG_CODES:
        column = np.zeros(len(frame), dtype=np.int8)
        column[flag_row[(flag_code == code) & evidence]] = 1
        frame[f"flag_{code}"] = column
    # object text, as it is read: pandas would copy it into its string dtype, and the scorer copy it back
    frame["codes"] = pd.Series(_joined_codes(flag_row, flag_code, len(frame)), index=frame.index, dtype=object,
                               copy=False)

    known = message_row >= 0
    frame["n_seller_messages"] = np.bincount(message_row[known], minlength=len(frame)).astype(float)
    pressure_max = np.zeros(len(frame))
    if pressure is not None:
        np.fmax.at(pressure_max, message_row[known], pressure[known])
    frame["msg_pressure_max"] = pressure_max


def typical_transit(countries: np.ndarray, transit: np.ndarray) -> dict[str, float]:
    """The typical transit (days from the first carrier event to delivery) per destination country: the median
    over its delivered parcels, or over every delivered parcel ("*") for a destination with fewer than
    MIN_DELIVERIES_FOR_TYPICAL. Times relative to it read the same in a fast store and a slow one."""
    done = ~np.isnan(transit)
    out: dict[str, float] = {}
    if done.sum() < MIN_DELIVERIES_FOR_TYPICAL:
        return out
    transit = transit[done]
    out["*"] = float(np.median(transit))
    # `countries` may be any values a falsy one of which means none (texts; `seller_books.typical_moved` passes
    # hashes): one sort by country, then each one's median over its slice (pandas' grouped median, to the bit)
    codes, uniques = pd.factorize(np.asarray(countries)[done])
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques))
    for country, start, size in zip(uniques.tolist(), (np.cumsum(counts) - counts).tolist(), counts.tolist(),
                                    strict=True):
        if country and size >= MIN_DELIVERIES_FOR_TYPICAL:
            out[str(country)] = float(np.median(transit[order[start:start + size]]))
    return out


def settled_typical(fresh: Mapping[str, float], kept: Mapping[str, float] | None) -> dict[str, float]:
    """The typical transit to score with: `kept` (the one the store's scores were made with) while `fresh` (the
    store's now) names the same destinations and none moved by more than TYPICAL_DRIFT of it, else `fresh`. A few
    new deliveries move a median a little; every order's times relative to it would move with it, and a run that
    rescores only what changed could not match a full one. So the yardstick stays put until it has really
    moved."""
    if kept is None or set(kept) != set(fresh):
        return dict(fresh)
    for key, value in fresh.items():
        old = kept[key]
        if not abs(value - old) <= TYPICAL_DRIFT * max(abs(old), 1e-9):
            return dict(fresh)
    return dict(kept)


def _typical_of(countries: np.ndarray, typical: Mapping[str, float]) -> np.ndarray:
    """Per row, its destination's typical transit (the store-wide one where it has none; NaN without either),
    at least half a day."""
    fallback = typical.get("*", np.nan)
    codes, uniques = pd.factorize(np.asarray(countries, dtype=object), use_na_sentinel=True)
    values = np.array([typical.get(str(u), fallback) for u in uniques] + [fallback], dtype=np.float64)
    return np.maximum(values[codes], 0.5)


def message_pressure(messages: pd.DataFrame, message_scores: MessageScorer) -> np.ndarray | None:
    """Each message's pressure probability (None when there is no message)."""
    return np.asarray(message_scores(messages), dtype=float) if len(messages) else None


def _joined_codes(rows: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Per row of the frame, its flags' codes sorted and joined with commas ('' for none), from the flags'
    rows (-1: an order outside the frame) and codes. Each distinct set of codes is joined once."""
    out = np.full(n, "", dtype=object)
    inside = rows >= 0
    rows, codes = rows[inside], codes[inside]
    if not len(rows):
        return out
    code_ids, names = pd.factorize(codes)
    texts = [str(c) for c in names]
    order = np.argsort(np.asarray(texts, dtype=object), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    # rows by (row, code in sorted order): each row's codes become one run of the sorted list
    sort = np.lexsort((rank[code_ids], rows))
    rows, code_ids = rows[sort], code_ids[sort]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    ranks = rank[code_ids]
    if len(names) < 63 and not ((rows[1:] == rows[:-1]) & (ranks[1:] == ranks[:-1])).any():
        # each row's set of codes as one integer (a bit per code, by rank): the few distinct sets joined once
        sets, which = np.unique(np.add.reduceat(np.left_shift(np.int64(1), ranks), starts), return_inverse=True)
        by_rank = [texts[i] for i in order]
        joined = [",".join(by_rank[r] for r in range(len(by_rank)) if bits >> r & 1) for bits in sets.tolist()]
        out[rows[starts]] = np.array(joined, dtype=object)[which]
        return out
    texts_of: dict[tuple[int, ...], str] = {}  # a code repeated on one row (the store's flags cannot be)
    for start, end, row in zip(starts.tolist(), np.r_[starts[1:], len(rows)].tolist(), rows[starts].tolist(),
                               strict=True):
        key = tuple(code_ids[start:end].tolist())
        text = texts_of.get(key)
        if text is None:
            text = texts_of[key] = ",".join(texts[c] for c in key)
        out[row] = text
    return out


def has_text(values: pd.Series) -> np.ndarray:
    """Per row, whether a text column holds non-empty text (object or categorical)."""
    codes, uniques = _codes_of(values)
    return np.r_[np.asarray(uniques, dtype=object) != "", False].astype(bool)[codes]  # code -1 (missing): last


def _group_codes(factorized: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, int, np.ndarray]:
    """Integer group keys 0..n-1 (a missing value is key 0, a group of its own as pandas counts a -1 code), the
    number of keys, and per key whether its value is non-empty text."""
    codes, uniques = factorized
    # uniques hold no missing value, and str(u) is empty only for u == ''
    filled = np.r_[False, np.asarray(uniques, dtype=object) != ""].astype(bool)
    return codes.astype(np.int64) + 1, len(uniques) + 1, filled


def _group_sum(keys: np.ndarray, n_keys: int, values: np.ndarray) -> np.ndarray:
    """Per row, the sum of `values` over the row's group (exact here: the values are whole numbers)."""
    return np.bincount(keys, weights=values, minlength=n_keys)[keys]


# what a buyer's history is made of, per order: summed over the buyer's orders (whole store) by whoever holds them
BUYER_SUMS = ("buyer_n_orders", "_buyer_not_received", "_buyer_flagged")


def buyer_book(frame: pd.DataFrame) -> pd.DataFrame:
    """Per order (after `add_side`): its buyer and its part of the buyer's history (BUYER_SUMS), as floats. Summed
    per buyer over the whole store, they are the `buyers` half of a `Context`."""
    return pd.DataFrame({
        "buyer_id": frame["buyer_id"].to_numpy(dtype=object),
        "buyer_n_orders": np.ones(len(frame)),
        "_buyer_not_received": (_per_value(frame["buyer_received"], _answer, object) == "no").astype(float),
        # flagged: by a medium or high flag (the indicator columns; a low note is no evidence)
        "_buyer_flagged": (frame[[f"flag_{c}" for c in FLAG_CODES]].to_numpy().sum(axis=1) > 0).astype(float),
    }, index=frame.index)


def add_number_and_buyer_context(frame: pd.DataFrame, context: Context | None = None) -> None:
    """How many orders and buyers share the number; the buyer's other orders: counted over the frame, which then
    holds the whole store, or taken from `context` (counted over the whole store by the caller)."""
    if context is None:  # the frame holds every order: count with integer group codes
        book = buyer_book(frame)
        number, n_numbers, filled = _group_codes(_codes_of(frame["tracking_number"]))
        numbered = filled[number]
        buyer, n_buyers, _ = _group_codes(_codes_of(frame["buyer_id"]))
        on_number = np.bincount(number[numbered], minlength=n_numbers)
        frame["n_orders_on_number"] = np.where(numbered, on_number[number], 0).astype(float)
        pairs = np.sort(number[numbered] * n_buyers + buyer[numbered])
        # distinct (number, buyer) pairs by sorting: numpy 2's hashing np.unique is ~50x slower on a million ints
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        buyers_per_number = np.bincount(pairs // n_buyers, minlength=n_numbers)
        frame["buyers_on_number"] = np.where(numbered, buyers_per_number[number], 0).astype(float)
        frame["buyer_n_orders"] = np.bincount(buyer, minlength=n_buyers)[buyer]
        frame["_buyer_not_received"] = _group_sum(buyer, n_buyers, book["_buyer_not_received"].to_numpy())
        frame["_buyer_flagged"] = _group_sum(buyer, n_buyers, book["_buyer_flagged"].to_numpy())
        return
    numbers, buyers = context
    for column in ("n_orders_on_number", "buyers_on_number"):
        frame[column] = frame["tracking_number"].map(numbers[column]).fillna(0)
    for column in BUYER_SUMS:
        frame[column] = frame["buyer_id"].map(buyers[column]).fillna(0)





def _shared_codes(*columns: tuple[list[str], np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Per row of each (texts, index) column, one integer per distinct text over all the columns, so columns
    compare as integers; and the integer of '' (-1 when no column has it)."""
    texts = np.array([t for column_texts, _ in columns for t in column_texts], dtype=object)
    codes, uniques = pd.factorize(texts)
    out, start = [], 0
    for column_texts, index in columns:
        out.append(codes[start:start + len(column_texts)][index])
        start += len(column_texts)
    empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "")
    return out, int(empty[0]) if len(empty) else -1


def destination_match_level(frame: pd.DataFrame, normalised: Normalised | None = None) -> pd.Series:
    """Where the delivered scan agrees with the order: 3 postcode, 2 city, 1 country only, 0.5 another city or
    postcode in the right country, 0 another country. NaN when there is no delivered scan naming a place.
    `normalised`: place columns the whole-store readers normalised already.
    """
    level = np.full(len(frame), np.nan)
    factorized = {c: _codes_of(frame[c]) for c in (
        "delivered_country", "delivered_city", "delivered_postcode", "dest_country", "dest_city", "dest_postcode")}
    has_place = np.zeros(len(frame), dtype=bool)
    for name in ("delivered_country", "delivered_city", "delivered_postcode"):
        codes, uniques = factorized[name]
        filled = np.r_[np.asarray(uniques, dtype=object) != "", False].astype(bool)  # code -1 (missing): last
        has_place |= filled[codes]
    if not has_place.any():
        return pd.Series(level, index=frame.index)
    rows = np.flatnonzero(has_place)

    def side(name: str, normalise) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
        """The chosen rows' normalised texts of a place column, as (texts, each row's index into them)."""
        known = (normalised or {}).get(name)
        if known is not None:
            return known[0], known[1][rows]
        codes, uniques = factorized[name]
        if name.endswith("postcode"):
            country_codes, countries = factorized[name.replace("postcode", "country")]
            return places.normalised_postcodes((codes[rows], uniques), (country_codes[rows], countries))
        return places.normalised_per_value(codes[rows], uniques, normalise)

    (dest_country, got_country), no_country = _shared_codes(
        side("dest_country", places.normalize_country), side("delivered_country", places.normalize_country))
    (dest_city, got_city), no_city = _shared_codes(
        side("dest_city", places.normalize_city), side("delivered_city", places.normalize_city))
    (dest_post, got_post), no_post = _shared_codes(side("dest_postcode", None), side("delivered_postcode", None))
    sub = np.ones(len(rows))
    city_ok = (dest_city != no_city) & (dest_city == got_city)
    post_ok = (dest_post != no_post) & (dest_post == got_post)
    sub[city_ok] = 2.0
    sub[post_ok] = 3.0
    wrong_local = ((got_post != no_post) & (dest_post != no_post) & ~post_ok) | \
        ((got_post == no_post) & (got_city != no_city) & (dest_city != no_city) & ~city_ok)
    sub[wrong_local] = 0.5
    sub[(got_country != no_country) & (dest_country != no_country) & (got_country != dest_country)] = 0.0
    level[rows] = sub
    return pd.Series(level, index=frame.index)


# what a seller's aggregates are made of, per order, for an engine that sums them elsewhere (the Dask group-bys):
# `detectors.seller_aggregates` defines them
SELLER_SUMS = seller_aggregates.SUMS
SELLER_MEDIANS = seller_aggregates.MEDIAN_COLUMNS


def seller_book(frame: pd.DataFrame) -> pd.DataFrame:
    """Per order (after `add_side`, the number context and the typical transit): its seller, its part of each of
    the seller's sums (SELLER_SUMS, as floats) and its transit, in days and as a share of the typical one."""
    columns = seller_aggregates.book_columns(frame, [f"flag_{c}" for c in FLAG_CODES])
    return pd.DataFrame({"seller_id": frame["seller_id"].to_numpy(dtype=object), **columns}, index=frame.index)


def seller_totals(book: pd.DataFrame) -> pd.DataFrame:
    """Per seller (the index, `seller_id`): the sums of SELLER_SUMS over these orders, and the medians of their
    transits (SELLER_MEDIANS). Over the whole store, what `feature_frame(..., sellers=)` takes."""
    codes, sellers = pd.factorize(book["seller_id"].to_numpy(dtype=object), use_na_sentinel=False)
    out = {name: np.bincount(codes, weights=book[name].to_numpy(dtype=float), minlength=len(sellers))
           for name in SELLER_SUMS}
    spans = book[list(seller_aggregates.SPAN_COLUMNS)].to_numpy(dtype=float)
    medians = seller_aggregates.medians(codes.astype(np.int64), len(sellers), spans)
    out |= {name: medians[:, j] for j, name in enumerate(SELLER_MEDIANS)}
    return pd.DataFrame(out, index=pd.Index(sellers, dtype=object, name="seller_id"))


def _add_seller_aggregates(frame: pd.DataFrame,
                           sellers: pd.DataFrame | Callable[[pd.DataFrame], None] | None = None) -> None:
    """Seller-level context, leaving the order itself out (`detectors.seller_aggregates`: the one definition,
    which a store also keeps per seller): over the frame's own books, or from `sellers` (see `feature_frame`)."""
    flag_columns = [f"flag_{c}" for c in FLAG_CODES]
    if sellers is None:
        seller_aggregates.add_seller_aggregates(frame, flag_columns)
    elif callable(sellers):
        sellers(frame)
    else:
        seller_aggregates.add_from_totals(frame, flag_columns, sellers)


def __getattr__(name: str) -> Any:
    # the transformer lives apart so that reading frames (the rules, an incremental run's reads) does not import
    # scikit-learn; models store it under this module's name too
    if name == "OrderFeatures":
        from detectors.order_features import OrderFeatures

        return OrderFeatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
