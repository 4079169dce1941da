"""One definition of a shipment's facts (detectors.facts), computed the same by every path that computes it:
events read through SQL in one piece or in slices, or by the child readers through Arrow, a slice each; kept in
`shipment_facts` and read alike by the rules and the classifier."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from detectors import facts
from detectors.facts import FACT_COLUMNS, ScanKinds
from detectors.view import jd_to_text
from tracker.detection import readers, shipment_facts, store
from tracker.plan import override

pytest.importorskip("adbc_driver_sqlite")


def _event(i: int, number: str, at: str, status: str, raw_code=None, description=None, city=None, postcode=None,
           country=None) -> tuple:
    return (number, at, status, raw_code, description, city, postcode, country, f"key-{i}")


def _awkward_store(db) -> None:
    """Orders and events with every shape the facts must agree on."""
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
        # the order: a 'not found' answer first, then an export scan without a raw code
        ("A8", "b8", "s4", "2026-08-31T00:00:00Z", "DE", "Berlin", "10115", "LP00000000008", None, None, None, None),
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
        # two delivered scans at the same time (the lower id's place is the delivered place), a time in
        # another ISO form, two latest scans at the same time (the higher id's is the last hand-over)
        _event(15, "RR123456785CN", "2026-09-13T00:00:00Z", "delivered", "GTMS_SIGNED", None, "Kazan", "420066",
               "RU"),
        _event(16, "LP99999999999", "2026-09-07 10:00", "in_transit", "LH_ARRIVE", None, "Almaty", None, "KZ"),
        _event(17, "LP99999999999", "2026-09-07T10:00:00Z", "in_transit", "CC_IM_SUCCESS", None, "Astana", None,
               "KZ"),
        _event(18, "LP00000000008", "2026-09-01T09:00:00Z", "not_found", None, "No information yet"),
        _event(19, "LP00000000008", "2026-09-02T14:00:00Z", "in_transit", None, "Export clearance completed",
               "Guangzhou", None, "CN"),
        _event(20, "LP00000000008", "not a time", "in_transit", "LH_DEPART", None, "Guangzhou", None, "CN"),
    ]
    db.conn.executemany(
        "INSERT INTO tracking_events (tracking_number, occurred_at, status, raw_code, description, city, postcode, "
        "country, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", e)
    db.conn.commit()


def _table(db) -> pd.DataFrame:
    return store.frame(db.conn, f"SELECT tracking_number, {', '.join(FACT_COLUMNS)} FROM shipment_facts "
                                "ORDER BY tracking_number")


def _refreshed(db, by: str = "sql", **thresholds) -> pd.DataFrame:
    """The facts table made anew by a whole refresh with these thresholds, computed `by` these."""
    with db.conn:
        db.conn.execute("DELETE FROM meta WHERE key LIKE 'shipment_facts%'")
    with override(**thresholds):
        assert shipment_facts.refresh(db).by == by
    return _table(db)


@pytest.mark.parametrize("slice_size", [1, 3, 1000])
def test_the_child_readers_compute_the_one_definition(db, slice_size):
    """The parity test: the Arrow fast path (child processes, a slice of events each, combined) gives the table
    the definition gives over every event at once, read through SQL; so do SQL slices."""
    _awkward_store(db)
    by_children = _refreshed(db, "child readers", columnar_min_events=0, events_per_slice=slice_size)
    by_sql_slices = _refreshed(db, never_children=True, events_per_slice=slice_size)
    whole = pd.DataFrame(facts.shipment_facts(store.event_columns(db.conn, ids=(0, 10**9)), ScanKinds()))
    whole = whole.sort_values("tracking_number").reset_index(drop=True)
    pd.testing.assert_frame_equal(by_children, by_sql_slices, check_exact=True)
    pd.testing.assert_frame_equal(by_children, whole.astype(by_children.dtypes.to_dict()), check_exact=True,
                                  check_dtype=False)


def test_each_fact_means_what_the_definition_says(db):
    _awkward_store(db)
    found = _refreshed(db, "child readers", columnar_min_events=0, events_per_slice=2).set_index("tracking_number")
    lp1, rr, lh, lp8 = (found.loc[n] for n in ("LP00000000001", "RR123456785CN", "LP99999999999", "LP00000000008"))
    assert (lp1.n_events, lp1.n_scans, lp1.n_export, lp1.n_import, lp1.n_customs, lp1.n_delivered) == (7, 6, 1, 1, 2, 2)
    # the earliest event is the exception scan (a physical scan); 'exportation' with a raw code is no export
    assert jd_to_text(lp1.first_event_jd) == "2026-09-01T09:00:00Z" == jd_to_text(lp1.first_scan_jd)
    assert (lp1.locality_min, lp1.locality_max) == ("CH|Zürich|8001", "ES|Ávila|")  # bytes order: 'M' < 'Á'
    assert (lp1.delivered_city, lp1.last_scan_city, lp1.last_scan_raw_code) == ("Madrid", "Ávila", "GTMS_SIGNED")
    # 'not found' and 'unknown' are no carrier events; of two delivered scans at one time, the lower id's place
    assert jd_to_text(rr.first_event_jd) == "2026-09-04T00:00:00Z"
    assert jd_to_text(rr.last_event_jd) == "2026-09-13T00:00:00Z" == jd_to_text(rr.last_scan_jd)
    assert (rr.delivered_city, rr.delivered_postcode, rr.last_scan_city) == ("KAZAN", "420 066", "Kazan")
    assert (rr.n_customs, rr.country_side_min, rr.country_side_max) == (2, "", "ru")
    # a time in another ISO form is read; of two latest scans at one time, the higher id's is the last hand-over
    assert (lh.n_linehaul, lh.last_scan_raw_code, lh.last_scan_city) == (2, "CC_IM_SUCCESS", "Astana")
    # the order: the 'not found' answer is no first event; the export scan without a raw code counts;
    # an event whose time is no time counts as an event, in no time fact
    assert jd_to_text(lp8.first_event_jd) == "2026-09-02T14:00:00Z" == jd_to_text(lp8.last_event_jd)
    assert (lp8.n_events, lp8.n_export, lp8.n_linehaul, lp8.last_scan_country) == (3, 1, 1, "CN")
    assert found.loc["LP00000000007"].n_scans == 0 and np.isnan(found.loc["LP00000000007"].first_event_jd)


def test_rules_and_classifier_read_the_same_facts(db):
    from detectors.features import FEATURE_FACTS

    _awkward_store(db)
    shipment_facts.refresh(db)
    rules = readers.rule_frame(db.conn).set_index("order_id")
    scored = readers.feature_frame(db.conn, None, pd.Timestamp("2026-10-01", tz="UTC").to_pydatetime(),
                                   lambda m: np.zeros(len(m))).set_index("order_id")
    both = rules.index.intersection(scored.index)
    assert len(both) == 8
    pd.testing.assert_frame_equal(rules.loc[both, list(FEATURE_FACTS)], readers.plain_objects(
        scored.loc[both, list(FEATURE_FACTS)].copy()), check_exact=True)
    a8 = rules.loc["A8"]
    assert (jd_to_text(a8.first_event_jd), a8.n_export) == ("2026-09-02T14:00:00Z", 1)


def test_a_refresh_recomputes_only_the_numbers_with_new_events(db):
    _awkward_store(db)
    assert shipment_facts.refresh(db).numbers == 5
    assert shipment_facts.refresh(db).numbers == 0
    rowids = dict(db.conn.execute("SELECT tracking_number, rowid FROM shipment_facts"))
    db.conn.execute("INSERT INTO tracking_events (tracking_number, occurred_at, status, raw_code, event_key) "
                    "VALUES ('LP00000000007', '2026-09-20T00:00:00Z', 'in_transit', 'SC_INBOUND', 'new')")
    db.conn.commit()
    assert shipment_facts.refresh(db) == (1, "sql")
    assert _table(db).set_index("tracking_number").loc["LP00000000007"].n_scans == 1
    # the number's row updated in place (its rowid kept: not deleted and made anew at the end of the table)
    assert dict(db.conn.execute("SELECT tracking_number, rowid FROM shipment_facts")) == rowids
    # and it agrees with a refresh of the whole store
    incremental = _table(db)
    pd.testing.assert_frame_equal(incremental, _refreshed(db), check_exact=True)


def test_other_scan_kinds_in_the_settings_make_every_fact_anew(db, tmp_path, monkeypatch):
    from tracker import config

    _awkward_store(db)
    shipment_facts.refresh(db)
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "rules.toml").write_text('[scans]\nlocality_codes = ["GTMS_[S]*"]\nlocality_statuses = []\n'
                                       'export_codes = ["CC_E?_*"]\n')
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(folder))
    config.reload()
    try:
        assert shipment_facts.refresh(db).numbers == 5
        # only signed scans count as local now: the Zürich failure and the Málaga departure no longer do
        assert _table(db).set_index("tracking_number").loc["LP00000000001"].locality_min == "ES|Madrid|28013"
    finally:
        config.reload()


@pytest.mark.parametrize("shipments", [True, False])
def test_the_rules_frame_is_the_same_through_the_child_readers(db, shipments):
    _awkward_store(db)
    if not shipments:  # a store never polled: the aligned reader has no shipment to align
        db.conn.execute("DELETE FROM shipments")
        db.conn.commit()
    shipment_facts.refresh(db)
    with override(arrow_min_orders=10**12):
        sql = readers.rule_frame(db.conn)
    with override(arrow_min_orders=0):
        fast = readers.rule_frame(db.conn)
    assert sql.attrs["read_by"] == "sql" and fast.attrs["read_by"] == "child readers"
    pd.testing.assert_frame_equal(fast.sort_values("order_id").reset_index(drop=True),
                                  sql.sort_values("order_id").reset_index(drop=True), check_exact=True)
    assert fast.set_index("order_id").loc["A1"].n_orders_on_number == 2


def test_a_world_gets_the_same_flags_through_every_path(tmp_path):
    world = pytest.importorskip("tracker.world.world")
    from tracker.db import open_db
    from tracker.detection.flagging import run_rules
    from tracker.importers import import_file

    world.write_world(tmp_path, 1500, seed=11)
    first = tmp_path / "children.db"
    db = open_db(first)
    for kind in ("orders", "events", "messages"):
        import_file(db, kind, tmp_path / f"{kind}.csv")
    db.close()
    shutil.copy(first, tmp_path / "sql.db")
    flags = {}
    for name, limits in (("children", {"columnar_min_events": 0, "arrow_min_orders": 0, "events_per_slice": 2000}),
                         ("sql", {"never_children": True})):
        db = open_db(tmp_path / f"{name}.db")
        with override(**limits):
            run_rules(db, world._as_of(None), full=True)
        flags[name] = db.conn.execute("SELECT order_id, code, severity, explanation, evidence, rule_version "
                                      "FROM flags ORDER BY order_id, code").fetchall()
        db.close()
    assert len(flags["sql"]) > 50
    assert flags["children"] == flags["sql"]


def test_a_path_with_uri_characters_is_read(tmp_path):
    from tracker.db import open_db

    folder = tmp_path / "odd #dir?%20"
    folder.mkdir()
    db = open_db(folder / "t.db")
    _awkward_store(db)
    by_children = _refreshed(db, "child readers", columnar_min_events=0)
    with override(arrow_min_orders=0):
        frame = readers.rule_frame(db.conn)
    assert frame.attrs["read_by"] == "child readers"
    assert len(by_children) == 5 and len(frame) == 8
    db.close()


def test_events_are_read_in_id_slices_or_by_number_through_their_indexes(db):
    """A whole refresh reads the events in id order (sequential pages, one slice at a time), a few numbers'
    refresh follows the number index: never one random read per event of the whole table."""
    _awkward_store(db)
    slice_sql = f"{store.EVENT_FACTS_SQL} WHERE id >= ? AND id < ?"
    plan = " ".join(str(r) for r in db.execute(f"EXPLAIN QUERY PLAN {slice_sql}", [0, 10]))
    assert "INTEGER PRIMARY KEY" in plan and "idx_events" not in plan
    some_sql = f"{store.EVENT_FACTS_SQL} WHERE tracking_number IN (SELECT value FROM json_each(?))"
    plan = " ".join(str(r) for r in db.execute(f"EXPLAIN QUERY PLAN {some_sql}", ['["LP00000000001"]']))
    assert "idx_events_tracking" in plan


def test_the_detection_page_explains_every_fact_as_the_definition_does():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "detection.md").read_text()
    for name, meaning in facts.FACTS.items():
        assert f"| `{name}` | {meaning.replace('|', chr(92) + '|')} |" in page, name


def test_facts_refreshed_batch_by_batch_are_those_of_every_event_at_once(db):
    """Events arrive in batches; each refresh reads only the new ones, with the stored facts of their numbers.
    Later scans that tie an earlier one's time take the last hand-over and leave the earliest picks alone, as
    they do when every event is read at once (a later event has a higher id)."""
    _awkward_store(db)
    shipment_facts.refresh(db)
    later = [
        _event(30, "LP00000000001", "2026-09-10T13:00:00Z", "delivered", "GTMS_SIGNED", None, "Cádiz", "11001", "ES"),
        _event(31, "LP00000000001", "2026-09-01T09:00:00Z", "in_transit", None, "export hub", "Shenzhen", None, "CN"),
        _event(32, "RR123456785CN", "2026-09-13T00:00:00Z", "delivered", "GTMS_SIGNED", None, "Kazan", "420000", "RU"),
        _event(33, "YT0000000000000001", "2026-09-05T00:00:00Z", "info_received", "GWMS_ACCEPT", None),
    ]
    for batch in (later[:2], later[2:]):
        db.conn.executemany(
            "INSERT INTO tracking_events (tracking_number, occurred_at, status, raw_code, description, city, "
            "postcode, country, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
        db.conn.commit()
        assert shipment_facts.refresh(db).by == "sql"
    table = _table(db)
    incremental = table.set_index("tracking_number")
    lp1 = incremental.loc["LP00000000001"]
    assert (lp1.last_scan_city, lp1.delivered_city, lp1.n_export) == ("Cádiz", "Madrid", 2)
    assert jd_to_text(lp1.first_event_jd) == "2026-09-01T09:00:00Z" and lp1.n_events == 9
    assert incremental.loc["RR123456785CN"].delivered_city == "KAZAN"  # the earlier scan of the tie
    assert incremental.loc["YT0000000000000001"].n_events == 1  # a number's first events
    pd.testing.assert_frame_equal(table, _refreshed(db), check_exact=True)


def _copy_of(db, tmp_path) -> str:
    """A copy of the store for the driver to read in this process: its SQLite closing a file drops this process's
    POSIX locks on that file, so never on the store the test's own connection holds."""
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "copy.db"
    shutil.copyfile(db.conn.execute("PRAGMA database_list").fetchone()[2], copy)
    return str(copy)


def test_a_slice_of_scans_is_read_in_one_batch(db, tmp_path, monkeypatch):
    """One batch: the driver and Arrow handle each column in one piece rather than a thousand rows at a time."""
    from tracker.detection import arrow

    _awkward_store(db)
    asked = []
    fetch = arrow.Connection.fetch
    monkeypatch.setattr(arrow.Connection, "fetch", lambda self, sql, **kw: asked.append(kw) or fetch(self, sql, **kw))
    part = arrow.facts_of_slice(_copy_of(db, tmp_path), ScanKinds(), 0, 10**9)
    assert asked == [{"one_batch": True}]
    whole = facts.partial(store.event_columns(db.conn, ids=(0, 10**9)), ScanKinds())
    assert part is not None
    pd.testing.assert_frame_equal(pd.DataFrame(facts.finish(part)), pd.DataFrame(facts.finish(whole)), check_exact=True)


def test_a_slice_whose_text_is_not_text_is_left_to_sql(db, tmp_path):
    """A blob among the scans' text: the driver types the whole column binary, so the child refuses the slice
    (the refresh then computes the facts through SQL) rather than make facts of bytes."""
    import sqlite3

    from tracker.detection import arrow

    _awkward_store(db)
    copy = _copy_of(db, tmp_path)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE tracking_events SET city = ? WHERE id = 3", [b"\x00\xffMadrid"])
    conn.close()
    with pytest.raises(TypeError, match="city"):
        arrow.facts_of_slice(copy, ScanKinds(), 0, 10**9)


def test_coded_columns_of_the_parts_are_joined_by_hashing_in_c_with_the_dicts_answer(monkeypatch):
    """Combining the parts joins each coded column over the union of its distinct values (tens of thousands of
    places per part): text is hashed by pandas, numbered in order of first appearance as the dict numbers it; any
    other value (None, bytes) still goes through the dict."""
    rng = np.random.default_rng(4)
    pool = ["Madrid", "madrid", "Málaga", "", "29001", "ES|Madrid|28013", "Zürich", "ǅ", "a\x00b", "a"]
    columns = []
    for _ in range(5):
        values = list(dict.fromkeys(rng.choice(pool, size=6).tolist()))
        columns.append(facts.Coded(rng.integers(-1, len(values), size=40), values))
    by_dict = facts._joined_by_dict(columns)
    with monkeypatch.context() as patched:
        patched.setattr(facts, "_joined_by_dict", lambda columns: pytest.fail("text went through the dict"))
        joined = facts._joined(columns)
    assert joined.values == by_dict.values and np.array_equal(joined.codes, by_dict.codes)
    odd = [facts.Coded(np.array([0, 1, -1]), ["x", None]), facts.Coded(np.array([1, 0]), [b"y", "x"])]
    mixed = facts._joined(odd)
    assert mixed.values == ["x", None, b"y"] and mixed.codes.tolist() == [0, 1, -1, 0, 2]
    assert facts._joined([]).values == [] and len(facts._joined([facts.Coded(np.array([-1]), [])]).codes) == 1


def test_the_writing_child_writes_the_rows_of_the_in_process_write_in_the_same_order(db, db_path, tmp_path,
                                                                                      monkeypatch):
    """The writing child streams the facts' file batch by batch through the ADBC driver (`facts_writer.store_file`):
    the same rows and values (text, nulls, times and counts alike), in the same number order (the same rowids), as
    the write in this process, from facts handed over in another order; in a child process, as a run writes them
    (the driver's own SQLite must not share a process with this one's open connection)."""
    from tracker.detection import facts_writer
    from tracker.detection.children import Children

    _awkward_store(db)
    computed = facts.finish(facts.combine([facts.partial(store.event_columns(db.conn), shipment_facts.scan_kinds())]),
                            decode=False)
    backwards = {name: facts.Coded(np.asarray(v.codes)[::-1], v.values) if isinstance(v, facts.Coded)
                 else np.asarray(v)[::-1] for name, v in computed.items()}
    monkeypatch.setattr(facts_writer, "ROWS_PER_BATCH", 2)
    facts_writer.store(db.conn, backwards, True, {"k": "1"})
    rows = "SELECT rowid, * FROM shipment_facts ORDER BY rowid"
    expected = db.conn.execute(rows).fetchall()
    assert len(expected) == len(computed["tracking_number"]) > 4
    assert {type(v) for row in expected for v in row} == {int, float, str, type(None)}
    facts_writer.to_file(backwards, str(tmp_path / "facts.arrow"))
    with db.conn:
        db.conn.execute("UPDATE shipment_facts SET n_events = -1")
    with Children(1, lean=True) as child:
        written = child.submit(facts_writer.store_file, str(db_path), str(tmp_path / "facts.arrow"), {"k": "2"},
                               3).result()
    assert written == len(expected)
    assert db.conn.execute(rows).fetchall() == expected
    assert db.conn.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("2",)
