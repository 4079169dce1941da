"""Each seller's book of orders, kept in the store so a run rescores only the orders whose inputs changed.

Table `seller_books`: one row per seller, a blob of its orders (`ENTRY`: the order's rowid, its signals and
transit as `detectors.seller_aggregates` defines them, whether it has any active flag (a buyer's history counts
those), 64-bit hashes of its tracking number and buyer, the Julian
day from which its score may change by time alone, whether it has a score, which features its stored reasons
show, one bit each, its score as last worked out, and which flag features it has, one bit each), a blob of the
model's binned input of
each order as last scored (one byte per feature, where the model bins its input), and the seller's median transit (in days and as a share of the typical one). A full scoring run
writes every book from its frame; an incremental run updates the books of the sellers it touched, in the same
transaction as the scores. `meta` `seller_books.run` names the scoring run the books match: a run token that
differs from the scores' (a run killed between the two writes) means the books cannot be trusted, and the
next run rescores everything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors import seller_aggregates as sa

# "transit": the order's spans (`seller_aggregates.SPANS`: days, share of its destination's typical transit)
ENTRY = np.dtype([("order", "<i8"), ("bits", "<u2"), ("transit", "<f8", (sa.SPANS,)), ("number", "<u8"),
                  ("buyer", "<u8"),
                  ("due", "<f8"), ("scored", "u1"), ("shown", "<u8"), ("any_flag", "u1"), ("score", "<f8"),
                  ("flags", "<u2")])
META_RUN = "seller_books.run"
# the layout of the books' blobs (ENTRY): books written with another are not read (the next run rescores everything)
META_FORMAT = "seller_books.format"
FORMAT = "2"
NEVER = np.inf  # a due time: the score does not change by time alone


def hashes(values: pd.Series | np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of each text (missing values hash alike): how a book remembers an order's tracking
    number and buyer, to find the orders that shared them after one of them changes."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        # each distinct value hashed once, as `categorize` does (a missing one: the same constant it gives)
        codes = values.cat.codes.to_numpy()
        hashed = pd.util.hash_array(values.cat.categories.to_numpy(dtype=object), categorize=False)
        out = hashed[np.maximum(codes, 0)] if len(hashed) else np.zeros(len(codes), dtype=np.uint64)
        out[codes < 0] = np.iinfo(np.uint64).max
        return out
    array = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    return pd.util.hash_array(array, categorize=True)


@dataclass
class Books:
    """Every seller's book in memory: per order (sorted by seller code, then rowid) its entry and seller code;
    per seller its id and stored median transit."""

    sellers: list[str]
    entries: np.ndarray  # ENTRY
    seller: np.ndarray  # int64 code into `sellers`
    median: np.ndarray  # float64 per seller and span (`seller_aggregates.SPANS` columns)
    bins: np.ndarray | None = None  # uint8, one row per entry: the model's binned input as last scored
    _by_order: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, conn: sqlite3.Connection, run: str | None) -> Books | None:
        """The store's books, or None when there are none or they do not match scoring run `run`."""
        stored = conn.execute("SELECT value FROM meta WHERE key = ?", [META_RUN]).fetchone()
        if run is None or stored is None or stored[0] != run:
            return None
        layout = conn.execute("SELECT value FROM meta WHERE key = ?", [META_FORMAT]).fetchone()
        if layout is None or layout[0] != FORMAT:
            return None
        rows = conn.execute("SELECT seller_id, orders, median, median_relative, bins FROM seller_books "
                            "ORDER BY seller_id").fetchall()
        sellers = [r[0] for r in rows]
        parts = [np.frombuffer(r[1], dtype=ENTRY) for r in rows]
        entries = np.concatenate(parts) if parts else np.zeros(0, ENTRY)
        seller = np.repeat(np.arange(len(rows), dtype=np.int64), [len(p) for p in parts])
        median = np.array([[np.nan if v is None else v for v in r[2:4]] for r in rows], dtype=float).reshape(-1, 2)
        bins = None
        if len(entries) and all(r[4] is not None for r in rows):
            flat = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.uint8)
            if len(flat) % len(entries) == 0:
                bins = flat.reshape(len(entries), -1).copy()
        return cls(sellers, entries.copy(), seller, median, bins)

    @classmethod
    def of(cls, seller_ids: pd.Series, entries: np.ndarray, bins: np.ndarray | None) -> Books:
        """The books of a frame holding every order of the store (a full run)."""
        codes, uniques = pd.factorize(seller_ids.to_numpy(dtype=object), sort=True, use_na_sentinel=False)
        codes = codes.astype(np.int64)
        order = np.lexsort((entries["order"], codes))
        entries, codes = entries[order], codes[order]
        median = sa.medians(codes, len(uniques), entries["transit"])
        return cls([str(u) for u in uniques], entries, codes, median, None if bins is None else bins[order])

    def locate(self, rowids: np.ndarray) -> np.ndarray:
        """Each order's position among the entries (-1: not in any book)."""
        if not len(self.entries):
            return np.full(len(rowids), -1, dtype=np.int64)
        # the entries' orders never change in place (`replaced` makes new books): sorted once
        if self._by_order is None or len(self._by_order) != len(self.entries):
            self._by_order = np.argsort(self.entries["order"], kind="stable")
        by_order = self._by_order
        sorted_orders = self.entries["order"][by_order]
        at = np.minimum(np.searchsorted(sorted_orders, rowids), len(sorted_orders) - 1)
        return np.where(sorted_orders[at] == rowids, by_order[at], -1)

    def stats(self, median: np.ndarray | None = None) -> sa.SellerStats:
        """Every seller's statistics (the stored medians unless given)."""
        return sa.SellerStats.of(self.seller, len(self.sellers), self.entries["bits"], self.entries["transit"],
                                 self.median if median is None else median)

    def replaced(self, seller_ids: Iterable[str], entries: np.ndarray,
                 bins: np.ndarray | None = None) -> tuple[Books, np.ndarray]:
        """These orders' entries (and binned input) put in (an order already in a book leaves it first: its seller
        may have changed); the new books and, per seller of the new books, its code in these books (-1: new)."""
        seller_ids = list(seller_ids)
        names = sorted(set(self.sellers) | set(seller_ids))
        code_of = {name: i for i, name in enumerate(names)}
        remap = np.array([code_of[name] for name in self.sellers], dtype=np.int64)
        keep = np.ones(len(self.entries), dtype=bool)
        found = self.locate(entries["order"])
        keep[found[found >= 0]] = False
        seller = np.r_[remap[self.seller[keep]], np.array([code_of[s] for s in seller_ids], dtype=np.int64)]
        merged = np.r_[self.entries[keep], entries]
        order = np.lexsort((merged["order"], seller))
        merged_bins = None
        if self.bins is not None and bins is not None and self.bins.shape[1] == bins.shape[1]:
            merged_bins = np.concatenate([self.bins[keep], bins])[order]
        old_code = np.full(len(names), -1, dtype=np.int64)
        old_code[remap] = np.arange(len(self.sellers))
        median = np.full((len(names), sa.SPANS), np.nan)
        median[remap] = self.median
        return Books(names, merged[order], seller[order], median, merged_bins), old_code

    def save(self, conn: sqlite3.Connection, run: str, sellers: np.ndarray | None = None) -> None:
        """Write the books of these sellers (codes; every seller when None, replacing all) and mark them as
        matching scoring run `run`. The caller owns the transaction."""
        bounds = np.r_[0, np.cumsum(np.bincount(self.seller, minlength=len(self.sellers)))]
        codes = np.arange(len(self.sellers)) if sellers is None else np.unique(sellers)
        if sellers is None:
            conn.execute("DELETE FROM seller_books")
        bins = self.bins
        rows = [(self.sellers[c], self.entries[bounds[c]:bounds[c + 1]].tobytes(),
                 *(None if np.isnan(m) else float(m) for m in self.median[c]),
                 None if bins is None else bins[bounds[c]:bounds[c + 1]].tobytes()) for c in codes.tolist()]
        conn.executemany("INSERT OR REPLACE INTO seller_books (seller_id, orders, median, median_relative, bins) "
                         "VALUES (?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = excluded.value", [(META_RUN, run), (META_FORMAT, FORMAT)])

    def next_due(self) -> float:
        """The earliest time at which some order's score may change by time alone."""
        due = self.entries["due"]
        return float(due.min()) if len(due) else NEVER


def entries(rowids: np.ndarray, bits: np.ndarray, transit: np.ndarray, numbers: np.ndarray, buyers: np.ndarray,
            due: np.ndarray, scored: np.ndarray, any_flag: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Book entries from columns (no score yet: NaN)."""
    out = np.empty(len(rowids), dtype=ENTRY)
    out["order"], out["bits"], out["transit"] = rowids, bits, transit
    out["number"], out["buyer"], out["due"], out["scored"] = numbers, buyers, due, scored
    out["shown"], out["any_flag"], out["score"], out["flags"] = 0, any_flag, np.nan, flags
    return out


def flag_mask(frame: pd.DataFrame, flag_columns: list[str]) -> np.ndarray:
    """Per order, one bit per flag feature (`flag_columns`, in order) that is on: what a reason shares the flag
    count's part among."""
    out = np.zeros(len(frame), dtype=np.uint16)
    for k, name in enumerate(flag_columns):
        out |= np.where(frame[name].to_numpy(dtype=float) > 0, np.uint16(1 << k), np.uint16(0))
    return out


@dataclass
class BuyerStats:
    """Per buyer among some (sorted 64-bit hashes), from the books: how many orders, how many said not received,
    how many flagged (a medium or high flag): the buyer history `detectors.features` counts over the store."""

    buyers: np.ndarray  # uint64, sorted, distinct
    orders: np.ndarray  # int64 per buyer
    not_received: np.ndarray
    flagged: np.ndarray

    @classmethod
    def of(cls, books: Books, buyers: np.ndarray) -> BuyerStats:
        """The history of these buyers (hashes) over every entry of the books."""
        buyers = np.unique(np.asarray(buyers, dtype=np.uint64))
        rows = books.entries[np.isin(books.entries["buyer"], buyers)]
        at = np.searchsorted(buyers, rows["buyer"])

        def count(values: np.ndarray) -> np.ndarray:
            return np.bincount(at, weights=values.astype(float), minlength=len(buyers)).astype(np.int64)

        return cls(buyers, np.bincount(at, minlength=len(buyers)).astype(np.int64),
                   count((rows["bits"] & sa.BIT["not_received"]) > 0), count((rows["bits"] & sa.BIT["flagged"]) > 0))

    def features(self, entries: np.ndarray) -> dict[str, np.ndarray]:
        """Each order's buyer features (its buyer among these; its own answer and flags left out of the others),
        as `detectors.features.OrderFeatures` computes them."""
        at = np.searchsorted(self.buyers, entries["buyer"])
        said_no = ((entries["bits"] & sa.BIT["not_received"]) > 0).astype(float)
        flagged = ((entries["bits"] & sa.BIT["flagged"]) > 0).astype(float)
        return {"buyer_n_orders": self.orders[at].astype(float),
                "buyer_not_received_other": np.maximum(self.not_received[at].astype(float) - said_no, 0.0),
                "buyer_flagged_other": np.maximum(self.flagged[at].astype(float) - flagged, 0.0)}


def buyers_changed(books: Books, found: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """The buyers (hashes) whose history differs once these orders' entries (`fresh`; `found`: their positions
    in the books, -1 for new ones) replace the stored ones: how many orders, said not received, flagged."""
    stored = books.entries[found[found >= 0]]
    candidates = np.unique(np.r_[fresh["buyer"], stored["buyer"]])
    said_no = sa.BIT["not_received"]

    def history(rows: np.ndarray, sign: int, out: np.ndarray) -> None:
        at = np.searchsorted(candidates, rows["buyer"])
        for k, values in enumerate((np.ones(len(rows)), (rows["bits"] & said_no) > 0, rows["any_flag"] > 0)):
            np.add.at(out[:, k], at, sign * np.asarray(values, dtype=np.int64))

    change = np.zeros((len(candidates), 3), dtype=np.int64)
    history(stored, -1, change)
    history(fresh, +1, change)
    return candidates[(change != 0).any(axis=1)]
