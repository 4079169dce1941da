"""The columnar whole-store read (detectors.columnar) gives exactly the SQL aggregates' frame and flags."""

from __future__ import annotations

import logging
import shutil

import pandas as pd
import pytest

from detectors import columnar, view

pytest.importorskip("adbc_driver_sqlite")


def _frame(conn, monkeypatch, columnar_path: bool, kinds: view.ScanKinds | None = None) -> pd.DataFrame:
    monkeypatch.setattr(view, "COLUMNAR_MIN_EVENTS", 0 if columnar_path else 10**12)
    frame = view.load_order_frame(conn, kinds=kinds)
    return frame.sort_values("order_id").reset_index(drop=True)


def _event(i: int, number: str, at: str, status: str, raw_code=None, description=None, city=None, postcode=None,
           country=None) -> tuple:
    return (number, at, status, raw_code, description, city, postcode, country, f"key-{i}")


def _awkward_store(db) -> None:
    """Orders and events with every shape the aggregates must agree on."""
    orders = [
        # order_id, buyer, seller, ordered_at, country, city, postcode, number, shipped_at, promised_days, confirmed, received
        ("A1", "b1", "s1", "2026-09-01T10:00:00Z", "ES", "Málaga", "29001", "LP00000000001", "2026-09-02T10:00:00Z",
         12, None, "no"),
        ("A2", "b2", "s1", "2026-09-01T11:00:00Z", "ES", "Madrid", "28013", "LP00000000001", None, "12.5", None, None),
        ("A3", "b3", "s2", "2026-09-03T00:00:00Z", "RU", "Kazan", "420066", "RR123456785CN", None, "soon",
         "2026-09-20T08:00:00Z", "yes"),
        ("A4", "b4", "s2", "2026-09-03T00:00:00Z", "FR", "Paris", None, None, None, None, None, None),
        ("A5", "b5", "s3", "2026-09-04T00:00:00Z", "US", None, "10001", "", None, None, None, None),
        ("A6", "b6", "s3", "2026-09-04T00:00:00Z", "BR", "São Paulo", "01310-100", "YT0000000000000001", None, None,
         None, None),  # a number without events
        ("A7", "b7", "s4", "2026-09-05T00:00:00Z", "ES", "Zaragoza", "50001", "LP00000000007", None, None, None, None),
    ]
    db.conn.executemany(
        "INSERT INTO orders (order_id, buyer_id, seller_id, ordered_at, dest_country, dest_city, dest_postcode, "
        "tracking_number, shipped_at, promised_days, buyer_confirmed_at, buyer_received) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)
    db.conn.execute("INSERT INTO shipments (tracking_number, state, not_found_count) VALUES ('LP00000000007', "
                    "'not_found', 3)")
    e = [
        _event(1, "LP00000000001", "2026-09-02T12:00:00Z", "info_received", "GWMS_ACCEPT", "Order received"),
        _event(2, "LP00000000001", "2026-09-03T12:00:00Z", "in_transit", None, "Export customs clearance done"),
        _event(3, "LP00000000001", "2026-09-08T12:00:00Z", "in_transit", None, "IMPORT customs", "Madrid", None, "ES"),
        _event(4, "LP00000000001", "2026-09-09T12:00:00Z", "out_for_delivery", "GTMS_DO_DEPART", "Out",
               "Málaga", "29001", "ES"),
        _event(5, "LP00000000001", "2026-09-10T12:00:00Z", "delivered", "GTMS_SIGNED", "Delivered", "Madrid",
               "28013", "ES"),
        _event(6, "LP00000000001", "2026-09-10T13:00:00Z", "delivered", "GTMS_SIGNED", "Delivered", "Ávila",
               None, "ES"),
        _event(7, "RR123456785CN", "2026-09-04T00:00:00Z", "in_transit", "CC_EX_SUCCESS", None, "Shenzhen", None,
               "CN"),
        _event(8, "RR123456785CN", "2026-09-12T00:00:00Z", "in_transit", "CC_IM_SUCCESS", None, None, None, "ru"),
        _event(9, "RR123456785CN", "2026-09-13T00:00:00Z", "delivered", "GTMS_SIGNED", None, "KAZAN", "420 066",
               "RU"),
        _event(10, "RR123456785CN", "2026-09-13T01:00:00Z", "not_found", None, None),
        _event(11, "RR123456785CN", "2026-09-12T06:00:00Z", "unknown", "GTMS_DO_ARRIVE", None, None, None, ""),
        _event(12, "LP00000000007", "2026-09-06T00:00:00Z", "not_found", None, None),
        _event(13, "LP99999999999", "2026-09-06T00:00:00Z", "in_transit", "LH_DEPART", "no order has me"),
        _event(14, "LP00000000001", "2026-09-01T09:00:00Z", "exception", "GTMS_DEL_FAILURE", "exportation", "Zürich",
               "8001", "CH"),
    ]
    db.conn.executemany(
        "INSERT INTO tracking_events (tracking_number, occurred_at, status, raw_code, description, city, postcode, "
        "country, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", e)
    db.conn.commit()


@pytest.mark.parametrize("slice_size", [1, 3, 1000])
def test_columnar_frame_equals_sql_frame(db, monkeypatch, slice_size):
    _awkward_store(db)
    monkeypatch.setattr(columnar, "EVENTS_PER_SLICE", slice_size)  # numbers straddle slices at 1 and 3
    sql = _frame(db.conn, monkeypatch, columnar_path=False)
    fast = _frame(db.conn, monkeypatch, columnar_path=True)
    pd.testing.assert_frame_equal(fast, sql, check_exact=True)
    # the facts themselves, not only agreement: the first parcel's places and counts
    a1 = fast.set_index("order_id").loc["A1"]
    assert (a1.n_events, a1.n_export, a1.n_import, a1.n_orders_on_number) == (7, 1, 1, 2)
    assert (a1.locality_min, a1.locality_max) == ("CH|Zürich|8001", "ES|Ávila|")  # bytes order: 'M' < 'Á'
    assert fast.set_index("order_id").loc["A3"].country_side_min == ""


def test_columnar_follows_the_scan_kinds_of_the_settings(db, monkeypatch):
    _awkward_store(db)
    kinds = view.ScanKinds(locality_codes=("GTMS_[S]*",), locality_statuses=(), export_codes=("CC_E?_*",))
    sql = _frame(db.conn, monkeypatch, False, kinds)
    fast = _frame(db.conn, monkeypatch, True, kinds)
    pd.testing.assert_frame_equal(fast, sql, check_exact=True)
    # only signed scans count as local now: the Zürich failure and the Málaga departure no longer do
    assert sql.set_index("order_id").loc["A1"].locality_min == "ES|Madrid|28013"


def test_a_time_not_in_canonical_form_leaves_the_answer_to_sql(db, monkeypatch, caplog):
    _awkward_store(db)
    db.conn.execute("INSERT INTO tracking_events (tracking_number, occurred_at, status, event_key) "
                    "VALUES ('LP00000000007', '2026-09-07 10:00', 'in_transit', 'odd')")
    db.conn.commit()
    with pytest.raises(columnar.Fallback):  # raised in a reader, re-raised here
        columnar.load_whole_store(str(db.conn.execute("PRAGMA database_list").fetchone()[2]), view.ScanKinds())
    sql = _frame(db.conn, monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger="detectors.view"):
        fallback = _frame(db.conn, monkeypatch, True)
    assert "using SQL aggregates" in caplog.text
    pd.testing.assert_frame_equal(fallback, sql, check_exact=True)


def test_columnar_detect_raises_the_same_flags_on_a_world(tmp_path, monkeypatch):
    world = pytest.importorskip("tracker.world.world")
    from tracker.db import open_db
    from tracker.flagging import run_rules
    from tracker.importers import import_file

    world.write_world(tmp_path, 1500, seed=11)
    first = tmp_path / "columnar.db"
    db = open_db(first)
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, tmp_path / f"{kind}.csv")
    db.close()
    shutil.copy(first, tmp_path / "sql.db")
    flags = {}
    for name, threshold in (("columnar", 0), ("sql", 10**12)):
        monkeypatch.setattr(view, "COLUMNAR_MIN_EVENTS", threshold)
        monkeypatch.setattr(columnar, "EVENTS_PER_SLICE", 2000)
        db = open_db(tmp_path / f"{name}.db")
        run_rules(db, world._as_of(None), full=True)
        flags[name] = db.conn.execute("SELECT order_id, code, severity, explanation, evidence, rule_version "
                                      "FROM flags ORDER BY order_id, code").fetchall()
        db.close()
    assert len(flags["sql"]) > 50
    assert flags["columnar"] == flags["sql"]


def test_a_path_with_uri_characters_is_read(tmp_path, monkeypatch):
    from tracker.db import open_db

    folder = tmp_path / "odd #dir?%20"
    folder.mkdir()
    db = open_db(folder / "t.db")
    _awkward_store(db)
    sql = _frame(db.conn, monkeypatch, False)
    fast = columnar.load_whole_store(str(folder / "t.db"), view.ScanKinds())
    assert len(fast) == len(sql) == 7
    assert set(fast["order_id"]) == set(sql["order_id"])
    db.close()
