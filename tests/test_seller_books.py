"""The seller books as the store keeps them (`tracker.detection.seller_books`): a whole write, then parts holding
only the entries a run changed, read back as the books in memory were; written whole again once the parts grow.
And the codes a score lists, kept as bits, spelt as the scores spell them."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from detectors.features import FLAG_CODES, _joined_codes
from tracker.detection import seller_books as sb
from tracker.detection.books_ahead import NOT_READ, LoadAhead
from tracker.migrations import migrate


@pytest.fixture()
def conn(tmp_path) -> sqlite3.Connection:  # noqa: ANN001
    from tracker.db import open_db

    db = open_db(tmp_path / "books.db")
    migrate(db)
    return db.conn


def _books(n: int, sellers: int, seed: int = 1) -> sb.Books:
    rng = np.random.default_rng(seed)
    entries = sb.entries(np.arange(1, n + 1, dtype=np.int64), rng.integers(0, 512, n).astype(np.uint16),
                         np.where(rng.random((n, 2)) < 0.3, np.nan, rng.random((n, 2)) * 20),
                         rng.integers(0, 2**63, n).astype(np.uint64), rng.integers(0, 50, n).astype(np.uint64),
                         np.full(n, np.inf), np.ones(n, np.uint8), np.zeros(n, np.uint8), np.zeros(n, np.uint16),
                         rng.integers(0, 8, n).astype(np.uint16), dests=rng.integers(0, 4, n).astype(np.uint64))
    names = pd.Series([f"s{k:03d}" for k in rng.integers(0, sellers, n)], dtype=object)
    return sb.Books.of(names, entries, rng.integers(0, 255, (n, 7)).astype(np.uint8))


def _assert_same(got: sb.Books, want: sb.Books) -> None:
    assert got.sellers == want.sellers
    assert np.array_equal(got.seller, want.seller)
    assert got.entries.tobytes() == want.entries.tobytes()
    assert np.array_equal(got.median, want.median, equal_nan=True)
    assert got.bins is not None and want.bins is not None and np.array_equal(got.bins, want.bins)


def _parts(conn: sqlite3.Connection) -> list[int]:
    return [len(r[0]) // sb.ENTRY.itemsize for r in conn.execute("SELECT entries FROM seller_books ORDER BY part")]


def test_a_run_appends_only_the_entries_it_changed_and_reading_gives_the_books_back(conn) -> None:  # noqa: ANN001
    books = _books(2000, 40)
    with conn:
        books.save(conn, "run-1", whole=True)
    loaded = sb.Books.load(conn, "run-1")
    _assert_same(loaded, books)
    # a few orders change (one moves to a new seller), two are new; a quick rescore updates other entries in place
    changed = books.entries[[5, 17, 999]].copy()
    changed["bits"] ^= 1
    fresh = sb.entries(np.array([5000, 5001]), np.zeros(2, np.uint16), np.full((2, 2), np.nan),
                       np.zeros(2, np.uint64), np.zeros(2, np.uint64), np.full(2, np.inf), np.ones(2, np.uint8),
                       np.zeros(2, np.uint8), np.zeros(2, np.uint16), dests=np.zeros(2, np.uint64))
    names = [loaded.sellers[c] for c in loaded.seller[loaded.locate(changed["order"])]]
    names[1] = "a new seller"
    updated, _ = loaded.replaced(names + ["s001", "zz"], np.r_[changed, fresh],
                                 np.zeros((5, loaded.bins.shape[1]), np.uint8))
    at = updated.locate(np.array([100, 200]))
    updated.entries["score"][at] = [0.25, 0.5]
    updated.bins[updated.locate(np.array([300]))] += 1
    updated.median[0] = [1.5, 0.5]
    with conn:
        updated.save(conn, "run-2")
    assert _parts(conn) == [2000, 8]  # 3 changed, 2 new, 2 rescored, 1 rebinned
    _assert_same(sb.Books.load(conn, "run-2"), updated)
    assert sb.Books.load(conn, "run-1") is None  # books name the run they match
    # nothing changed: nothing appended
    again = sb.Books.load(conn, "run-2")
    with conn:
        again.save(conn, "run-3")
    assert _parts(conn) == [2000, 8]
    _assert_same(sb.Books.load(conn, "run-3"), updated)


def test_parts_outgrowing_half_the_books_are_written_whole_again(conn) -> None:  # noqa: ANN001
    books = _books(1000, 10)
    with conn:
        books.save(conn, "run-1", whole=True)
    expected = books
    for k, share in enumerate((0.3, 0.3)):
        loaded = sb.Books.load(conn, f"run-{k + 1}").editable()
        rows = np.flatnonzero(np.random.default_rng(k).random(len(loaded.entries)) < share)
        loaded.entries["score"][rows] = k
        with conn:
            loaded.save(conn, f"run-{k + 2}")
        expected = loaded
    assert len(_parts(conn)) == 1 and _parts(conn)[0] == 1000
    _assert_same(sb.Books.load(conn, "run-3"), expected)


def test_books_of_another_layout_are_not_read(conn) -> None:  # noqa: ANN001
    books = _books(100, 5)
    with conn:
        books.save(conn, "run-1", whole=True)
        conn.execute("UPDATE meta SET value = '2' WHERE key = ?", [sb.META_FORMAT])
    assert sb.Books.load(conn, "run-1") is None


def test_codes_kept_as_bits_are_spelt_as_the_scores_spell_them() -> None:
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 300, 700)
    codes = np.array(FLAG_CODES, dtype=object)[rng.integers(0, len(FLAG_CODES), 700)]
    keep = ~pd.DataFrame({"r": rows, "c": codes}).duplicated().to_numpy()
    texts = _joined_codes(rows[keep], codes[keep], 300)
    masks = sb.codes_mask(texts, FLAG_CODES)
    assert not (masks & sb.OTHER_CODES).any()
    assert list(sb.codes_text(masks, FLAG_CODES)) == list(texts)
    assert sb.codes_mask(np.array(["tracking_reused,a_plugin_code", None, ""], dtype=object), FLAG_CODES).tolist() \
        == [sb.OTHER_CODES | 2, 0, 0]


def test_entries_merged_in_sort_as_a_whole_sort_would() -> None:
    rng = np.random.default_rng(5)
    for head, tail in ((0, 50), (300, 0), (300, 40), (1, 1)):
        seller = np.r_[np.sort(rng.integers(0, 20, head)), rng.integers(0, 25, tail)].astype(np.int64)
        order = rng.permutation(10_000)[: head + tail].astype(np.int64)
        first = np.lexsort((order[:head], seller[:head]))
        seller[:head], order[:head] = seller[:head][first], order[:head][first]
        assert np.array_equal(sb._merge_order(seller, order, head), np.lexsort((order, seller)))
    # a head that is not sorted (it never is not) falls back to the whole sort
    seller, order = np.array([2, 1, 0]), np.array([5, 6, 7])
    assert np.array_equal(sb._merge_order(seller, order, 3), np.lexsort((order, seller)))


def test_among_answers_as_isin() -> None:
    rng = np.random.default_rng(9)
    values = rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64)
    chosen = np.r_[rng.choice(values, 40), rng.integers(0, 2**64 - 1, 40, dtype=np.uint64), [2**64 - 1]]
    assert np.array_equal(sb.among(values, chosen), np.isin(values, chosen))
    assert np.array_equal(sb.among(np.arange(10), np.array([], dtype=np.int64)), np.zeros(10, dtype=bool))


def test_medians_worked_out_again_only_where_known_transits_moved_match_all_worked_out_again() -> None:
    from detectors import seller_aggregates as sa
    from tracker.detection import scoring

    books = _books(3000, 300, seed=3)
    rng = np.random.default_rng(4)
    sellers = np.asarray(books.sellers, dtype=object)
    picked = rng.choice(len(books.entries), 60, replace=False)
    old = sb.pick(books.entries, picked)
    fresh = old.copy()
    seller_ids = sellers[books.seller[picked]].copy()
    fresh["bits"] ^= 1  # a changed entry whose transit did not move
    fresh["transit"][:20] = rng.random((20, 2)) * 30  # delivered anew, or a different transit
    fresh["transit"][20:30] = np.nan  # a transit no longer known
    seller_ids[30:40] = rng.choice(sellers, 10)  # moved to another seller, transit kept
    new = sb.entries(np.arange(10_001, 10_041, dtype=np.int64), np.zeros(40, np.uint16),
                     np.where(np.arange(40)[:, None] < 10, rng.random((40, 2)) * 10, np.nan),
                     np.zeros(40, np.uint64), np.zeros(40, np.uint64), np.full(40, np.inf), np.ones(40, np.uint8),
                     np.zeros(40, np.uint8), np.zeros(40, np.uint16), dests=np.zeros(40, np.uint64))
    new_sellers = np.array([f"n{k % 3}" if k < 6 else str(rng.choice(sellers)) for k in range(40)], dtype=object)
    fresh, seller_ids = np.r_[fresh, new], np.r_[seller_ids, new_sellers]
    found = np.r_[picked, np.full(40, -1)]
    updated, _ = books.replaced(seller_ids, fresh)
    moved = scoring._median_moved(books, updated, seller_ids, fresh, found)
    assert 0 < len(moved) < len(updated.sellers)
    in_moved = sb.among(updated.seller, moved)
    updated.median[moved] = sa.medians(updated.seller[in_moved], len(updated.sellers),
                                       updated.entries["transit"][in_moved])[moved]
    want = sa.medians(updated.seller, len(updated.sellers), updated.entries["transit"])
    assert np.array_equal(updated.median, want, equal_nan=True)


def _assert_buyer_history(books: sb.Books, stats: sb.BuyerStats, asked: np.ndarray) -> None:
    """Each asked buyer's counts as a scan of every entry finds them, and `of_buyers` as `np.isin`."""
    from detectors import seller_aggregates as sa

    for k, buyer in enumerate(stats.buyers.tolist()):
        mine = books.entries[books.entries["buyer"] == buyer]
        assert stats.orders[k] == len(mine)
        assert stats.not_received[k] == int(((mine["bits"] & sa.BIT["not_received"]) > 0).sum())
        assert stats.flagged[k] == int(((mine["bits"] & sa.BIT["flagged"]) > 0).sum())
    assert np.array_equal(books.of_buyers(asked), np.isin(books.entries["buyer"], asked))


def test_buyer_history_from_the_books_counts_as_a_scan_of_every_entry() -> None:

    books = _books(4000, 30, seed=5)  # 50 buyers: many orders each
    rng = np.random.default_rng(6)
    asked = np.r_[rng.choice(books.entries["buyer"], 20), np.uint64(10**6)]  # and one without orders
    _assert_buyer_history(books, sb.BuyerStats.of(books, asked), asked)
    assert not books.of_buyers(np.zeros(0, np.uint64)).any()


def _merged_by_sort(books: sb.Books, seller_ids: list[str], fresh: np.ndarray) -> tuple[list[str], np.ndarray,
                                                                                         np.ndarray]:
    """What `replaced` must give, by the obvious way: every kept entry and the new ones, sorted whole."""
    names = sorted(set(books.sellers) | set(seller_ids))
    by_order = {int(e["order"]): (books.sellers[c], e.tobytes()) for e, c in zip(books.entries, books.seller,
                                                                                 strict=True)}
    for name, e in zip(seller_ids, fresh, strict=True):
        by_order[int(e["order"])] = (name, e.tobytes())
    rows = sorted((names.index(name), order, raw) for order, (name, raw) in by_order.items())
    return names, np.array([r[0] for r in rows]), np.frombuffer(b"".join(r[2] for r in rows), dtype=sb.ENTRY)


@pytest.mark.parametrize("rowid_base", [1, 2**35])  # rowids a table can index, and ones it cannot (sorted search)
def test_entries_put_in_by_a_splice_match_a_whole_sort(rowid_base: int, monkeypatch) -> None:  # noqa: ANN001
    def whole_sort(*args: object) -> None:
        raise AssertionError("the books were sorted whole, not spliced")

    monkeypatch.setattr(sb, "_merge_order", whole_sort)
    books = _books(3000, 40, seed=11)
    books.entries["order"] += rowid_base - 1
    rng = np.random.default_rng(12)
    picked = rng.choice(len(books.entries), 200, replace=False)
    changed = sb.pick(books.entries, picked)
    changed["bits"] ^= 3
    names = [books.sellers[c] for c in books.seller[picked]]
    names[:30] = [f"s{k:03d}" for k in rng.integers(0, 60, 30)]  # moved to another seller, some of them new
    new = sb.pick(books.entries, np.arange(40))
    new["order"] = rowid_base + 10_000 + np.arange(40)
    seller_ids = names + ["s000", "zz"] * 20 + [names[0]]
    fresh = np.r_[changed, new, changed[:1]]  # an order given twice: the last entry wins
    fresh["score"][-1] = 0.75
    bins = rng.integers(0, 255, (len(fresh), books.bins.shape[1])).astype(np.uint8)
    updated, old_code = books.replaced(seller_ids, fresh, bins)
    names_want, seller_want, entries_want = _merged_by_sort(books, seller_ids, fresh)
    assert updated.sellers == names_want
    assert np.array_equal(updated.seller, seller_want)
    assert updated.entries.tobytes() == entries_want.tobytes()
    assert [updated.sellers[c] for c in range(len(updated.sellers)) if old_code[c] >= 0] == books.sellers
    # each order's binned input went with it: the new ones from `bins`, the others as they were
    at = updated.locate(fresh["order"])
    last = {int(o): k for k, o in enumerate(fresh["order"].tolist())}
    assert all(np.array_equal(updated.bins[at[k]], bins[k]) for k in last.values())
    kept = np.setdiff1d(books.entries["order"], fresh["order"])
    assert np.array_equal(updated.bins[updated.locate(kept)], books.bins[books.locate(kept)])
    assert np.array_equal(updated.locate(np.array([-5, rowid_base + 99_999])), [-1, -1])
    assert (updated._by_order[2] is None) == (rowid_base == 1)  # dense rowids: a table of positions, no sort
    # into empty books: the entries sorted
    empty = sb.Books([], np.zeros(0, sb.ENTRY), np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 7), np.uint8))
    alone, _ = empty.replaced(seller_ids, fresh, bins)
    assert alone.entries.tobytes() == _merged_by_sort(empty, seller_ids, fresh)[2].tobytes()


def test_the_changed_entries_are_those_whose_bytes_differ_however_they_moved(conn) -> None:  # noqa: ANN001
    books = _books(200_000, 300, seed=13)  # several slices of `COMPARE_ROWS`
    with conn:
        books.save(conn, "run-1", whole=True)
    loaded = sb.Books.load(conn, "run-1")
    assert not len(loaded._changed())
    with pytest.raises(ValueError, match="read-only"):  # the books as read share the stored books' arrays
        loaded.entries["score"][0] = 0.5
    loaded = loaded.editable()
    assert not len(loaded._changed())
    rows = np.array([3, 70_000, 199_999])
    loaded.entries["score"][rows] = 0.5  # in place: the same orders at the same positions
    loaded.bins[150_000, 2] ^= 1
    assert loaded._changed().tolist() == [3, 70_000, 150_000, 199_999]
    # one new order at the front of the first seller shifts every position after it
    new = sb.pick(loaded.entries, [0])
    new["order"] = 0
    updated, _ = loaded.replaced([loaded.sellers[0]], new, np.zeros((1, 7), np.uint8))
    want = sorted({0} | {int(p) for p in updated.locate(loaded.entries["order"][[3, 70_000, 150_000, 199_999]])})
    assert updated._changed().tolist() == want


def test_buyer_history_is_counted_by_a_hash_of_the_buyers_asked_without_a_sort(monkeypatch) -> None:  # noqa: ANN001
    from detectors import seller_aggregates as sa

    books = _books(5000, 30, seed=21)
    rng = np.random.default_rng(22)
    picked = rng.choice(len(books.entries), 300, replace=False)
    fresh = sb.pick(books.entries, picked)
    fresh["buyer"] = rng.integers(0, 80, len(fresh)).astype(np.uint64)  # some to buyers not there before
    fresh["bits"] ^= sa.BIT["not_received"] | sa.BIT["flagged"]
    updated, _ = books.replaced([books.sellers[c] for c in books.seller[picked]], fresh)

    def sorted_whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("the buyers were sorted")

    monkeypatch.setattr(sb.np, "argsort", sorted_whole)
    asked = np.r_[rng.integers(0, 90, 40).astype(np.uint64), np.uint64(2**64 - 1)]
    stats = sb.BuyerStats.of(updated, asked)
    monkeypatch.undo()
    assert np.array_equal(stats.buyers, np.unique(asked))
    _assert_buyer_history(updated, stats, asked)


def test_entries_of_orders_already_in_their_sellers_books_are_put_in_place(monkeypatch) -> None:  # noqa: ANN001
    books = _books(3000, 40, seed=41)
    rng = np.random.default_rng(42)
    picked = rng.choice(len(books.entries), 100, replace=False)
    fresh = sb.pick(books.entries, picked)
    fresh["bits"] ^= 5
    fresh["buyer"][:10] = 999  # a buyer moved
    seller_ids = [books.sellers[c] for c in books.seller[picked]]
    bins = rng.integers(0, 255, (len(fresh), books.bins.shape[1])).astype(np.uint8)
    want_sellers, want_seller, want_entries = _merged_by_sort(books, seller_ids, fresh)

    def merged(*args: object) -> None:
        raise AssertionError("merged, where every entry had its place already")

    monkeypatch.setattr(sb, "_splice", merged)
    updated, _ = books.replaced(seller_ids, fresh, bins)
    assert updated.sellers == want_sellers and np.array_equal(updated.seller, want_seller)
    assert updated.entries.tobytes() == want_entries.tobytes()
    assert np.array_equal(updated.bins[picked], bins)
    assert np.array_equal(np.delete(updated.bins, picked, axis=0), np.delete(books.bins, picked, axis=0))
    assert np.array_equal(updated.of_buyers(np.array([999], np.uint64)), updated.entries["buyer"] == 999)


def test_entries_of_some_sellers_or_orders_are_found_as_a_search_of_every_entry_finds_them() -> None:
    books = _books(4000, 60, seed=51)
    rng = np.random.default_rng(52)
    for codes in (rng.integers(0, 70, 12), np.array([], dtype=np.int64), np.arange(len(books.sellers))):
        assert np.array_equal(books.of_sellers(codes), np.isin(books.seller, codes))
    rowids = np.r_[rng.choice(books.entries["order"], 50), [10**9, -3]]
    assert np.array_equal(books.of_orders(rowids), np.isin(books.entries["order"], rowids))
    # entries not sorted by seller (never so in books): the search of every entry
    shuffled = sb.Books(books.sellers, books.entries[::-1].copy(), books.seller[::-1].copy(), books.median)
    assert np.array_equal(shuffled.of_sellers(np.array([3, 5])), np.isin(shuffled.seller, [3, 5]))


def test_the_books_typical_transit_is_the_frames_by_destination_hash() -> None:
    """`typical_moved` works out the typical transit from each entry's destination hash and transit with the one
    definition (`detectors.features.typical_transit`); it agrees with that of the countries' names, "" counted
    for "*" only, and says moved exactly when settling the fresh one against the kept one would take the fresh."""
    from detectors import features

    rng = np.random.default_rng(3)
    n = 3000
    names = np.array(["FR", "DE", "", "PL", "IL"], dtype=object)[rng.choice(5, n, p=[0.4, 0.3, 0.2, 0.095, 0.005])]
    transit = np.where(rng.random(n) < 0.3, np.nan, rng.gamma(4, 3, n))
    entries = sb.entries(np.arange(n, dtype=np.int64), np.zeros(n, np.uint16), np.column_stack([transit, transit]),
                         np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.full(n, np.inf), np.ones(n, np.uint8),
                         np.zeros(n, np.uint8), np.zeros(n, np.uint16), dests=sb.hashes(names))
    books = sb.Books.of(pd.Series(["s"] * n, dtype=object), entries, None)
    kept = features.typical_transit(names, transit)
    assert set(kept) == {"*", "FR", "DE", "PL"}  # IL below the minimum of deliveries, "" no country
    assert not sb.typical_moved(books, kept)
    assert not sb.typical_moved(books, {k: v * 1.04 for k, v in kept.items()})  # within the drift: kept stands
    assert sb.typical_moved(books, {k: v * 1.2 for k, v in kept.items()})
    assert sb.typical_moved(books, {k: v for k, v in kept.items() if k != "PL"})  # another set of destinations
    assert not sb.typical_moved(books, None)


def test_books_read_ahead_are_handed_over_only_while_the_scores_run_is_the_one_read(tmp_path, conn) -> None:  # noqa: ANN001
    """`LoadAhead` reads the scores' run token and that run's books on a thread and connection of its own: the
    books it hands over are the ones `Books.load` reads (appended parts applied); once another run's scores are
    in, or where it could not read the store, it hands over nothing (`NOT_READ`) and the caller reads them."""
    path = tmp_path / "books.db"
    books = _books(1500, 30)
    with conn:
        books.save(conn, "run-1", whole=True)
    changed = sb.Books.load(conn, "run-1").editable()
    changed.entries["score"][[3, 700]] = [0.5, 0.75]
    with conn:
        changed.save(conn, "run-2")
        conn.execute("INSERT INTO meta(key, value) VALUES ('scores_run', 'run-2')")
    assert len(_parts(conn)) == 2
    ahead = LoadAhead(str(path), "scores_run")
    got = ahead.books("run-2")
    want = sb.Books.load(conn, "run-2")
    _assert_same(got, want)
    assert got.appended == want.appended == 2
    assert got.stored is not None and got.stored.entries.tobytes() == want.stored.entries.tobytes()
    # another run's scores came in since the thread read: not handed over
    stale = LoadAhead(str(path), "scores_run")
    stale._thread.join()
    with conn:
        conn.execute("UPDATE meta SET value = 'run-3' WHERE key = 'scores_run'")
    assert stale.books("run-3") is NOT_READ
    # the scores' run has no books: none, as `Books.load` says
    assert LoadAhead(str(path), "scores_run").books("run-3") is None is sb.Books.load(conn, "run-3")
    # a file that is no store: nothing read ahead
    (tmp_path / "not-a-store.db").write_bytes(b"plain text, not SQLite" * 100)
    assert LoadAhead(str(tmp_path / "not-a-store.db"), "scores_run").books("run-2") is NOT_READ


def test_the_books_can_be_read_ahead_before_numpy_or_pandas_is_imported() -> None:
    """`detect` starts reading the books before it imports the detection modules, so the thread reads while the run
    imports: starting it (`tracker.detection.books_ahead`, with `tracker.plan` for the store's file) imports neither
    numpy nor pandas, and the thread imports what it needs itself."""
    import subprocess
    import sys

    code = ("import sys, tracker.detection.books_ahead, tracker.plan; "
            "print(sorted(m for m in ('numpy', 'pandas', 'sqlite_utils') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("ahead", [False, True])
def test_entries_put_in_place_over_copies_made_ahead_leave_the_books_read_as_they_were(ahead: bool) -> None:
    """`copy_ahead`'s copies (made by a thread) are what the new entries are written over, once: the books they
    were copied from keep their bytes, and a second `replaced` makes copies of its own."""
    books = _books(3000, 40, seed=61)
    before = (books.entries.tobytes(), books.bins.tobytes())
    rng = np.random.default_rng(62)
    picked = rng.choice(len(books.entries), 100, replace=False)
    fresh = sb.pick(books.entries, picked)
    fresh["bits"] ^= 3
    seller_ids = [books.sellers[c] for c in books.seller[picked]]
    bins = rng.integers(0, 255, (len(fresh), books.bins.shape[1])).astype(np.uint8)
    want_sellers, want_seller, want_entries = _merged_by_sort(books, seller_ids, fresh)
    made = None
    if ahead:
        books.copy_ahead()
        made = books._copies.result()  # the thread's copies
    first, _ = books.replaced(seller_ids, fresh, bins)
    assert books._copies is None  # taken (or never made)
    if made is not None:  # written over, not copied again
        assert np.shares_memory(first.entries, made[0]) and np.shares_memory(first.bins, made[1])
    second, _ = books.replaced(seller_ids, fresh, bins)
    for updated in (first, second):
        assert updated.sellers == want_sellers and np.array_equal(updated.seller, want_seller)
        assert updated.entries.tobytes() == want_entries.tobytes()
        assert np.array_equal(updated.bins[picked], bins)
        assert np.array_equal(np.delete(updated.bins, picked, axis=0), np.delete(books.bins, picked, axis=0))
    assert (books.entries.tobytes(), books.bins.tobytes()) == before
    assert not np.shares_memory(first.entries, second.entries) and not np.shares_memory(first.bins, second.bins)
    assert not np.shares_memory(first.entries, books.entries)


@pytest.mark.parametrize("room", [0, 20, 25])
def test_orders_new_to_the_books_are_merged_into_the_memory_made_ahead_where_it_has_room(room: int) -> None:
    """A merge (orders new to the books) picks the kept entries into the arrays `copy_ahead` made where they have
    room for the new ones, else into its own; the same books either way, and the copies are let go."""
    books = _books(2000, 30, seed=71)
    rng = np.random.default_rng(72)
    new = sb.pick(books.entries, rng.choice(len(books.entries), 20, replace=False))
    new["order"] = np.arange(10_001, 10_021)  # orders new to the books: merged in, not put in place
    seller_ids = [f"s{k:03d}" for k in rng.integers(0, 30, 20)]
    bins = rng.integers(0, 255, (20, books.bins.shape[1])).astype(np.uint8)
    want = books.replaced(seller_ids, new, bins)[0]
    books.copy_ahead(room)
    made = books._copies.result()
    got, _ = books.replaced(seller_ids, new, bins)
    assert books._copies is None
    assert got.entries.tobytes() == want.entries.tobytes() and np.array_equal(got.seller, want.seller)
    assert np.array_equal(got.bins, want.bins)
    fits = room >= 20
    assert np.shares_memory(got.entries, made[0]) == fits and np.shares_memory(got.bins, made[1]) == fits
