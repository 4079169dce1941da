"""Scratch folders name the process that made them; `sweep` removes those a killed run left (its process gone,
the folder this user's and old enough), and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tracker import scratch


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _aged(path, seconds: float = 3600.0) -> None:  # noqa: ANN001
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_folder_names_its_process_and_is_private(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    made = scratch.folder("frame")
    assert os.path.basename(made).startswith(f"tracker-frame-{os.getpid()}-")
    assert os.stat(made).st_mode & 0o777 == 0o700
    with pytest.raises(ValueError, match="unknown scratch kind"):
        scratch.folder("other")


def test_sweep_removes_only_what_a_killed_run_left(tmp_path):
    dead = _dead_pid()
    left = tmp_path / f"tracker-facts-{dead}-abc"
    left.mkdir()
    (left / "shipment_facts.arrow").write_bytes(b"x" * 1000)
    _aged(left)
    mine = tmp_path / f"tracker-frame-{os.getpid()}-def"  # a running process's (this one)
    mine.mkdir()
    _aged(mine)
    young = tmp_path / f"tracker-import-{dead}-ghi"  # too young to judge
    young.mkdir()
    other = tmp_path / f"something-{dead}-else"  # not ours
    other.mkdir()
    _aged(other)
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("keep")
    link = tmp_path / f"tracker-frame-{dead}-link"  # a link is never followed nor removed
    link.symlink_to(target)

    removed = scratch.sweep(str(tmp_path))

    assert removed == [str(left)]
    assert not left.exists()
    assert mine.exists() and young.exists() and other.exists() and link.is_symlink()
    assert (target / "keep").read_text() == "keep"


def test_a_killed_run_s_folder_goes_with_the_next_detect(tmp_path, monkeypatch, db, caplog):
    from datetime import UTC, datetime

    from tracker.detection.pipeline import detect

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    left = tmp_path / f"tracker-frame-{_dead_pid()}-xyz"
    left.mkdir()
    _aged(left)
    db.conn.execute("INSERT INTO orders (order_id, buyer_id, seller_id, ordered_at, dest_country, seq) "
                    "VALUES ('A1', 'b', 's', '2026-03-01T00:00:00Z', 'DE', 1)")
    db.conn.commit()
    with caplog.at_level("INFO", logger="tracker.detection.pipeline"):
        summary = detect(db, datetime(2026, 4, 1, tzinfo=UTC), full=True)
    assert summary.examined == 1
    assert not left.exists()
    assert any("left by a run that was killed" in r.getMessage() for r in caplog.records)

