"""Foreign stores, places tracker may not write, full disks and planted links: refused or survived, never a crash.

Each failure is one line naming the place, exit 2 for what the user can fix (a read-only database, a store
of a newer tracker, a folder tracker may not write), exit 1 for a failing disk; nothing half-written stays.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from test_cases_support import add_event, add_flag, add_order
from test_import_support import ORDER_HEADER, write_csv
from test_storage_support import fill, make_read_only, read_only_file, read_only_place, tiny_disk

from tracker.cases.privacy import SECRET_KEY, key_path, pseudonym
from tracker.cases.sync import sync_cases
from tracker.db import get_meta, open_db
from tracker.migrations import MIGRATIONS
from tracker.timeutil import parse_time

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "RR123456785CN"
AS_OF = "2026-03-20T00:00:00Z"


def _cluster(db) -> int:
    """A case whose tracking number is also on another buyer's order; returns the case id."""
    add_order(db, "8100000000000001", buyer_id="buyer-own", tracking_number=NUMBER, dest_city="Berlin",
              dest_postcode="10115", buyer_received="no", shipped_at="2026-03-03T08:00:00Z")
    add_order(db, "ORDER-OTHER-2002", buyer_id="buyer-other-alpha", tracking_number=NUMBER, dest_city="Munich",
              dest_postcode="80331")
    add_event(db, NUMBER, "2026-03-12T09:30:00Z", "delivered", "Delivered", city="Munich", postcode="80331",
              country="DE")
    add_flag(db, "8100000000000001", "tracking_reused", "high",
             "RR123456785CN is also on order ORDER-OTHER-2002 of buyer buyer-other-alpha.",
             {"other_orders": ["ORDER-OTHER-2002"]})
    sync_cases(db, {"8100000000000001"}, parse_time(AS_OF))
    return db.execute("SELECT id FROM cases WHERE order_id = '8100000000000001'").fetchone()[0]


def _old_store(path: Path, upto: int) -> sqlite_utils.Database:
    """A store as a tracker with only the first `upto` migrations left it."""
    db = sqlite_utils.Database(sqlite3.connect(path))
    db.conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, step in MIGRATIONS[:upto]:
        with db.conn:
            step(db)
            db.conn.execute("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00Z')", [name])
    return db


# --- the pseudonym key ---------------------------------------------------------------------------------


def test_the_key_moves_from_the_database_to_a_private_file_and_old_packets_stay_verifiable(db_path, tmp_path, run_cli):
    index = next(i for i, (name, _) in enumerate(MIGRATIONS) if name == "010_pseudonym_key_file")
    old = _old_store(db_path, index)
    old_key = secrets.token_bytes(32)
    with old.conn:  # where versions before 009 kept it, readable by anyone who could read a table
        old.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", [SECRET_KEY, old_key.hex()])
    old.conn.close()
    made_before = pseudonym(old_key, "buyer", "buyer-other-alpha")  # as in a packet made before the move

    db = open_db(db_path)
    case_id = _cluster(db)
    assert get_meta(db, SECRET_KEY) is None
    assert db.execute("SELECT count(*) FROM meta WHERE value = ?", [old_key.hex()]).fetchone()[0] == 0
    key_file = key_path(db_path)
    assert key_file.parent == db_path.parent
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert bytes.fromhex(key_file.read_text()) == old_key

    assert run_cli("export", case_id, "--out", tmp_path / "packet", "--as-of", AS_OF).exit_code == 0
    evidence = json.loads((tmp_path / "packet" / "evidence.json").read_text())
    assert made_before in {o["buyer"] for o in evidence["related_orders"]}
    db.close()


def test_a_new_store_makes_its_key_on_first_need_only(db, db_path, tmp_path, run_cli):
    case_id = _cluster(db)
    assert not key_path(db_path).exists()
    assert run_cli("export", case_id, "--out", tmp_path / "p1", "--as-of", AS_OF).exit_code == 0
    assert stat.S_IMODE(key_path(db_path).stat().st_mode) == 0o600
    first = key_path(db_path).read_text()
    assert run_cli("export", case_id, "--out", tmp_path / "p2", "--as-of", AS_OF).exit_code == 0
    assert key_path(db_path).read_text() == first
    assert json.loads((tmp_path / "p1" / "evidence.json").read_text())["related_orders"] == json.loads(
        (tmp_path / "p2" / "evidence.json").read_text())["related_orders"]


def test_a_conflicting_key_file_is_refused_not_overwritten(db_path, run_cli):
    index = next(i for i, (name, _) in enumerate(MIGRATIONS) if name == "010_pseudonym_key_file")
    old = _old_store(db_path, index)
    with old.conn:
        old.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", [SECRET_KEY, "ab" * 32])
    old.conn.close()
    key_path(db_path).write_text("cd" * 32 + "\n")
    result = run_cli("init")
    assert result.exit_code == 2
    assert str(key_path(db_path)) in result.stderr and "another pseudonym key" in result.stderr
    assert key_path(db_path).read_text().strip() == "cd" * 32
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM meta WHERE key = ?", [SECRET_KEY]).fetchone()[0] == "ab" * 32


# --- foreign and newer stores ----------------------------------------------------------------------------


def test_a_store_made_by_a_newer_tracker_is_refused_before_anything_is_written(db_path, tmp_path, run_cli):
    assert run_cli("init").exit_code == 0
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("INSERT INTO _migrations VALUES ('042_something_from_the_future', '2027-01-01T00:00:00Z')")
    conn.close()
    before = db_path.read_bytes()
    orders = write_csv(tmp_path / "o.csv", ORDER_HEADER, [["1", "b", "s", "2026-03-01", "DE"]])
    for args in (["init"], ["import", "orders", orders], ["cases"], ["flags"]):
        result = run_cli(*args)
        assert result.exit_code == 2, args
        assert result.stderr.strip() == (
            f"tracker: error: {db_path}: made by a newer tracker (migration 042_something_from_the_future); "
            "upgrade tracker"
        ), args
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM orders").fetchone()[0] == 0
    assert db_path.read_bytes() == before


def test_a_database_of_another_program_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "places.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    result = subprocess.run([sys.executable, "-m", "tracker", "--db", str(other), "init"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"tracker: error: {other}: not a tracker database (it holds other tables: moz_places); give another --db"
    )
    assert other.read_bytes() == before


# --- places tracker may not write -----------------------------------------------------------------------


def test_a_read_only_database_is_bad_input_naming_it(tmp_path):
    with read_only_place(tmp_path / "ro") as folder:
        store = folder / "tracker.db"
        orders = write_csv(tmp_path / "o.csv", ORDER_HEADER, [["1", "b", "s", "2026-03-01", "DE"]])
        subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "init"], check=True, cwd=ROOT,
                       capture_output=True)
        make_read_only(folder)
        for args in (["init"], ["import", "orders", str(orders)]):
            result = subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), *args],
                                    capture_output=True, text=True, cwd=ROOT)
            assert result.returncode == 2, (args, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and str(folder) in lines[0], lines
            assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_read_only_database_file_in_a_writable_folder_is_bad_input_naming_it(tmp_path):
    store = tmp_path / "tracker.db"
    orders = write_csv(tmp_path / "o.csv", ORDER_HEADER, [["1", "b", "s", "2026-03-01", "DE"]])
    subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "init"], check=True, cwd=ROOT,
                   capture_output=True)
    with read_only_file(store):
        result = subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "import", "orders", str(orders)],
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            f"tracker: error: {store}: the database is read-only; tracker needs to write it (check its permissions)")
        reading = subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "cases"],
                                 capture_output=True, text=True, cwd=ROOT)
        assert reading.returncode == 0, reading.stderr  # reading needs no write


def test_a_full_disk_under_the_database_is_a_failed_run_naming_it(tmp_path):
    with tiny_disk(tmp_path / "disk", size_kib=1536) as disk:  # room for a new store and its migrations' log
        store = disk / "tracker.db"
        subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "init"], check=True, cwd=ROOT,
                       capture_output=True)
        rows = [[f"O{i}", f"buyer-{i}", "s", "2026-03-01", "DE", "x" * 200] for i in range(20000)]
        orders = write_csv(tmp_path / "o.csv", [*ORDER_HEADER, "item_title"], rows)
        result = subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "import", "orders", str(orders)],
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(store) in lines[0] and "internal error" not in lines[0], lines
        (disk / "tracker.db-wal").unlink(missing_ok=True)
        assert sqlite3.connect(store).execute("SELECT count(*) FROM orders").fetchone()[0] == 0


def test_ids_and_windows_beyond_any_stored_value_are_bad_input(db, run_cli, tmp_path):
    for args in (["case", "show", "99999999999999999999999"],
                 ["case", "set-status", "99999999999999999999999", "dismissed"],
                 ["export", "99999999999999999999999", "--out", str(tmp_path / "p")],
                 ["case", "show", "9223372036854775808"]):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "no such case" in result.stderr and "internal error" not in result.stderr
    assert run_cli("case", "show", "9223372036854775807").stderr.strip().endswith("no such case (see 'tracker cases')")
    result = run_cli("cases", "--due-within", "99999999999999999999d")
    assert result.exit_code == 2 and "longer than 100 years" in result.stderr


# --- the complaint packet, all or nothing ----------------------------------------------------------------


def _packet_ok(folder: Path) -> None:
    import hashlib

    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"], name


def test_an_export_on_a_full_disk_leaves_nothing_and_the_retry_works(db, tmp_path, run_cli):
    case_id = _cluster(db)
    db.close()
    with tiny_disk(tmp_path / "disk", size_kib=256) as disk:
        filler = fill(disk, leave_bytes=8 * 1024)  # room for the text files, not the picture
        out = disk / "packet"
        result = run_cli("export", case_id, "--out", out, "--as-of", AS_OF)
        assert result.exit_code == 1, result.output
        assert result.stderr.strip().startswith(f"tracker: failed: --out {out}: could not write the packet (")
        assert "nothing was written" in result.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no packet, no temporary folder
        filler.unlink()
        assert run_cli("export", case_id, "--out", out, "--as-of", AS_OF).exit_code == 0
        _packet_ok(out)


def test_an_export_that_hits_a_file_size_limit_leaves_nothing(db, db_path, tmp_path):
    """The same failure without root: once the packet is being written, the child may write no file over 1 KiB
    (the evidence and the picture are bigger)."""
    case_id = _cluster(db)
    db.close()
    out = tmp_path / "packet"
    code = (
        "import resource, signal, sys\n"
        "import tracker.cases.export as export\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "real = export.write_packet\n"
        "def limited(out, files):\n"
        "    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
        "    return real(out, files)\n"
        "export.write_packet = limited\n"
        "from tracker.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    result = subprocess.run([sys.executable, "-c", code, "--db", str(db_path), "export", str(case_id), "--out",
                             str(out), "--as-of", AS_OF], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert f"--out {out}: could not write the packet" in result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".packet")]
    retry = subprocess.run([sys.executable, "-m", "tracker", "--db", str(db_path), "export", str(case_id), "--out",
                            str(out), "--as-of", AS_OF], capture_output=True, text=True, cwd=ROOT)
    assert retry.returncode == 0, retry.stderr
    _packet_ok(out)


def test_force_replaces_a_planted_link_instead_of_writing_through_it(db, tmp_path, run_cli):
    case_id = _cluster(db)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "packet"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "complaint.txt").symlink_to(victim)
    (out / "timeline.png").symlink_to(tmp_path / "does-not-exist-yet")
    assert run_cli("export", case_id, "--out", out, "--force", "--as-of", AS_OF).exit_code == 0
    assert victim.read_text() == "precious"
    assert not (tmp_path / "does-not-exist-yet").exists()
    assert not (out / "complaint.txt").is_symlink() and not (out / "timeline.png").is_symlink()
    assert (out / "notes.txt").read_text() == "mine"
    _packet_ok(out)


def test_an_out_folder_that_is_a_link_is_refused(db, tmp_path, run_cli):
    case_id = _cluster(db)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = run_cli("export", case_id, "--out", tmp_path / "link", "--force", "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "is a symbolic link" in result.stderr
    assert list((tmp_path / "real").iterdir()) == []


def test_an_unwritable_export_folder_is_bad_input_naming_it(db, tmp_path, run_cli):
    case_id = _cluster(db)
    with read_only_place(tmp_path / "ro") as folder:
        make_read_only(folder)
        out = folder / "packet"
        result = run_cli("export", case_id, "--out", out, "--as-of", AS_OF)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"tracker: error: --out {out}: cannot write"), lines
        assert not out.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount")
def test_the_key_file_cannot_be_made_beside_a_read_only_database(tmp_path):
    with read_only_place(tmp_path / "ro") as folder:
        store = folder / "tracker.db"
        db = open_db(store)
        case_id = _cluster(db)
        db.close()
        make_read_only(folder)
        result = subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), "export", str(case_id),
                                 "--out", str(tmp_path / "p"), "--as-of", AS_OF],
                                capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2, result.stderr
        assert str(folder) in result.stderr and "Traceback" not in result.stderr
