"""The classifier's whole-store frame read by two child processes through Arrow gives the SQL path's frame
exactly, on a store built to be awkward; trouble there falls back to SQL; the pieces that replaced pandas
group-bys and lookups answer as those did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_fixtures import AS_OF, build_store, plain_text

from detectors import features
from tracker.detection import readers, scoring, shipment_facts, store
from tracker.detection.readers import feature_frame
from tracker.plan import override, plan_for


def _pressure(messages: pd.DataFrame) -> np.ndarray:
    return (messages["text"].str.contains("confirm") * 0.8 + 0.1).to_numpy(dtype=float)


def _awkward_store(db) -> None:  # noqa: ANN001
    build_store(db, 400)
    conn = db.conn
    with conn:
        # places that only agree once normalised, places that disagree, and places that are missing
        conn.execute("UPDATE orders SET dest_city = 'São Paulo', dest_country = 'br', dest_postcode = 'BR-01000 000' "
                     "WHERE rowid % 7 = 0")
        conn.execute("UPDATE orders SET dest_city = NULL, dest_postcode = '' WHERE rowid % 11 = 0")
        conn.execute("UPDATE orders SET dest_postcode = '90210-1234', dest_country = 'US' WHERE rowid % 13 = 0")
        conn.execute("UPDATE tracking_events SET city = 'SAO-PAULO', country = 'BR', postcode = '01000000' "
                     "WHERE status = 'delivered' AND tracking_number IN "
                     "(SELECT tracking_number FROM orders WHERE rowid % 14 = 0)")
        conn.execute("UPDATE tracking_events SET city = NULL, postcode = NULL WHERE status = 'delivered' AND "
                     "tracking_number IN (SELECT tracking_number FROM orders WHERE rowid % 17 = 0)")
        conn.execute("UPDATE tracking_events SET city = 'Lyon', postcode = '69001' WHERE status = 'delivered' AND "
                     "tracking_number IN (SELECT tracking_number FROM orders WHERE rowid % 19 = 0)")
        # no number, an empty one, a number no scan ever named
        conn.execute("UPDATE orders SET tracking_number = NULL WHERE rowid % 23 = 0")
        conn.execute("UPDATE orders SET tracking_number = '' WHERE rowid % 29 = 0")
        conn.execute("UPDATE orders SET tracking_number = 'LP999999999999' WHERE rowid % 31 = 0")
        # every buyer answer missing: a column with no text at all; carriers in odd cases
        conn.execute("UPDATE orders SET buyer_received = NULL")
        conn.execute("UPDATE orders SET carrier = 'YunExpress' WHERE rowid % 5 = 0")
        # flags of several codes per order (one the classifier does not know), of an order not in the store,
        # and resolved flags that must not count
        conn.execute("INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                     "SELECT order_id, 'wrong_destination', 'high', 'x', '2026-06-01T00:00:00Z', 't' FROM orders "
                     "WHERE rowid % 3 = 0")
        conn.execute("INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                     "SELECT order_id, 'a_rule_added_later', 'low', 'x', '2026-06-01T00:00:00Z', 't' FROM orders "
                     "WHERE rowid % 8 = 0")
        conn.execute("INSERT INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                     "VALUES ('NO-SUCH-ORDER', 'tracking_reused', 'high', 'x', '2026-06-01T00:00:00Z', 't')")
        conn.execute("UPDATE flags SET resolved_at = '2026-06-02T00:00:00Z' WHERE id % 9 = 0")
        conn.execute("INSERT INTO messages(order_id, sender, sent_at, text, message_key) "
                     "VALUES ('NO-SUCH-ORDER', 'seller', '2026-06-01T00:00:00Z', 'confirm now', 'orphan')")
    shipment_facts.refresh(db)


def _children_plan(db, thresholds):  # noqa: ANN001, ANN202
    thresholds(arrow_min_orders=0)
    return plan_for(db.conn)


@pytest.fixture
def awkward(db):  # noqa: ANN001, ANN201
    _awkward_store(db)
    sql_frame = feature_frame(db.conn, None, AS_OF, _pressure)  # a small store: the SQL path
    assert sql_frame.attrs["read_by"] == "sql"
    return db, sql_frame


def test_the_arrow_read_gives_the_sql_frame_on_an_awkward_store(awkward, thresholds):
    db, sql_frame = awkward
    read = readers.OrderRead(db.conn, _children_plan(db, thresholds), fact_columns=features.FEATURE_FACTS,
                             shipments=False, side=True, places=True)
    read.side()
    _, normalised = read.finish()
    # the readers normalised both places themselves
    assert sorted(normalised) == ["delivered_city", "delivered_country", "delivered_postcode", "dest_city",
                                  "dest_country", "dest_postcode"]
    arrow = feature_frame(db.conn, None, AS_OF, _pressure)
    assert arrow.attrs["read_by"] == "child readers"
    # repeated text comes as categoricals (codes and each distinct value once), with the same values
    assert isinstance(arrow["seller_id"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(plain_text(arrow), sql_frame)
    # and the features built from either are the same numbers
    fitted = features.OrderFeatures().fit(sql_frame)
    pd.testing.assert_frame_equal(fitted.transform_frame(arrow), fitted.transform_frame(sql_frame), check_exact=True)
    assert np.array_equal(features.has_text(arrow["tracking_number"]), features.has_text(sql_frame["tracking_number"]))
    assert not features.has_text(sql_frame["tracking_number"]).all()
    # the store is as awkward as meant: every kind of place match, and codes joined in order
    assert set(sql_frame["dest_match_level"].dropna()) >= {0.0, 0.5, 1.0, 3.0}
    assert sql_frame["dest_match_level"].isna().any()
    assert (sql_frame["codes"] == "a_rule_added_later,impossible_transit,wrong_destination").any()
    assert sql_frame["buyer_received"].isna().all()


@pytest.mark.parametrize("keys_sql", [
    # the facts reader sees other orders than the orders reader, as if orders were added between the two reads
    "SELECT rowid + 1, tracking_number FROM orders ORDER BY rowid",
    # or one order's number changed between them
    "SELECT rowid, CASE WHEN rowid = 5 THEN 'LP000000000001' ELSE tracking_number END FROM orders ORDER BY rowid",
])
def test_a_store_changed_between_the_two_reads_is_read_through_sql(awkward, monkeypatch, thresholds, keys_sql):
    db, sql_frame = awkward
    monkeypatch.setattr(readers, "ORDER_KEYS_SQL", keys_sql)
    thresholds(arrow_min_orders=0)
    arrow = feature_frame(db.conn, None, AS_OF, _pressure)
    assert arrow.attrs["read_by"] == "sql"
    pd.testing.assert_frame_equal(arrow, sql_frame)


def test_codes_are_each_orders_flags_sorted_and_joined():
    rows = np.array([2, 0, 2, -1, 2, 4, 0])
    codes = np.array(["tracking_reused", "zeta", "early_confirmation", "wrong_destination", "a_new_rule",
                      "zeta", "alpha"], dtype=object)
    joined = features._joined_codes(rows, codes, 6)
    assert joined.tolist() == ["alpha,zeta", "", "a_new_rule,early_confirmation,tracking_reused", "", "zeta", ""]
    assert features._joined_codes(np.array([], dtype=np.int64), np.array([], dtype=object), 2).tolist() == ["", ""]


def test_query_types_columns_as_records_would(db):
    conn = db.conn
    conn.execute("CREATE TEMP TABLE q (t TEXT, i INTEGER, r REAL, gap INTEGER)")
    conn.executemany("INSERT INTO temp.q VALUES (?,?,?,?)", [("x", 1, None, None), (None, 2, 1.5, 3)])
    frame = store.query(conn, "SELECT t, i, r, gap FROM temp.q", ["t", "i", "r", "gap"])
    assert frame["t"].dtype == object and frame["t"].tolist() == ["x", None]
    assert frame["i"].dtype == np.int64 and frame["r"].dtype == np.float64 and frame["gap"].dtype == np.float64
    assert np.isnan(frame.loc[0, "gap"]) and frame.loc[1, "gap"] == 3.0
    empty = store.query(conn, "SELECT t, i FROM temp.q WHERE 0", ["t", "i"])
    assert list(empty.columns) == ["t", "i"] and empty.empty


def test_the_pressure_cache_answers_the_same_read_whole_or_message_by_message(db, monkeypatch):
    build_store(db, 300)
    messages = store.query(db.conn, "SELECT id, order_id, text FROM messages", ["id", "order_id", "text"])
    scored = []
    real = scoring.score_messages
    monkeypatch.setattr(scoring, "score_messages", lambda m, p: scored.append(len(m)) or real(m, p))
    first = scoring.message_scorer(db)(messages)  # nothing cached yet: every message scored once
    assert scored == [len(messages)]
    with override(whole_pressure_cache_from=0):
        whole = scoring.message_scorer(db)(messages)
    with override(whole_pressure_cache_from=10**9):
        one_by_one = scoring.message_scorer(db)(messages.iloc[::-1])
    assert scored == [len(messages)]  # both answered from the cache
    assert np.array_equal(whole, first) and np.array_equal(one_by_one, first[::-1])
    # a message the cache has not seen is scored, whichever way the cache is read
    with db.conn:
        db.execute("INSERT INTO messages(order_id, sender, sent_at, text, message_key) "
                   "VALUES ('O00001', 'seller', '2026-06-01T00:00:00Z', 'confirm receipt now please', 'new')")
    more = store.query(db.conn, "SELECT id, order_id, text FROM messages", ["id", "order_id", "text"])
    with override(whole_pressure_cache_from=0):
        again = scoring.message_scorer(db)(more)
    assert scored == [len(messages), 1]
    assert np.array_equal(again[:-1], first) and 0.0 <= again[-1] <= 1.0


def test_the_classifiers_frame_built_from_the_rules_read_is_the_one_read_anew(awkward, thresholds):
    """A full run's classifier frame is built from what the rules' child read kept (`readers.KeptOrders`): the
    same frame and the same features as reading the store again."""
    db, sql_frame = awkward
    thresholds(arrow_min_orders=0, columnar_min_events=0)
    plan = plan_for(db.conn)
    with db.conn:  # every number's facts computed anew, as a run over a new store does
        db.conn.execute("DELETE FROM meta WHERE key = ?", [shipment_facts.META_DEFINITION])
    refreshing = shipment_facts.start(db, plan, in_background=False)
    assert refreshing.facts is not None and refreshing.done.by == "child readers"
    read = readers.OrderRead(db.conn, plan, None, fact_columns=(), side=True, places=True)
    kept: list[readers.KeptOrders] = []
    rules = readers.rule_frame(db.conn, None, plan=plan, known_facts=refreshing.facts, read=read, keep=kept)
    assert len(kept) == 1 and len(rules) == len(sql_frame)
    # the rules' frame with the facts joined in memory is the one read through SQL, text columns as object text
    with override(arrow_min_orders=10**12):
        rules_by_sql = readers.rule_frame(db.conn)
    assert rules_by_sql.attrs["read_by"] == "sql"
    pd.testing.assert_frame_equal(rules.sort_values("order_id").reset_index(drop=True),
                                  rules_by_sql.sort_values("order_id").reset_index(drop=True), check_exact=True)
    from_kept = feature_frame(db.conn, None, AS_OF, _pressure, kept=kept[0])
    assert from_kept.attrs["read_by"] == "child readers (the rules' read)"
    assert not kept[0].columns and kept[0].messages is None  # let go: the frame holds them now
    anew = feature_frame(db.conn, None, AS_OF, _pressure)
    assert anew.attrs["read_by"] == "child readers"
    pd.testing.assert_frame_equal(plain_text(from_kept), plain_text(anew))
    pd.testing.assert_frame_equal(plain_text(from_kept), sql_frame)
    fitted = features.OrderFeatures().fit(sql_frame)
    pd.testing.assert_frame_equal(fitted.transform_frame(from_kept), fitted.transform_frame(anew), check_exact=True)
    # the flags are read when the frame is built (the rules wrote them after their read): a flag added now counts
    with db.conn:
        db.conn.execute("INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                        "SELECT order_id, 'seller_pressure', 'high', 'x', '2026-06-01T00:00:00Z', 't' FROM orders "
                        "WHERE rowid = 2")
    kept = []
    readers.rule_frame(db.conn, None, plan=plan, known_facts=refreshing.facts,
                       read=readers.OrderRead(db.conn, plan, None, fact_columns=(), side=True, places=True), keep=kept)
    later = feature_frame(db.conn, None, AS_OF, _pressure, kept=kept[0])
    assert "seller_pressure" in later["codes"].iloc[1] and "seller_pressure" not in from_kept["codes"].iloc[1]


def test_a_scopes_frame_takes_the_rows_the_rules_read_and_reads_only_the_others(awkward, monkeypatch):
    """An incremental run's scoring frame holds the orders its rules read (`readers.ScopeRows`): those rows are
    taken as the rules' SQL read gave them and only the other asked-for orders are read, and the frame is the one
    read whole (rows in the same order, the same values), with the flags as they are when it is built."""
    db, _ = awkward
    ids = [r[0] for r in db.conn.execute("SELECT order_id FROM orders ORDER BY rowid")]
    assert len(ids) >= 6
    examined, due = set(ids[::2]), set(ids[1::3]) - set(ids[::2])
    rows: list[readers.ScopeRows] = []
    rules = readers.rule_frame(db.conn, examined | {"no-such-order"}, scope_rows=rows)
    assert rules.attrs["read_by"] == "sql" and len(rows) == 1
    assert sorted(rows[0].columns[rows[0].names.index("order_id")]) == sorted(examined)
    read_ids: list[list[str]] = []
    read = readers.OrderRead._read

    def recording(self, ids=None):  # noqa: ANN001, ANN202
        import json

        read_ids.append(json.loads(ids if ids is not None else self.ids))
        return read(self, ids)

    monkeypatch.setattr(readers.OrderRead, "_read", recording)
    with db.conn:  # a flag the rules wrote after their read
        db.conn.execute("INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                        "VALUES (?, 'seller_pressure', 'high', 'x', '2026-06-01T00:00:00Z', 't')", [ids[0]])
    scope = examined | due | {"no-such-order"}
    taken = feature_frame(db.conn, scope, AS_OF, _pressure, sellers=lambda frame: None, buyers=False, known=rows[0])
    assert read_ids == [sorted(due | {"no-such-order"})]  # the examined orders were not read again
    read_ids.clear()
    anew = feature_frame(db.conn, scope, AS_OF, _pressure, sellers=lambda frame: None, buyers=False)
    assert read_ids == [sorted(scope)]
    pd.testing.assert_frame_equal(taken, anew, check_exact=True)
    assert list(taken["order_id"]) == sorted(examined | due)
    assert "seller_pressure" in taken.loc[taken["order_id"] == ids[0], "codes"].iloc[0]
    # rows of other columns than the read asks for are not used: the scope is read whole
    read_ids.clear()
    partial = readers.ScopeRows(rows[0].names[:3], rows[0].columns[:3])
    feature_frame(db.conn, scope, AS_OF, _pressure, sellers=lambda frame: None, buyers=False, known=partial)
    assert read_ids == [sorted(scope)]
