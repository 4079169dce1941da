"""The full-text indexes read their tables' rows (external content, migration 015): a fold forgets a changed or
deleted row by the values it was indexed with, which the queue kept, so a row is found by what it holds now and
only by that; and migration 015 turns an older store's indexes into these without losing a queued change."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from tracker.db import open_db
from tracker.migrations import MIGRATIONS, SEARCH_INDEXES
from tracker.search_index import fold_pending, pending_rows, refresh_search_index

ORDER = ("INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country, tracking_number, item_title)"
         " VALUES (?, 'buyer', ?, '2026-09-01T00:00:00Z', 'DE', ?, ?)")
MESSAGE = "INSERT INTO messages(order_id, sender, sent_at, text, message_key) VALUES (?, 'seller', '2026-09-02', ?, ?)"
CASE = ("INSERT INTO cases(order_id, status, category, reason, flag_codes, opened_at, updated_at)"
        " VALUES (?, 'open', 'not_received', ?, 'tracking_reused', '2026-09-03', '2026-09-03')")


def _found(conn: sqlite3.Connection, table: str, words: str) -> list[int]:
    return [row[0] for row in conn.execute(f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ? ORDER BY rowid",
                                           [words])]


def _agrees_with_its_table(conn: sqlite3.Connection) -> None:
    """Each index holds exactly its table's rows as they are now: FTS5's check against the content table (rank 1)
    fails on any term of a row's old values left behind or any term of its new ones missing."""
    for table in SEARCH_INDEXES:
        conn.execute(f"INSERT INTO {table}_fts({table}_fts, rank) VALUES ('integrity-check', 1)")
        indexed = conn.execute(f"SELECT count(*) FROM {table}_fts_docsize").fetchone()[0]
        assert indexed == conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0], table


def _fill(conn: sqlite3.Connection) -> None:
    with conn:
        conn.executemany(ORDER, [(f"81{i:08d}", f"seller-{i % 3}", f"RB{i:09d}CN", f"garden lamp {i}")
                                 for i in range(1, 7)])
        conn.executemany(MESSAGE, [(f"81{i:08d}", f"please confirm order {i}", f"m{i}") for i in range(1, 7)])
        conn.executemany(CASE, [(f"81{i:08d}", f"reused number {i}") for i in range(1, 4)])


def _change(conn: sqlite3.Connection) -> None:
    """Changes of every kind since the last fold: a title changed twice, a row changed and then deleted, a new row
    changed, a new row deleted, a deleted row's rowid taken by a new row, a change of a column not searched."""
    with conn:
        conn.execute("UPDATE orders SET item_title = 'quokka stool' WHERE order_id = '8100000001'")
        conn.execute("UPDATE orders SET item_title = 'wombat chair' WHERE order_id = '8100000001'")
        conn.execute("UPDATE orders SET seller_id = 'seller-new' WHERE order_id = '8100000002'")
        conn.execute("UPDATE messages SET text = 'open a dispute' WHERE message_key = 'm3'")
        conn.execute("DELETE FROM messages WHERE message_key = 'm3'")
        conn.execute(ORDER, ("8100000007", "seller-9", "RB000000007CN", "platypus plush"))
        conn.execute("UPDATE orders SET item_title = 'echidna plush' WHERE order_id = '8100000007'")
        conn.execute(ORDER, ("8100000008", "seller-9", "RB000000008CN", "numbat mug"))
        conn.execute("DELETE FROM orders WHERE order_id = '8100000008'")
        conn.execute("DELETE FROM messages WHERE message_key = 'm6'")  # the last rowid: the next message takes it
        conn.execute(MESSAGE, ("8100000006", "refund outside the platform", "m7"))
        conn.execute("UPDATE cases SET outcome = 'upheld', reason = 'reused twice' WHERE order_id = '8100000002'")
        conn.execute("UPDATE cases SET updated_at = '2026-09-04'")


def _found_as_now(conn: sqlite3.Connection) -> None:
    assert _found(conn, "orders", "wombat") == [1] and _found(conn, "orders", "quokka OR numbat OR platypus") == []
    assert _found(conn, "orders", '"garden lamp"') == [2, 3, 4, 5, 6] and _found(conn, "orders", "echidna") == [7]
    assert _found(conn, "orders", "seller") == [1, 2, 3, 4, 5, 6, 7] and _found(conn, "orders", '"seller-new"') == [2]
    assert _found(conn, "messages", "dispute") == [] and _found(conn, "messages", "confirm") == [1, 2, 4, 5]
    assert _found(conn, "messages", "refund") == [6]
    assert _found(conn, "cases", "upheld") == [2] and _found(conn, "cases", '"number 2"') == []
    _agrees_with_its_table(conn)


def test_a_row_is_found_by_what_it_holds_now_and_only_by_that(db):
    conn = db.conn
    _fill(conn)
    with conn:
        fold_pending(conn)
    _agrees_with_its_table(conn)
    _change(conn)
    assert _found(conn, "orders", "garden") == [1, 2, 3, 4, 5, 6]  # queued, not folded: the index as it was
    queued = pending_rows(conn)
    assert refresh_search_index(conn) == queued == 7  # each changed rowid once: orders 1, 2, 7, 8, messages 3, 6, a case
    _found_as_now(conn)
    with conn:  # back to its first title: found by it again, and no longer by the one it had
        conn.execute("UPDATE orders SET item_title = 'garden lamp 1' WHERE order_id = '8100000001'")
    refresh_search_index(conn)
    assert _found(conn, "orders", "wombat") == [] and _found(conn, "orders", '"lamp 1"') == [1]
    _agrees_with_its_table(conn)


def test_search_snippets_and_ranks_read_the_table(db):
    from tracker.dashboard.queries import search_queries

    _fill(db.conn)
    _change(db.conn)
    refresh_search_index(db.conn)
    sql, params = search_queries("wombat")["orders"]
    rows = db.conn.execute(sql, params).fetchall()
    assert len(rows) == 1 and rows[0][0] == "8100000001" and "\x02wombat\x03" in rows[0][-1]
    sql, params = search_queries("reused")["cases"]
    assert sorted(row[1] for row in db.conn.execute(sql, params)) == ["8100000001", "8100000002", "8100000003"]


def _old_store(path: Path) -> sqlite_utils.Database:
    """A store as a tracker before migration 015 left it: indexes holding a copy of their columns."""
    db = sqlite_utils.Database(sqlite3.connect(path))
    db.conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, step in MIGRATIONS:
        if name == "015_search_indexes_read_their_tables":
            break
        with db.conn:
            step(db)
            db.conn.execute("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00Z')", [name])
    return db


def _old_fold(conn: sqlite3.Connection) -> None:
    """The fold before migration 015: the queued rowids out of the index (it kept their old values), then in."""
    with conn:
        for table, columns in SEARCH_INDEXES.items():
            cols = ", ".join(columns)
            conn.execute(f"DELETE FROM {table}_fts WHERE rowid IN (SELECT id FROM {table}_fts_pending)")
            conn.execute(f"INSERT INTO {table}_fts(rowid, {cols}) SELECT t.rowid, {', '.join(f't.{c}' for c in columns)}"
                         f" FROM {table} t JOIN {table}_fts_pending q ON q.id = t.rowid")
            conn.execute(f"DELETE FROM {table}_fts_pending")


def test_the_migration_keeps_what_was_indexed_and_what_was_queued(db_path):
    old = _old_store(db_path)
    _fill(old.conn)
    _old_fold(old.conn)
    _change(old.conn)  # queued under the old triggers: rowids only
    queued = pending_rows(old.conn)
    assert _found(old.conn, "orders", "garden") == [1, 2, 3, 4, 5, 6]
    old.conn.close()

    db = open_db(db_path)
    conn = db.conn
    assert "content" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'orders_fts'").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE '%\\_fts\\_content' ESCAPE '\\'"
                        ).fetchone()[0] == 0
    # the queued rows are out of the index until they are folded; the others are in it, as they are
    assert pending_rows(conn) == queued
    assert conn.execute("SELECT count(*) FROM orders_fts_pending WHERE indexed").fetchone()[0] == 0
    assert _found(conn, "orders", "garden") == [3, 4, 5, 6] and _found(conn, "orders", "wombat") == []
    assert refresh_search_index(conn) == queued
    _found_as_now(conn)
    # and the new triggers queue the next changes with the values the rows were indexed with
    with conn:
        conn.execute("UPDATE orders SET item_title = 'bilby lamp' WHERE order_id = '8100000003'")
    assert conn.execute("SELECT indexed, item_title FROM orders_fts_pending").fetchall() == [(1, "garden lamp 3")]
    refresh_search_index(conn)
    assert _found(conn, "orders", "bilby") == [3] and _found(conn, "orders", '"lamp 3"') == []
    _agrees_with_its_table(conn)
