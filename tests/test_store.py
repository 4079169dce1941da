"""The store: migrations bring any file up to date, and bad database paths are bad input."""

import sqlite3

from tracker.db import open_db
from tracker.migrations import MIGRATIONS, migrate

USER_FACING = {"orders", "tracking_events", "messages", "flags", "cases", "case_events"}


def test_a_new_store_has_every_table_and_every_migration(db):
    assert USER_FACING <= set(db.table_names())
    applied = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert applied == [name for name, _ in MIGRATIONS]
    assert migrate(db) == []  # nothing left to do
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_init_brings_an_old_store_up_to_date(db_path, run_cli):
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    name, first = MIGRATIONS[0]
    import sqlite_utils

    old = sqlite_utils.Database(conn)
    with conn:
        first(old)
        conn.execute("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00Z')", [name])
    conn.close()

    result = run_cli("init")
    assert result.exit_code == 0
    later = [n for n, _ in MIGRATIONS[1:]]
    assert "migrated" in result.output and all(n in result.output for n in later)
    assert run_cli("init").output.strip().endswith("up to date")
    db = open_db(db_path, create=False)
    assert [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")] == [n for n, _ in MIGRATIONS]


def test_init_creates_a_missing_store(tmp_path, run_cli):
    result = run_cli("init")
    assert result.exit_code == 0 and "created" in result.output


def test_a_read_command_on_a_missing_store_is_bad_input(tmp_path):
    from click.testing import CliRunner

    from tracker.cli import cli

    missing = tmp_path / "nowhere" / "t.db"
    result = CliRunner().invoke(cli, ["--db", str(missing), "flags"])
    assert result.exit_code == 2
    assert "no database here" in result.output and "Traceback" not in result.output
    assert not missing.exists()


def test_a_file_that_is_not_sqlite_is_bad_input(tmp_path):
    from click.testing import CliRunner

    from tracker.cli import cli

    bogus = tmp_path / "t.db"
    bogus.write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(cli, ["--db", str(bogus), "init"])
    assert result.exit_code == 2
    assert "not a usable SQLite database" in result.output
