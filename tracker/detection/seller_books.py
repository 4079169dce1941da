"""Each seller's book of orders, kept in the store so a run rescores only the orders whose inputs changed.

Per order (`ENTRY`): the order's rowid, its signals and transit as `detectors.seller_aggregates` defines them,
whether it has any active flag (a buyer's history counts those), 64-bit hashes of its tracking number and buyer,
the Julian day from which its score may change by time alone, whether it has a score, which features its stored
reasons show, one bit each, its score as last worked out, which flag features it has and which flag codes its
score lists (`codes_mask`), one bit each; and the model's binned input of each order as last read (one byte per
feature, where the model bins its input; its seller and buyer columns are binned again from the books' statistics
before every use, so an order worked out again from its bytes leaves them as they were). Per seller: its median
transit (in days and as a share of the typical one).

Table `seller_books` holds them as parts, in the order written: a full scoring run writes every book as one part
(every order sorted by seller, then rowid); an incremental run appends a part with only the entries that changed
(the orders it read and those whose score moved), in the same transaction as the scores, and the sellers'
medians; reading applies the parts in turn (a later entry of an order wins). When the
appended entries outnumber half the books, the run writes them whole again as one part. `meta`
`seller_books.run` names the scoring run the books match: a run token that differs from the scores' (a run
killed between the two writes) means the books cannot be trusted, and the next run rescores everything.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from detectors import seller_aggregates as sa

# "transit": the order's spans (`seller_aggregates.SPANS`: days, share of its destination's typical transit)
ENTRY = np.dtype([("order", "<i8"), ("bits", "<u2"), ("transit", "<f8", (sa.SPANS,)), ("number", "<u8"),
                  ("buyer", "<u8"), ("dest", "<u8"),
                  ("due", "<f8"), ("scored", "u1"), ("shown", "<u8"), ("any_flag", "u1"), ("score", "<f8"),
                  ("flags", "<u2"), ("codes", "<u2")])
META_RUN = "seller_books.run"
# the layout of the books (ENTRY, parts): books written with another are not read (the next run rescores everything)
META_FORMAT = "seller_books.format"
FORMAT = "4"
NEVER = np.inf  # a due time: the score does not change by time alone
OTHER_CODES = np.uint16(1 << 15)  # `codes`: the score lists a code `codes_mask` has no bit for (read it from `scores`)
REWRITE_SHARE = 0.5  # appended entries beyond this share of the books: write them whole again
DENSE_ROWIDS = 4  # `locate` indexes by a table of rowids up to this many times the entries (plus a million)
COPY_AHEAD_GROWTH = 0.1  # `copy_ahead_for`: no copy ahead for a store grown by more than this share of the books
COMPARE_ROWS = 65_536  # `_changed` compares the entries this many at a time (no copy of a million of them)


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


def among(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Per value, whether it is one of `chosen` (as `np.isin`): a sorted search of the few chosen, where `np.isin`
    sorts the million values with them."""
    chosen = np.unique(np.asarray(chosen, dtype=values.dtype))
    if not len(chosen):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(chosen, values), len(chosen) - 1)
    return chosen[at] == values


def codes_mask(codes: pd.Series | np.ndarray, known: tuple[str, ...]) -> np.ndarray:
    """Per order, its score's flag codes (comma-joined text, as `scores.codes` holds them) as one bit per code of
    `known`, and `OTHER_CODES` when it lists another one; each distinct text read once."""
    ids, uniques = pd.factorize(np.asarray(codes, dtype=object), use_na_sentinel=True)
    bit = {code: np.uint16(1 << k) for k, code in enumerate(known) if k < 15}  # a 16th code on: read from `scores`
    masks = np.zeros(len(uniques) + 1, dtype=np.uint16)
    for i, text in enumerate(uniques.tolist()):
        for code in str(text).split(",") if text else ():
            masks[i] |= bit.get(code, OTHER_CODES)
    return masks[ids]


def codes_text(masks: np.ndarray, known: tuple[str, ...]) -> np.ndarray:
    """The comma-joined codes of each mask (`codes_mask`; none may hold `OTHER_CODES`), sorted as the scores list
    them."""
    distinct, which = np.unique(masks, return_inverse=True)
    texts = [",".join(sorted(code for k, code in enumerate(known) if int(m) >> k & 1)) for m in distinct.tolist()]
    return np.array(texts, dtype=object)[which.reshape(-1)] if len(masks) else np.zeros(0, dtype=object)


@dataclass
class Books:
    """Every seller's book in memory: per order (sorted by seller code, then rowid) its entry and seller code;
    per seller its id and stored median transit. `stored`: the books as the store holds them, when read from it
    (what a later `save` writes only the changes against); `appended`: how many entries the store holds beyond
    its last whole write."""

    sellers: list[str]
    entries: np.ndarray  # ENTRY
    seller: np.ndarray  # int64 code into `sellers`
    median: np.ndarray  # float64 per seller and span (`seller_aggregates.SPANS` columns)
    bins: np.ndarray | None = None  # uint8, one row per entry: the model's binned input as last read
    stored: Books | None = field(default=None, repr=False, compare=False)
    appended: int = 0
    _by_order: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    # copies of the entries and binned input made ahead by a thread (`copy_ahead`), for `replaced` to write over
    _copies: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, conn: sqlite3.Connection, run: str | None) -> Books | None:
        """The store's books, or None when there are none or they do not match scoring run `run`."""
        stored = conn.execute("SELECT value FROM meta WHERE key = ?", [META_RUN]).fetchone()
        if run is None or stored is None or stored[0] != run:
            return None
        layout = conn.execute("SELECT value FROM meta WHERE key = ?", [META_FORMAT]).fetchone()
        if layout is None or layout[0] != FORMAT:
            return None
        # `typeof`: SQLite tells a BLOB from NULL by the row's header (`bins IS NOT NULL` read the whole row)
        parts = [_part((sellers, median, *(_blob_of(conn, part, column) for column in ("seller", "entries")),
                        _blob_of(conn, part, "bins") if bins_type != "null" else None))
                 for part, sellers, median, bins_type in conn.execute(
                     "SELECT part, sellers, median, typeof(bins) FROM seller_books ORDER BY part").fetchall()]
        if not parts:
            return None
        books, later = parts[0], parts[1:]
        if later:  # the appended entries, the last of each order winning; each part holds every seller's medians
            bins = [p.bins for p in later]
            books, _ = books.replaced(
                np.concatenate([np.asarray(p.sellers, dtype=object)[p.seller] for p in later]),
                np.concatenate([p.entries for p in later]),
                None if any(b is None for b in bins) or len({b.shape[1] for b in bins}) > 1 else np.concatenate(bins))
            books.median = _medians_by_name(later[-1], books.sellers)
            books.appended = sum(len(p.entries) for p in later)
        # the stored books stay as read (the bytes a later `save` compares with): the books handed out share their
        # arrays, read-only (no copy of a million entries that a run only reads: it changes the books `replaced`
        # makes); `editable` gives a copy to change in place
        for array in (books.entries, books.seller, books.median, books.bins):
            if array is not None:
                array.flags.writeable = False
        return Books(books.sellers, books.entries, books.seller, books.median, books.bins, stored=books,
                     appended=books.appended)

    def copy_ahead(self, extra: int = 0) -> None:
        """Start copying the entries and binned input in a thread, into arrays with room for `extra` more rows,
        for `replaced`: it writes the new entries over the copies (every order in a book already, with the same
        seller: an hourly run whose orders' time came), or merges them into that memory (`extra`: the orders new
        to the books). The copy is a hundred MB of memory this process has not touched yet (slow and uneven to touch
        the first time on a virtual machine); numpy's copy lets go of the interpreter's lock, so the thread's copy
        runs beside this thread's work. The books must not change meanwhile (books read from the store are
        read-only). `replaced` takes the copies (waiting for them) or, where they do not fit, makes its own."""
        if self._copies is not None or not len(self.entries):
            return
        from concurrent.futures import Future

        done: Future = Future()
        n, room = len(self.entries), max(int(extra), 0)

        def copy() -> None:
            try:
                entries = np.empty(n + room, dtype=ENTRY)
                _rows(entries[:n])[:] = _rows(self.entries)
                entries[n:].view(np.uint8)[:] = 0  # touched too: a merge writes there
                bins = None
                if self.bins is not None:
                    bins = np.empty((n + room, self.bins.shape[1]), dtype=self.bins.dtype)
                    bins[:n] = self.bins
                    bins[n:] = 0
                done.set_result((entries, bins))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of `replaced`
                done.set_exception(exc)

        threading.Thread(target=copy, name="books-copy", daemon=True).start()
        self._copies = done

    def newest_order(self) -> int:
        """The highest order rowid in the books (-1 when empty)."""
        return int(self.entries["order"].max()) if len(self.entries) else -1

    def copy_ahead_for(self, conn: sqlite3.Connection) -> None:
        """`copy_ahead` with room for the orders the store holds beyond these books (their rowids come after the
        books' newest); none where the store grew by more than `COPY_AHEAD_GROWTH` of the books since (the run then
        merges into memory of its own)."""
        new = conn.execute("SELECT count(*) FROM orders WHERE rowid > ?", [self.newest_order()]).fetchone()[0]
        if new <= COPY_AHEAD_GROWTH * len(self.entries):
            self.copy_ahead(new)

    def _own_copies(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Writable copies of the entries and binned input: those `copy_ahead` made (handed out once), else new
        ones."""
        made = self._room(len(self.entries))
        return made if made is not None else (self.entries.copy(), None if self.bins is None else self.bins.copy())

    def _room(self, n: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Arrays of `n` entries (and binned input rows) to write into: the memory `copy_ahead` touched, its first
        rows a copy of the books (handed out once), or None where it made none or has too little room."""
        ahead, self._copies = self._copies, None
        if ahead is None:
            return None
        entries, bins = ahead.result()
        return (entries[:n], None if bins is None else bins[:n]) if len(entries) >= n else None

    def editable(self) -> Books:
        """These books with arrays of their own, to change in place (`load` hands out read-only ones); the same
        `stored` books, so `save` writes what changed."""
        return Books(self.sellers, self.entries.copy(), self.seller.copy(), self.median.copy(),
                     None if self.bins is None else self.bins.copy(), stored=self.stored, appended=self.appended)

    @classmethod
    def of(cls, seller_ids: pd.Series, entries: np.ndarray, bins: np.ndarray | None) -> Books:
        """The books of a frame holding every order of the store (a full run)."""
        codes, uniques = pd.factorize(seller_ids.to_numpy(dtype=object), sort=True, use_na_sentinel=False)
        codes = codes.astype(np.int64)
        order = np.lexsort((entries["order"], codes))
        entries, codes = pick(entries, order), codes[order]
        median = sa.medians(codes, len(uniques), entries["transit"])
        return cls([str(u) for u in uniques], entries, codes, median, None if bins is None else bins[order])

    def locate(self, rowids: np.ndarray) -> np.ndarray:
        """Each order's position among the entries (-1: not in any book)."""
        rowids = np.asarray(rowids, dtype=np.int64)
        if not len(self.entries):
            return np.full(len(rowids), -1, dtype=np.int64)
        # the entries' orders never change in place (`replaced` makes new books): indexed once, by a table of
        # positions per rowid where rowids are dense enough (a scatter, where a sort of a million rowids cost a
        # tenth of a second per books), else by the rowids sorted
        if self._by_order is None or self._by_order[0] != len(self.entries):
            orders = self.entries["order"]
            low, high = int(orders.min()), int(orders.max())
            if low >= 0 and high < DENSE_ROWIDS * len(orders) + (1 << 20):
                table = np.full(high + 1, -1, dtype=np.int64)
                table[orders] = np.arange(len(orders), dtype=np.int64)
                self._by_order = (len(self.entries), table, None)
            else:
                by_order = np.argsort(orders, kind="stable")
                self._by_order = (len(self.entries), by_order, orders[by_order])
        _, index, sorted_orders = self._by_order
        if sorted_orders is None:
            inside = (rowids >= 0) & (rowids < len(index))
            return np.where(inside, index[np.where(inside, rowids, 0)], -1)
        at = np.minimum(np.searchsorted(sorted_orders, rowids), len(sorted_orders) - 1)
        return np.where(sorted_orders[at] == rowids, index[at], -1)

    def of_buyers(self, buyers: np.ndarray) -> np.ndarray:
        """Per entry, whether its buyer is one of these (hashes): as `among(entries["buyer"], buyers)`."""
        return self.asked(buyers)[1] >= 0

    def asked(self, buyers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """These buyers (hashes), distinct and sorted, and per entry its buyer's place among them (-1: another):
        one look-up of each entry in a hash table of the few asked for, where a sort of a million buyers cost a
        tenth of a second per books."""
        buyers = np.unique(np.asarray(buyers, dtype=np.uint64))
        if not len(buyers):
            return buyers, np.full(len(self.entries), -1, dtype=np.int64)
        return buyers, pd.Index(buyers).get_indexer(self.entries["buyer"]).astype(np.int64, copy=False)

    def of_sellers(self, codes: np.ndarray) -> np.ndarray:
        """Per entry, whether its seller is one of these (codes): as `among(seller, codes)`, from the ranges the
        sellers' books take (the entries are sorted by seller) instead of a search of every entry."""
        codes = np.unique(np.asarray(codes, dtype=np.int64))
        if len(self.seller) > 1 and (np.diff(self.seller) < 0).any():
            return among(self.seller, codes)
        low, high = np.searchsorted(self.seller, codes, "left"), np.searchsorted(self.seller, codes, "right")
        edges = np.bincount(low, minlength=len(self.seller) + 1) - np.bincount(high, minlength=len(self.seller) + 1)
        return np.cumsum(edges[:-1]) > 0

    def of_orders(self, rowids: np.ndarray) -> np.ndarray:
        """Per entry, whether its order is one of these (rowids): as `among(entries["order"], rowids)`."""
        out = np.zeros(len(self.entries), dtype=bool)
        at = self.locate(rowids)
        out[at[at >= 0]] = True
        return out

    def stats(self, median: np.ndarray | None = None) -> sa.SellerStats:
        """Every seller's statistics (the stored medians unless given)."""
        return sa.SellerStats.of(self.seller, len(self.sellers), self.entries["bits"], self.entries["transit"],
                                 self.median if median is None else median)

    def replaced(self, seller_ids: Iterable[str], entries: np.ndarray,
                 bins: np.ndarray | None = None) -> tuple[Books, np.ndarray]:
        """These orders' entries (and binned input) put in (an order already in a book leaves it first: its seller
        may have changed; an order given twice keeps its last entry); the new books (whose `stored` is these
        books' own) and, per seller of the new books, its code in these books (-1: new)."""
        seller_ids = np.asarray(list(seller_ids) if not isinstance(seller_ids, np.ndarray) else seller_ids,
                                dtype=object)
        last = len(entries) - 1 - np.unique(entries["order"][::-1], return_index=True)[1]
        if len(last) < len(entries):  # the last entry of each order
            last = np.sort(last)
            seller_ids, entries = seller_ids[last], pick(entries, last)
            bins = None if bins is None else bins[last]
        names = sorted(set(self.sellers) | set(seller_ids.tolist()))
        code_of = {name: i for i, name in enumerate(names)}
        remap = np.array([code_of[name] for name in self.sellers], dtype=np.int64)
        keep = np.ones(len(self.entries), dtype=bool)
        found = self.locate(entries["order"])
        keep[found[found >= 0]] = False
        tail_seller = np.array([code_of[s] for s in seller_ids.tolist()], dtype=np.int64)
        old_code = np.full(len(names), -1, dtype=np.int64)
        old_code[remap] = np.arange(len(self.sellers))
        median = np.full((len(names), sa.SPANS), np.nan)
        median[remap] = self.median
        same_width = self.bins is not None and bins is not None and self.bins.shape[1] == bins.shape[1]
        if len(entries) and len(self.entries) and (found >= 0).all() and \
                (remap[self.seller[found]] == tail_seller).all():
            # every order in a book already, with the same seller: each entry goes where its order's is (a copy
            # of the books, written over at those places; no merge)
            merged, merged_bins = self._own_copies()
            _rows(merged)[found] = _rows(entries)
            if same_width:
                assert merged_bins is not None and bins is not None
                merged_bins[found] = bins
            else:
                merged_bins = None
            return Books(names, merged, remap[self.seller], median, merged_bins, stored=self.stored,
                         appended=self.appended), old_code
        spliced = _splice(remap[self.seller], self.entries, keep, tail_seller, entries)
        room = self._room(len(spliced[0])) if spliced is not None else None
        self._copies = None  # made ahead and of no use to a whole sort: let go
        if spliced is not None:
            src, tail, dest = spliced
            empty = not len(self.entries)
            seller = np.empty(len(src), dtype=np.int64) if empty else remap[self.seller][src]
            seller[dest] = tail_seller[tail]
            if room is not None:  # picked into the memory touched ahead
                merged = room[0]
                np.take(_rows(self.entries), src, out=_rows(merged))
            else:
                merged = np.empty(len(src), dtype=ENTRY) if empty else pick(self.entries, src)
            _rows(merged)[dest] = _rows(entries)[tail]
            merged_bins = None
            if same_width:
                assert self.bins is not None and bins is not None
                if room is not None and room[1] is not None:  # (of the books' width, which `same_width` is)
                    merged_bins = room[1]
                    np.take(self.bins, src, axis=0, out=merged_bins)
                else:
                    merged_bins = np.empty((len(src), bins.shape[1]), np.uint8) if empty else self.bins[src]
                merged_bins[dest] = bins[tail]
            return Books(names, merged, seller, median, merged_bins, stored=self.stored,
                         appended=self.appended), old_code
        # the few orders merged in where their keys cannot be packed (never at a store's sizes): the whole sort
        seller = np.r_[remap[self.seller[keep]], tail_seller]
        merged = np.r_[pick(self.entries, keep), entries]
        order = _merge_order(seller, merged["order"], int(keep.sum()))
        merged_bins = None
        if same_width:
            assert self.bins is not None and bins is not None
            merged_bins = np.concatenate([self.bins[keep], bins])[order]
        return Books(names, pick(merged, order), seller[order], median, merged_bins,
                     stored=self.stored, appended=self.appended), old_code

    def save(self, conn: sqlite3.Connection, run: str, whole: bool = False) -> None:
        """Write the books and mark them as matching scoring run `run`: only the entries that differ from the
        stored books (appended as a part), or all of them as one part when `whole`, when they were not read from
        the store, or when the appended entries would outnumber `REWRITE_SHARE` of them. The caller owns the
        transaction."""
        changed = None if whole or self.stored is None else self._changed()
        if changed is None or self.appended + len(changed) > REWRITE_SHARE * len(self.entries):
            conn.execute("DELETE FROM seller_books")
            changed = None
        if changed is None or len(changed):
            at = slice(None) if changed is None else changed
            bins = self.bins
            conn.execute("INSERT INTO seller_books (sellers, median, seller, entries, bins) VALUES (?, ?, ?, ?, ?)",
                         [json.dumps(self.sellers, ensure_ascii=False), _blob(self.median),
                          _blob(self.seller[at].astype("<i8", copy=False)), _blob(pick(self.entries, at)),
                          None if bins is None else _blob(bins[at])])
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = excluded.value", [(META_RUN, run), (META_FORMAT, FORMAT)])

    def _changed(self) -> np.ndarray | None:
        """Positions of the entries that differ from the stored books (entry bytes, seller, binned input), or
        None when the bins no longer fit the stored ones (all is written)."""
        stored = self.stored
        assert stored is not None
        if self.entries is stored.entries and self.seller is stored.seller and self.bins is stored.bins:
            return np.zeros(0, dtype=np.int64)  # the books as read (`load`): nothing changed
        if (self.bins is None) != (stored.bins is None) or \
                (self.bins is not None and stored.bins is not None and self.bins.shape[1] != stored.bins.shape[1]):
            return None
        code_of = {name: i for i, name in enumerate(self.sellers)}
        stored_code = np.array([code_of.get(name, -1) for name in stored.sellers], dtype=np.int64)
        # the stored entry of the same order and seller (an order whose seller changed is not found: it changed)
        if len(self.entries) == len(stored.entries) and np.array_equal(self.entries["order"], stored.entries["order"]) \
                and np.array_equal(stored_code[stored.seller], self.seller):
            at = np.arange(len(self.entries))  # the same orders of the same sellers, in place
        else:
            at = stored.locate(self.entries["order"])
            found = np.flatnonzero(at >= 0)  # (books stored empty find none)
            at[found[stored_code[stored.seller[at[found]]] != self.seller[found]]] = -1
        known = np.flatnonzero(at >= 0)
        same = np.zeros(len(self.entries), dtype=bool)
        same[known] = _same_rows(self.entries, known, stored.entries, at[known])
        if self.bins is not None and stored.bins is not None:
            same[known] &= _same_rows(self.bins, known, stored.bins, at[known])
        return np.flatnonzero(~same)

    def next_due(self) -> float:
        """The earliest time at which some order's score may change by time alone."""
        due = self.entries["due"]
        return float(due.min()) if len(due) else NEVER


def _key(seller: np.ndarray, order: np.ndarray) -> np.ndarray | None:
    """Seller code and order rowid as one sortable integer (None where they do not fit: rowids stay far below 2**40,
    seller codes below 2**23)."""
    if len(order) and (seller.min() < 0 or seller.max() >= 1 << 23 or order.min() < 0 or order.max() >= 1 << 40):
        return None
    return (seller.astype(np.int64) << 40) | order.astype(np.int64)


def _splice(head_seller: np.ndarray, head: np.ndarray, keep: np.ndarray, tail_seller: np.ndarray,
            tail: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """How the kept head entries (`keep`; sorted by seller code `head_seller`, then rowid) and the tail ones (any
    order) merge into one sequence sorted so (as `_merge_order` sorts their concatenation): per merged position,
    the head position it is taken from (any, where a tail entry goes), and the tail entries in merged order with
    their merged positions. None where the keys cannot be packed or the head is not sorted. The merged books are
    then one pick of the head, written over at the few tail positions: no copy of the concatenation."""
    kept = np.flatnonzero(keep)
    head_key, tail_key = _key(head_seller[kept], head["order"][kept]), _key(tail_seller, tail["order"])
    if head_key is None or tail_key is None or (len(head_key) > 1 and (np.diff(head_key) <= 0).any()):
        return None
    in_tail = np.argsort(tail_key, kind="stable")
    dest = np.searchsorted(head_key, tail_key[in_tail]) + np.arange(len(in_tail))
    src = np.zeros(len(kept) + len(in_tail), dtype=np.int64)
    placed = np.zeros(len(src), dtype=bool)
    placed[dest] = True
    src[~placed] = kept
    return src, in_tail, dest


def _same_rows(mine: np.ndarray, rows: np.ndarray, theirs: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per row of `rows`, whether `mine`'s row equals `theirs`' row `at` (bytes): a slice of rows at a time, and
    where the two line up (the same positions) without picking them at all."""
    mine_rows, their_rows = _rows(mine), _rows(theirs)
    out = np.empty(len(rows), dtype=bool)
    for start in range(0, len(rows), COMPARE_ROWS):
        part = slice(start, start + COMPARE_ROWS)
        r, a = rows[part], at[part]
        if len(r) and r[-1] - r[0] == len(r) - 1 and np.array_equal(r, a):  # one run, the same positions
            out[part] = mine_rows[r[0]:r[-1] + 1] == their_rows[a[0]:a[-1] + 1]
        else:
            out[part] = mine_rows[r] == their_rows[a]
    return out


def _merge_order(seller: np.ndarray, order: np.ndarray, head: int) -> np.ndarray:
    """The permutation that sorts entries by seller code, then order rowid (as `np.lexsort` would), where the first
    `head` are sorted already: the few others are sorted and merged in, without sorting a million entries again."""
    key = _key(seller, order)
    if key is None or (head > 1 and (np.diff(key[:head]) <= 0).any()):
        return np.lexsort((order, seller))
    tail = head + np.argsort(key[head:], kind="stable")
    at = np.searchsorted(key[:head], key[tail]) + np.arange(len(tail))
    out = np.empty(len(key), dtype=np.int64)
    placed = np.zeros(len(key), dtype=bool)
    placed[at] = True
    out[at] = tail
    out[~placed] = np.arange(head)
    return out


def _blob(array: np.ndarray) -> memoryview:
    """An array's bytes as SQLite takes a BLOB, without a copy of them here: SQLite copies them as it binds them,
    and a million orders' books copied by `tobytes` first sat three times in memory at the end of a full run."""
    # flat first: a view cannot be cast with a 0 in its shape, and a store without orders has books of none
    return memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B")


def pick(entries: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`entries[index]` (book entries, `ENTRY`), a whole entry at a time: numpy picks a structured array's rows field
    by field, ten times slower."""
    return _rows(entries)[index].view(entries.dtype)


def _rows(array: np.ndarray) -> np.ndarray:
    """Each row's bytes as one value (compared as bytes: NaN equals itself), for a fast compare of whole rows (and
    a fast pick of rows: a structured array picks field by field)."""
    array = np.ascontiguousarray(array)
    width = array.dtype.itemsize * (array.shape[1] if array.ndim == 2 else 1)
    if not width:
        return np.zeros(len(array), dtype=np.uint8)
    return array.view(np.dtype((np.void, width))).reshape(len(array))


def _blob_of(conn: sqlite3.Connection, part: int, column: str) -> bytes:
    """One BLOB of a part, read straight into the bytes handed back (a SELECT copies a hundred MB twice)."""
    with conn.blobopen("seller_books", column, part, readonly=True) as blob:
        return blob.read()


def _part(row: tuple[Any, ...]) -> Books:
    """One stored part of the books (read-only views of its bytes)."""
    sellers = [str(s) for s in json.loads(row[0])]
    entries = np.frombuffer(row[3], dtype=ENTRY)
    bins = None
    if row[4] is not None and len(entries):
        flat = np.frombuffer(row[4], dtype=np.uint8)
        bins = flat.reshape(len(entries), -1) if len(flat) % len(entries) == 0 else None
    return Books(sellers, entries, np.frombuffer(row[2], dtype="<i8").astype(np.int64),
                 np.frombuffer(row[1], dtype="<f8").reshape(-1, sa.SPANS), bins)


def _medians_by_name(part: Books, sellers: list[str]) -> np.ndarray:
    """The part's medians (which a part holds for every seller then known) laid out for these sellers."""
    out = np.full((len(sellers), sa.SPANS), np.nan)
    code_of = {name: i for i, name in enumerate(sellers)}
    out[[code_of[name] for name in part.sellers]] = part.median
    return out


def entries(rowids: np.ndarray, bits: np.ndarray, transit: np.ndarray, numbers: np.ndarray, buyers: np.ndarray,
            due: np.ndarray, scored: np.ndarray, any_flag: np.ndarray, flags: np.ndarray,
            codes: np.ndarray | None = None, *, dests: np.ndarray) -> np.ndarray:
    """Book entries from columns (no score yet: NaN; `codes`: `codes_mask`, unknown when not given; `dests`: each
    order's destination, `destinations`)."""
    out = np.empty(len(rowids), dtype=ENTRY)
    out["order"], out["bits"], out["transit"] = rowids, bits, transit
    out["number"], out["buyer"], out["dest"] = numbers, buyers, dests
    out["due"], out["scored"] = due, scored
    out["shown"], out["any_flag"], out["score"], out["flags"] = 0, any_flag, np.nan, flags
    out["codes"] = OTHER_CODES if codes is None else codes
    return out


def destinations(frame: pd.DataFrame) -> np.ndarray:
    """Per order of a frame, its destination country as the typical transit groups it
    (`detectors.features.normalised_countries`), hashed."""
    from detectors.features import normalised_countries

    return hashes(normalised_countries(frame["dest_country"]))


def typical_moved(books: Books, kept: dict[str, float] | None) -> bool:
    """Whether a full run over the store the books hold would score with another typical transit than `kept`, the
    one its scores were made with: `detectors.features.typical_transit` over the books' transits by destination,
    settled against `kept` (`settled_typical`), as a full run works it out over its frame. Every order's times
    relative to it would then move: only a full rescore gives what a full run gives. False without a kept one
    (the runs read the store's own, `readers.typical_transit`)."""
    from detectors import features

    if kept is None:
        return False
    dest = books.entries["dest"]
    # no country (the hash of ""): 0, which `typical_transit` counts for "*" only, as the frame's "" is
    fresh = features.typical_transit(np.where(dest == hashes(np.array([""], dtype=object))[0], np.uint64(0), dest),
                                     books.entries["transit"][:, 0])
    as_kept = {name if name == "*" else str(hashes(np.array([name], dtype=object))[0]): value
               for name, value in kept.items()}
    return features.settled_typical(fresh, as_kept) != as_kept


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
        buyers, at = books.asked(buyers)
        hit = at >= 0
        mine, bits = at[hit], books.entries["bits"][hit]
        n = len(buyers)
        return cls(buyers, np.bincount(mine, minlength=n).astype(np.int64),
                   np.bincount(mine[(bits & sa.BIT["not_received"]) > 0], minlength=n).astype(np.int64),
                   np.bincount(mine[(bits & sa.BIT["flagged"]) > 0], minlength=n).astype(np.int64))

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
