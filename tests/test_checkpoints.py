"""The write-ahead log copied back into the store by a thread while a command works (`tracker.checkpoints.behind`):
this connection's commits copy nothing back meanwhile, the thread does as the log grows and once more at the end,
and a store with no log (in memory, or another journal mode) is left as it is."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tracker import checkpoints


def _store(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def _rows_in_file_alone(path: Path, tmp: Path) -> int:
    """The rows the store's file holds without its log: what has been copied back."""
    alone = tmp / "alone.db"
    shutil.copyfile(path, alone)
    conn = sqlite3.connect(alone)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def test_the_log_is_copied_back_by_the_thread_while_the_block_runs_and_at_its_end(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(checkpoints, "POLL_S", 0.01)
    path = tmp_path / "store.db"
    conn = _store(path)
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    with checkpoints.behind(conn, str(path)):
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # this connection copies nothing back
        for _ in range(4):
            with conn:
                conn.executemany("INSERT INTO t(body) VALUES (?)", [("x" * 500,) for _ in range(500)])
        # the thread copies the committed pages back while the block still runs
        deadline = time.monotonic() + 10
        while _rows_in_file_alone(path, tmp_path) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _rows_in_file_alone(path, tmp_path) > 0
        with conn:
            conn.executemany("INSERT INTO t(body) VALUES (?)", [("y" * 500,) for _ in range(10)])
    # and once more at the end: the file alone holds every row committed in the block
    assert _rows_in_file_alone(path, tmp_path) == 2010
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    conn.close()


def test_a_block_that_fails_still_leaves_its_commits_copied_back(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "store.db"
    conn = _store(path)
    with pytest.raises(RuntimeError, match="stop"):
        with checkpoints.behind(conn, str(path)):
            with conn:
                conn.executemany("INSERT INTO t(body) VALUES (?)", [("z",) for _ in range(50)])
            raise RuntimeError("stop")
    assert _rows_in_file_alone(path, tmp_path) == 50
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    conn.close()


def test_a_store_without_a_log_is_left_as_it_is(tmp_path) -> None:  # noqa: ANN001
    memory = sqlite3.connect(":memory:")
    with checkpoints.behind(memory, ""):
        assert memory.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # nothing set, no thread
        memory.execute("CREATE TABLE t (id INTEGER)")
    path = tmp_path / "journal.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER)")
    conn.commit()
    with checkpoints.behind(conn, str(path)):
        with conn:
            conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # nothing set: no log to copy
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not Path(str(path) + "-wal").exists()
    conn.close()
