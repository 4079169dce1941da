"""The orders import's fast paths give the answers of the plain ones: the re-import's one-text compare of a
batch, and the staged batch moved to the orders in a background thread."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime

import pytest
import sqlite_utils
from test_import_support import order, orders_csv, snapshot, write_jsonl

from tracker.importers import import_file
from tracker.importers import orders as orders_module
from tracker.migrations import migrate

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 5, 1, tzinfo=UTC)

ODD = [
    order(1, item_title='say "hi" \\ back\\slash', amount="0.30000000000000004", Note="ü → 😀"),
    order(2, item_title="line one\nline two\ttab", amount="1e20", dest_city="Zürich", promised_days="0"),
    order(3, item_title="", amount="", tracking_number="", carrier="", Note=""),
    order(4, item_title="null", amount="0", buyer_received="no", currency="x", dest_postcode="0123"),
    order(5, item_title="\u2028 separator \u00a0 nbsp / slash", amount="12,50", tracking_number="rr473124829cn"),
]


def stored_batch(db) -> list[tuple]:  # noqa: ANN001
    """The stored orders as the records an import of them makes (the plain compare's `old`)."""
    cols = ", ".join(orders_module.STORED)
    return [tuple(r) for r in db.conn.execute(f"SELECT {cols} FROM orders ORDER BY order_id")]


def alike(db, batch: list[tuple]) -> bool:  # noqa: ANN001
    writer = orders_module.OrdersWriter(db, "2026-04-01T12:00:00Z")
    try:
        return writer._all_stored_alike(batch, json.dumps([r[0] for r in batch]))
    finally:
        writer.close()


def test_reimport_of_odd_values_changes_nothing(db, tmp_path):
    path = orders_csv(tmp_path / "o.csv", ODD)
    import_file(db, "orders", path, now=NOW)
    before, changes = snapshot(db), db.conn.total_changes
    again = import_file(db, "orders", path, now=LATER)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(ODD))
    assert snapshot(db) == before and db.conn.total_changes == changes


def test_one_text_compare_agrees_with_the_per_record_compare(db, tmp_path):
    import_file(db, "orders", orders_csv(tmp_path / "o.csv", ODD), now=NOW)
    batch = stored_batch(db)
    assert alike(db, batch)
    amount = orders_module.STORED.index("amount")
    days = orders_module.STORED.index("promised_days")
    title = orders_module.STORED.index("item_title")
    changes = [
        (amount, math.nextafter(batch[0][amount], math.inf)),  # one ulp: equal as 15-digit text, not as floats
        (amount, None),
        (days, "0"),  # the text of a number is not the number
        (days, 0.5),
        (title, "null"),  # order 3's title is empty (NULL)
        (title, batch[1][title] + " "),
    ]
    for row, (column, value) in zip([0, 0, 1, 2, 2, 1], changes, strict=True):
        changed = list(batch)
        record = list(changed[row])
        record[column] = value
        changed[row] = tuple(record)
        plain = any(old != new for old, new in zip(batch, changed, strict=True))
        assert alike(db, changed) is False and plain, (column, value)
    assert not alike(db, batch[:2] + [("A404", *batch[2][1:])] + batch[3:])  # one not stored


def test_an_order_one_ulp_away_is_updated(db, tmp_path):
    import_file(db, "orders", orders_csv(tmp_path / "a.csv", [order(1, amount="0.1")]), now=NOW)
    result = import_file(db, "orders", orders_csv(tmp_path / "b.csv", [order(1, amount="0.10000000000000002")]),
                         now=LATER)
    assert (result.updated, result.unchanged) == (1, 0)
    assert db.conn.execute("SELECT amount FROM orders").fetchone()[0] == 0.10000000000000002


def test_jsonl_reimport_with_escapes_changes_nothing(db, tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", [{**order(1), "item_title": "a\u00e9\"\\", "extra_field": {"k": [1, "é"]}},
                                              {**order(2), "amount": 3.25, "promised_days": 7}])
    import_file(db, "orders", path, now=NOW)
    before = snapshot(db)
    again = import_file(db, "orders", path, now=LATER)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert snapshot(db) == before


@pytest.mark.parametrize("stored_first", [False, True])
def test_batches_moved_in_the_background_are_all_written(db, tmp_path, monkeypatch, stored_first):
    from tracker.importers import base

    monkeypatch.setattr(base, "BATCH_SIZE", 3)
    if stored_first:  # a store with orders: the per-batch lookups share the connection with the mover
        import_file(db, "orders", orders_csv(tmp_path / "first.csv", [order(1), order(2, buyer_received="no")]),
                    now=NOW)
    rows = [order(i, tracking_number=f"LP{10**13 + i}") for i in range(1, 21)]
    result = import_file(db, "orders", orders_csv(tmp_path / "o.csv", rows), now=LATER)
    assert result.inserted + result.updated + result.unchanged == 20
    assert result.inserted == (18 if stored_first else 20)
    stored = db.conn.execute("SELECT count(*), count(DISTINCT seq) FROM orders").fetchone()
    assert stored == (20, 20)
    assert db.conn.execute("SELECT count(*) FROM shipments").fetchone()[0] == 20
    assert db.conn.execute("SELECT count(*) FROM temp.sqlite_master WHERE name = 'import_orders_stage'"
                           ).fetchone()[0] == 0


def test_a_failure_in_the_background_rolls_the_import_back(db, tmp_path, monkeypatch):
    from tracker.importers import base

    monkeypatch.setattr(base, "BATCH_SIZE", 3)
    import_file(db, "orders", orders_csv(tmp_path / "first.csv", [order(100)]), now=NOW)
    before = snapshot(db)
    monkeypatch.setattr(orders_module, "_INSERT", "INSERT INTO main.orders (order_id) SELECT NULL")
    with pytest.raises(sqlite3.IntegrityError):
        import_file(db, "orders", orders_csv(tmp_path / "o.csv", [order(i) for i in range(1, 8)]), now=LATER)
    assert snapshot(db) == before
    assert not db.conn.in_transaction


def test_a_connection_bound_to_its_thread_imports_the_same(tmp_path):
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "bound.db"))  # check_same_thread left on
    migrate(db)
    rows = [order(i, tracking_number=f"LP{10**13 + i}") for i in range(1, 6)]
    result = import_file(db, "orders", orders_csv(tmp_path / "o.csv", rows), now=NOW)
    assert result.inserted == 5
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 5
    db.close()


def _shipments_the_one_statement_way(conn: sqlite3.Connection, first_new_seq: int, stamp: str) -> list[tuple]:
    """What the import registered before it gathered numbers batch by batch: one statement over the orders it
    wrote (seq from `first_new_seq`), run here on a copy of the store as the import left it minus its shipments."""
    from tracker.timeutil import DUE_AT_ONCE

    conn.execute(
        "WITH fresh AS MATERIALIZED (SELECT tracking_number, carrier, seq FROM orders WHERE seq >= ?"
        " AND tracking_number <> '') "
        "INSERT OR IGNORE INTO shipments (tracking_number, carrier, state, first_seen_at, next_poll_at) "
        "SELECT tracking_number, nullif(substr(min(printf('%019d', seq) || coalesce(carrier, '')), 20), ''),"
        " 'pending', ?, ? FROM fresh GROUP BY tracking_number ORDER BY tracking_number",
        [first_new_seq, stamp, DUE_AT_ONCE])
    return conn.execute("SELECT rowid, * FROM shipments ORDER BY rowid").fetchall()


@pytest.mark.parametrize("batch_size", [2, 3, 100_000])
def test_numbers_gathered_by_batch_register_as_one_statement_did(db, tmp_path, monkeypatch, batch_size):
    """The first order (lowest seq) carrying a number names its carrier, a changed order's number counts, a
    stored shipment stays as it was, and the new shipments get their rowids in number order."""
    from tracker.importers import base

    monkeypatch.setattr(base, "BATCH_SIZE", batch_size)
    first = [order(1, tracking_number="LP10000000000001", carrier="cainiao"), order(2, tracking_number="YT1"),
             order(3), order(4, tracking_number="ZZ9", carrier="dhl")]
    import_file(db, "orders", orders_csv(tmp_path / "a.csv", first), now=NOW)
    seq_before = int(db.conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
    second = [
        order(2, tracking_number="CC3"),  # changed: its number now CC3, no carrier; later seq than the new ones
        order(5, tracking_number="CC3", carrier="yanwen"),  # new, same batch or not: lower seq, so its carrier
        order(6, tracking_number="LP10000000000001", carrier="other"),  # a stored shipment: untouched
        order(7, tracking_number="DD4"),
        order(8, tracking_number="DD4", carrier="q"),
        order(9, tracking_number="EE5", carrier="r"),
        order(10, tracking_number="EE5"),
        order(11, tracking_number="AA1", carrier="s"),
        order(3, tracking_number="BB2", carrier="t"),  # changed, last in the file
        order(12, tracking_number="BB2", carrier="u"),
    ]
    reference = sqlite3.connect(":memory:")
    db.conn.backup(reference)  # the store before the second import
    import_file(db, "orders", orders_csv(tmp_path / "b.csv", second), now=LATER)
    mine = db.conn.execute("SELECT rowid, * FROM shipments ORDER BY rowid").fetchall()

    # the reference: the same import's orders, shipments as they were before it, then the one statement
    reference.execute("DELETE FROM orders")
    reference.executemany(f"INSERT INTO orders VALUES ({', '.join('?' * 20)})",
                          db.conn.execute("SELECT * FROM orders ORDER BY rowid").fetchall())
    expected = _shipments_the_one_statement_way(reference, seq_before + 1, "2026-05-01T00:00:00Z")
    assert mine == expected
    carriers = {r[1]: r[2] for r in mine}
    assert carriers["CC3"] == "yanwen" and carriers["LP10000000000001"] == "cainiao" and carriers["DD4"] is None


def test_a_first_import_builds_its_dropped_indexes_with_a_small_cache_and_leaves_the_pragmas(db, tmp_path,
                                                                                            monkeypatch):
    """Into an empty store the orders' secondary indexes are built once at the end, and the new shipments made in
    number order, while the page cache is the small one a sort is fastest with; the indexes answer like the table, and the connection's cache and temporary
    storage are as they were after the import."""
    from tracker import sqlite_pragmas

    db.conn.execute("PRAGMA cache_size = -4321")
    temp_store = db.conn.execute("PRAGMA temp_store").fetchone()[0]
    caches: list[int] = []
    built = sqlite_pragmas.sort_cache

    def watched(conn):  # noqa: ANN001, ANN202
        with built(conn):
            caches.append((conn.execute("PRAGMA cache_size").fetchone()[0], conn.execute("PRAGMA threads").fetchone()[0]))
            yield

    from contextlib import contextmanager

    from tracker.importers import base

    monkeypatch.setattr(base, "sort_cache", contextmanager(watched))
    rows = [order(i, tracking_number=f"LP{i % 7:014d}", seller_id=f"s{i % 3}") for i in range(1, 60)]
    import_file(db, "orders", orders_csv(tmp_path / "a.csv", rows), now=NOW)
    # the indexes built, then the shipments made in number order: each with the sort's cache and helper threads
    assert caches == [(-sqlite_pragmas.SORT_CACHE_KIB, sqlite_pragmas.sort_threads())] * 2
    assert sqlite_pragmas.sort_threads() >= 1 and db.conn.execute("PRAGMA threads").fetchone()[0] == 0
    names = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'")}
    assert {"idx_orders_tracking", "idx_orders_buyer", "idx_orders_seller", "idx_orders_seq"} <= names
    by_index = db.conn.execute("SELECT count(*) FROM orders INDEXED BY idx_orders_seller WHERE seller_id = 's1'")
    assert by_index.fetchone()[0] == sum(1 for r in rows if r["seller_id"] == "s1")
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.conn.execute("PRAGMA cache_size").fetchone()[0] == -4321
    assert db.conn.execute("PRAGMA temp_store").fetchone()[0] == temp_store


def test_the_sort_cache_comes_back_when_the_block_fails(db):
    from tracker.sqlite_pragmas import SORT_CACHE_KIB, sort_cache

    db.conn.execute("PRAGMA cache_size = -9999")
    with pytest.raises(sqlite3.OperationalError), sort_cache(db.conn):
        assert db.conn.execute("PRAGMA cache_size").fetchone()[0] == -SORT_CACHE_KIB
        assert db.conn.execute("PRAGMA threads").fetchone()[0] >= 1
        db.conn.execute("CREATE INDEX broken ON no_such_table(x)")
    assert db.conn.execute("PRAGMA cache_size").fetchone()[0] == -9999
    assert db.conn.execute("PRAGMA threads").fetchone()[0] == 0
