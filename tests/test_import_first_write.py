"""A store's first import writes its pages once, under a rollback journal instead of the write-ahead log
(`tracker.importers._write_once`): only when the store holds nothing and no other connection is open; the store
is in WAL mode again after it, and a killed first import leaves the store empty and whole."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from test_import_support import order, orders_csv, snapshot, write_csv

from tracker.db import open_db
from tracker.errors import BadInput
from tracker.importers import import_file
from tracker.importers import orders as orders_module

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def _watch_journal(monkeypatch) -> list[str]:  # noqa: ANN001
    """The journal mode each batch of orders is written under."""
    seen: list[str] = []
    write = orders_module.OrdersWriter.write

    def watched(self, batch):  # noqa: ANN001, ANN202
        seen.append(self.conn.execute("PRAGMA journal_mode").fetchone()[0])
        return write(self, batch)

    monkeypatch.setattr(orders_module.OrdersWriter, "write", watched)
    return seen


def test_a_first_import_writes_under_a_rollback_journal_and_leaves_the_store_in_wal_mode(db, tmp_path, monkeypatch):
    seen = _watch_journal(monkeypatch)
    rows = [order(i, tracking_number=f"LP{i:014d}") for i in range(1, 40)]
    result = import_file(db, "orders", orders_csv(tmp_path / "a.csv", rows), now=NOW)
    assert result.inserted == 39
    assert seen and set(seen) == {"delete"}
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 39
    assert db.conn.execute("SELECT count(*) FROM shipments").fetchone()[0] == 39
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # the store holds orders now: the next import keeps the log (a reader may be looking at them)
    more = [order(i, tracking_number=f"LP{i:014d}") for i in range(40, 50)]
    import_file(db, "orders", orders_csv(tmp_path / "b.csv", more), now=NOW)
    assert seen[-1] == "wal"
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 49


def test_a_first_import_keeps_the_log_while_another_connection_is_open(db, db_path, tmp_path, monkeypatch):
    seen = _watch_journal(monkeypatch)
    reader = sqlite3.connect(db_path)
    try:
        assert reader.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
        import_file(db, "orders", orders_csv(tmp_path / "a.csv", [order(1), order(2)]), now=NOW)
        assert seen == ["wal"]
        assert reader.execute("SELECT count(*) FROM orders").fetchone()[0] == 2  # read while in WAL mode throughout
    finally:
        reader.close()
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_first_import_that_fails_leaves_the_store_empty_and_in_wal_mode(db, tmp_path, monkeypatch):
    from tracker.importers import base

    monkeypatch.setattr(base, "BATCH_SIZE", 5)  # batches written before the bad row is read
    seen = _watch_journal(monkeypatch)
    rows = [order(i) for i in range(1, 30)] + [{"order_id": "bad", "buyer_id": "", "seller_id": "s",
                                                "ordered_at": "not a time", "dest_country": "ZZ"}]
    before = snapshot(db)
    with pytest.raises(BadInput, match="1 of 30 rows rejected, nothing imported"):
        import_file(db, "orders", orders_csv(tmp_path / "a.csv", rows), now=NOW)
    assert len(seen) >= 5 and set(seen) == {"delete"}
    assert snapshot(db) == before
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


_KILLED = textwrap.dedent("""
    import os, signal, sys
    from tracker import importers
    from tracker.importers import orders

    importers.cache_kib = lambda conn, source: 64  # a small cache: the import's pages reach the file before the end
    close = orders.OrdersWriter.close

    def killed(self):
        close(self)  # the indexes built and the shipments registered: the file holds most of the import by now
        os.kill(os.getpid(), signal.SIGKILL)

    orders.OrdersWriter.close = killed
    from tracker.cli.app import main
    sys.argv = ["tracker", "--db", sys.argv[1], "import", "orders", sys.argv[2]]
    main()
""")


def test_a_killed_first_import_leaves_the_store_empty_whole_and_in_wal_mode(db_path, tmp_path):
    open_db(db_path).close()
    header = ["order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "tracking_number", "item_title"]
    src = write_csv(tmp_path / "big.csv", header, [
        [f"K{i}", f"b{i % 97}", f"s{i % 13}", "2026-03-01T10:00:00Z", "DE", f"LP{i:014d}", "x" * 200]
        for i in range(20_000)])
    script = tmp_path / "killed.py"
    script.write_text(_KILLED, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(db_path), str(src)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / "tracker.db-journal").exists()  # the hot journal the killed import left behind

    db = open_db(db_path)  # rolls the journal back
    try:
        assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
        assert db.conn.execute("SELECT count(*) FROM shipments").fetchone()[0] == 0
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        result = import_file(db, "orders", src, now=NOW)
        assert result.inserted == 20_000
    finally:
        db.close()
