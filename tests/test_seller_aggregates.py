"""Seller aggregates, defined once (`detectors.seller_aggregates`): over a whole frame they are, bit for bit, what
the frame-wide computation they replace gave (kept here as the oracle); from a seller's statistics, each order's
features are those of the whole frame; and the transform hands them to the model as they are (so their bins are
the model's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors import seller_aggregates as sa
from detectors.features import FEATURES, FLAG_CODES, OrderFeatures


def _oracle(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The seller aggregates as detectors.features computed them before they had a module of their own."""
    def codes(values: pd.Series) -> tuple[np.ndarray, int]:
        c, u = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
        return c.astype(np.int64) + 1, len(u) + 1

    def group_sum(keys: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
        return np.bincount(keys, weights=values, minlength=n)[keys]

    def loo(seller: np.ndarray, n: int, values: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
        counted = np.ones(len(values)) if counted is None else np.asarray(counted, dtype=float)
        values = np.where(counted > 0, np.asarray(values, dtype=float), 0.0)
        total = group_sum(seller, n, values) - values
        k = group_sum(seller, n, counted) - counted
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(k > 0, total / k, np.nan)

    seller, n = codes(frame["seller_id"])
    transit = (frame["delivered_jd"] - frame["first_event_jd"]).to_numpy()
    delivered = frame["delivered_jd"].notna().to_numpy()
    any_flag = frame[[f"flag_{c}" for c in FLAG_CODES]].to_numpy().sum(axis=1) > 0
    no_customs = ((frame["n_export"] + frame["n_import"]) == 0).to_numpy()
    not_received = np.array([str(v).strip().lower() == "no" if isinstance(v, str) else False
                             for v in frame["buyer_received"].to_numpy(dtype=object)])
    return {
        "seller_n_orders": np.bincount(seller, minlength=n)[seller],
        "seller_flag_rate": loo(seller, n, any_flag),
        "seller_median_transit": pd.Series(transit).groupby(seller).transform("median").to_numpy(),
        "seller_fast_share": loo(seller, n, transit < 6, delivered),
        "seller_reuse_share": loo(seller, n, frame["buyers_on_number"].to_numpy() > 1),
        "seller_no_customs_share": loo(seller, n, no_customs, delivered),
        "seller_not_received_share": loo(seller, n, not_received),
        "seller_pressure_share": loo(seller, n, frame["msg_pressure_max"].to_numpy() >= 0.5),
    }


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool((a.view(np.int64) == b.view(np.int64)).all())


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from tracker.db import open_db
    from tracker.detection import readers
    from tracker.detection.flagging import run_rules
    from tracker.importers import import_file
    from tracker.world import world

    folder = tmp_path_factory.mktemp("sellers")
    world.write_world(folder, 3000, seed=23)
    db = open_db(folder / "tracker.db")
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, folder / f"{kind}.csv")
    run_rules(db, world._as_of(None), full=True)
    out = readers.feature_frame(db.conn, None, world._as_of(None), lambda m: (m["text"].str.len() % 7) / 6.0)
    db.close()
    return out


def test_over_a_whole_frame_the_aggregates_are_the_former_ones_bit_for_bit(frame: pd.DataFrame) -> None:
    expected = _oracle(frame)
    assert frame["seller_id"].nunique() > 20 and np.isfinite(frame["seller_median_transit"]).any()
    for name, values in expected.items():
        assert _same_bits(frame[name].to_numpy(), values), name


def test_each_orders_features_follow_from_its_sellers_statistics(frame: pd.DataFrame) -> None:
    """Statistics of the whole book, then features for a few orders only: the whole frame's values."""
    seller, n = sa.seller_codes(frame["seller_id"])
    bits, transit = sa.order_signals(frame, [f"flag_{c}" for c in FLAG_CODES])
    stats = sa.SellerStats.of(seller, n, bits, transit)
    some = np.arange(0, len(frame), 7)
    for name, values in stats.features(seller[some], bits[some]).items():
        assert _same_bits(values, frame[name].to_numpy()[some]), name


def test_medians_match_pandas_on_even_and_odd_groups() -> None:
    rng = np.random.default_rng(3)
    seller = rng.integers(0, 40, 2000)
    values = np.where(rng.random(2000) < 0.3, np.nan, rng.random(2000) * 20)
    ours = sa.medians(seller, 41, values)[seller]
    theirs = pd.Series(values).groupby(seller).transform("median").to_numpy()
    assert _same_bits(ours, theirs)


def test_the_transform_hands_seller_features_to_the_model_unchanged(frame: pd.DataFrame) -> None:
    """What `tracker.detection.rescoring` relies on: a seller feature's value is the frame column's, so which
    side of a split it falls on follows from the column alone."""
    model = OrderFeatures().fit(frame)
    features = model.transform_frame(frame)
    for name in sa.FEATURES:
        if name in FEATURES:
            assert _same_bits(features[name].to_numpy(), frame[name].to_numpy(dtype=float)), name


def test_the_books_buyer_statistics_give_the_frames_buyer_features(frame: pd.DataFrame) -> None:
    """Incremental scoring counts a buyer's history from the seller books (`seller_books.BuyerStats`): over a frame
    of the whole store, each order's buyer features are those the transform computes from the frame."""
    from tracker.detection import seller_books

    flag_columns = [f"flag_{c}" for c in FLAG_CODES]
    bits, transit = sa.order_signals(frame, flag_columns)
    n = len(frame)
    entries = seller_books.entries(np.arange(n, dtype=np.int64), bits, transit,
                                   seller_books.hashes(frame["tracking_number"]), seller_books.hashes(frame["buyer_id"]),
                                   np.full(n, np.inf), np.ones(n, np.uint8), np.zeros(n, np.uint8),
                                   seller_books.flag_mask(frame, flag_columns), dests=np.zeros(n, np.uint64))
    books = seller_books.Books.of(frame["seller_id"], entries, None)
    stats = seller_books.BuyerStats.of(books, entries["buyer"])
    names = ("buyer_n_orders", "buyer_not_received_other", "buyer_flagged_other")
    want = OrderFeatures(features=names).fit().transform_frame(frame)
    got = stats.features(entries)
    for name in names:
        assert _same_bits(got[name], want[name].to_numpy()), name


def test_a_categorical_column_hashes_as_its_texts_do() -> None:
    """The whole-store frame reads text as categoricals; the books key numbers and buyers by the same hashes."""
    from tracker.detection import seller_books

    texts = pd.Series(["LA1", None, "LB2", "", "LA1", None, "ü"], dtype=object)
    assert np.array_equal(seller_books.hashes(texts.astype("category")), seller_books.hashes(texts))
    assert np.array_equal(seller_books.hashes(texts.astype("category").iloc[[1, 5]]),
                          seller_books.hashes(texts.iloc[[1, 5]]))


def test_signal_sums_counted_by_pattern_equal_a_count_per_signal(monkeypatch) -> None:  # noqa: ANN001
    rng = np.random.default_rng(31)
    seller = rng.integers(0, 700, 20_000)
    bits = (rng.integers(0, 1 << len(sa.SIGNALS), 20_000) & rng.integers(0, 1 << len(sa.SIGNALS), 20_000)).astype(
        sa.BITS)
    spans = np.full((20_000, sa.SPANS), np.nan)
    want = np.stack([np.bincount(seller[(bits & sa.BIT[name]) > 0], minlength=705) for name in sa.SIGNALS], axis=1)
    got = sa.SellerStats.of(seller, 705, bits, spans)
    assert got.sums.dtype == np.int64 and np.array_equal(got.sums, want)
    monkeypatch.setattr(sa, "BY_PATTERN_SELLERS", 10)  # too many sellers for a count per pattern: per signal
    assert np.array_equal(sa.SellerStats.of(seller, 705, bits, spans).sums, want)
    assert sa.SellerStats.of(seller[:0], 3, bits[:0], spans[:0]).sums.shape == (3, len(sa.SIGNALS))


def test_a_value_snaps_to_its_grids_nearest_point_halfway_to_the_lower_one() -> None:
    shares = sa.snap("share", np.array([0.0, 0.02, 0.025, 0.026, 0.31, 0.974, 0.975, 1.0, 1.3, -0.2, np.nan]))
    np.testing.assert_array_equal(shares, [0.0, 0.0, 0.0, 0.05, 0.3, 0.95, 0.95, 1.0, 1.0, 0.0, np.nan])
    np.testing.assert_array_equal(sa.snap("count", np.array([1, 5, 5.1, 7, 7.5, 10, 10.5, 1e9])),
                                  [1, 4, 6, 6, 8, 8, 12, sa.GRIDS["count"][-1]])
    np.testing.assert_array_equal(sa.snap("ratio", np.array([0.84, 0.86, 1.249])), [0.8, 0.9, 1.2])


def test_every_seller_feature_has_a_grid_and_every_grid_rises() -> None:
    assert set(sa.GRID_OF) == set(sa.FEATURES)
    for name, points in sa.GRIDS.items():
        assert len(points) > 5 and bool(np.all(np.diff(points) > 0)), name
