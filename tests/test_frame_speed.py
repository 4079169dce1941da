"""The whole-store frame read without hashing order ids in the scoring process: the orders reader reads the active
flags and seller messages in its own transaction and finds their orders' rows; the frame stays the SQL path's,
and any trouble there reads them through SQL again."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from model_fixtures import AS_OF, build_store, plain_text

from detectors import features
from tracker.detection import arrow, readers, shipment_facts
from tracker.detection.readers import feature_frame

pytest.importorskip("adbc_driver_sqlite")
pa = pytest.importorskip("pyarrow")


def _pressure(messages: pd.DataFrame) -> np.ndarray:
    return (messages["text"].str.contains("confirm") * 0.8 + 0.1).to_numpy(dtype=float)


@pytest.fixture
def store(db):  # noqa: ANN001, ANN201
    build_store(db, 300)
    with db.conn:
        # several codes on one order, one the classifier does not know; a flag and a message of an order the store
        # does not hold; resolved flags and buyer messages that must not count
        db.conn.execute("INSERT OR IGNORE INTO flags(order_id, code, severity, explanation, detected_at, "
                        "rule_version) SELECT order_id, 'zz_later_rule', 'low', 'x', '2026-06-01T00:00:00Z', 't' "
                        "FROM orders WHERE rowid % 4 = 0")
        db.conn.execute("INSERT INTO flags(order_id, code, severity, explanation, detected_at, rule_version) "
                        "VALUES ('NO-SUCH-ORDER', 'tracking_reused', 'high', 'x', '2026-06-01T00:00:00Z', 't')")
        db.conn.execute("UPDATE flags SET resolved_at = '2026-06-02T00:00:00Z' WHERE id % 7 = 0")
        db.conn.execute("INSERT INTO messages(order_id, sender, sent_at, text, message_key) VALUES "
                        "('NO-SUCH-ORDER', 'Seller', '2026-06-01T00:00:00Z', 'confirm now', 'orphan'), "
                        "('O00002', 'buyer', '2026-06-01T00:00:00Z', 'confirm? never', 'from-buyer')")
    shipment_facts.refresh(db)
    return db


def _read(db, thresholds, *, children: bool) -> tuple[pd.DataFrame, list[pd.DataFrame]]:  # noqa: ANN001
    """The frame (its attrs say who read it and its flags and messages) and the messages the scorer was given."""
    thresholds(arrow_min_orders=0 if children else 10**12)
    scored: list[pd.DataFrame] = []

    def scorer(messages: pd.DataFrame) -> np.ndarray:
        scored.append(messages.copy())
        return _pressure(messages)

    return feature_frame(db.conn, None, AS_OF, scorer), scored


def _by_id(messages: pd.DataFrame) -> pd.DataFrame:
    return messages.sort_values("id").reset_index(drop=True)


def test_the_readers_find_flags_and_messages_and_give_the_sql_frame(store, thresholds):
    sql_frame, sql_scored = _read(store, thresholds, children=False)
    fast_frame, fast_scored = _read(store, thresholds, children=True)
    assert (sql_frame.attrs["read_by"], sql_frame.attrs["side_by"]) == ("sql", "sql")
    assert (fast_frame.attrs["read_by"], fast_frame.attrs["side_by"]) == ("child readers", "child readers")
    seller = store.conn.execute("SELECT count(*) FROM messages WHERE lower(sender) = 'seller'").fetchone()[0]
    pd.testing.assert_frame_equal(plain_text(fast_frame), sql_frame)
    # the scorer saw the same seller messages (orphan included, buyer's left out), typed alike
    assert len(sql_scored) == len(fast_scored) == 1
    pd.testing.assert_frame_equal(_by_id(fast_scored[0]), _by_id(sql_scored[0]))
    assert "NO-SUCH-ORDER" in set(sql_scored[0]["order_id"]) and "from-buyer" not in set(sql_scored[0]["text"])
    # the flags that count: an unknown code joins the codes, an orphan flag counts nowhere
    assert (sql_frame["codes"].str.contains("zz_later_rule")).sum() > 0
    assert sql_frame["n_seller_messages"].sum() == seller - 1
    # codes are plain object text on both paths (the scorer reads them as objects)
    assert sql_frame["codes"].dtype == object and fast_frame["codes"].dtype == object


def test_a_reader_failing_on_the_side_tables_reads_everything_through_sql(store, thresholds, monkeypatch):
    sql_frame, sql_scored = _read(store, thresholds, children=False)
    monkeypatch.setattr(readers, "MESSAGES_BY_ROW_SQL", "SELECT order_id, no_such_column FROM messages")
    frame, scored = _read(store, thresholds, children=True)
    assert (frame.attrs["read_by"], frame.attrs["side_by"]) == ("sql", "sql")
    pd.testing.assert_frame_equal(frame, sql_frame)
    pd.testing.assert_frame_equal(_by_id(scored[0]), _by_id(sql_scored[0]))


def test_side_tables_of_a_frame_not_read_by_the_readers_are_read_again(store, thresholds, monkeypatch):
    sql_frame, _ = _read(store, thresholds, children=False)
    # the orders reader handed over its flags and messages, but saw other orders than the facts reader
    monkeypatch.setattr(readers, "ORDERS_BY_ROWID_SQL",
                        readers.ORDERS_BY_ROWID_SQL.replace("FROM orders o", "FROM orders o WHERE o.rowid > 1"))
    frame, scored = _read(store, thresholds, children=True)
    assert (frame.attrs["read_by"], frame.attrs["side_by"]) == ("sql", "sql")
    assert len(scored) == 2  # the messages were scored again with the SQL path's rows
    pd.testing.assert_frame_equal(frame, sql_frame)


def _joined_reference(rows: np.ndarray, codes: np.ndarray, n: int) -> list[str]:
    per_row: dict[int, list[str]] = {}
    for row, code in zip(rows.tolist(), codes.tolist(), strict=True):
        if row >= 0:
            per_row.setdefault(row, []).append(str(code))
    return [",".join(sorted(per_row.get(i, []))) for i in range(n)]


@pytest.mark.parametrize("n_codes", [1, 9, 62, 63, 80])
def test_joined_codes_match_sorting_each_rows_codes(n_codes):
    rng = np.random.default_rng(n_codes)
    names = np.array([f"code_{i:03d}" for i in rng.permutation(n_codes)], dtype=object)
    pairs = {(int(r), int(c)) for r, c in zip(rng.integers(-1, 300, 2000), rng.integers(0, n_codes, 2000),
                                                strict=True)}
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    codes = names[[c for _, c in pairs]]
    assert features._joined_codes(rows, codes, 300).tolist() == _joined_reference(rows, codes, 300)


def test_joined_codes_keep_a_code_repeated_on_one_row():
    rows = np.array([1, 1, 0, 1])
    codes = np.array(["b", "a", "c", "a"], dtype=object)
    assert features._joined_codes(rows, codes, 3).tolist() == ["c", "a,a,b", ""]


def _tiny_store(path: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY, tracking_number TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [("A", "n1"), ("B", None), ("C", "n3"), ("D", "n1")])
        conn.execute("CREATE TABLE notes (order_id TEXT, id INTEGER, body TEXT)")
        conn.executemany("INSERT INTO notes VALUES (?, ?, ?)", [("C", 1, "c1"), ("Z", 2, "orphan"), ("A", 3, "a1"),
                                                                ("C", 4, "c2")])
    conn.close()


def test_read_to_file_finds_the_rows_of_mapped_queries(tmp_path):
    path = str(tmp_path / "tiny.db")
    _tiny_store(path)
    out, notes, none = (str(tmp_path / f"{name}.arrow") for name in ("out", "notes", "none"))
    n = arrow.read_to_file(path, "SELECT tracking_number, order_id FROM orders ORDER BY rowid", out, (0,),
                              mapped=(("SELECT order_id, id, body FROM notes ORDER BY id", notes),
                                      ("SELECT order_id, id FROM notes WHERE 0", none)), key=1)
    assert n == 4
    table = pa.ipc.open_file(pa.memory_map(out)).read_all()
    assert table.column(1).to_pylist() == ["A", "B", "C", "D"]
    assert pa.types.is_dictionary(table.column(0).type) and table.column(0).to_pylist() == ["n1", None, "n3", "n1"]
    found = pa.ipc.open_file(pa.memory_map(notes)).read_all()
    assert found.column(0).to_pylist() == [2, -1, 0, 2]  # rows of the orders; -1: no such order
    assert found.column(1).to_pylist() == [1, 2, 3, 4] and found.column(2).to_pylist() == ["c1", "orphan", "a1", "c2"]
    assert pa.ipc.open_file(pa.memory_map(none)).read_all().num_rows == 0


def test_rows_of_finds_each_values_first_key():
    keys = pa.chunked_array([["a", "b", None], ["c", "b"]])
    values = pa.chunked_array([["b", "z", None, "c", "a", "b"]])
    assert arrow.rows_of(values, keys).tolist() == [1, -1, -1, 3, 0, 1]
    assert arrow.rows_of(pa.chunked_array([], pa.string()), keys).tolist() == []
