"""write_world streams the same files generate() builds in memory; the `tracker generate` verb."""

from __future__ import annotations

import csv

from tracker.world import generate, write_world
from tracker.world.generator import CHUNK


def _read(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_write_world_matches_generate_across_chunks(tmp_path):
    n = CHUNK + 250  # two chunks, the second one partial
    counts = write_world(tmp_path / "streamed", n, seed=5)
    generate(n, seed=5).write(tmp_path / "memory")
    for name in ("orders.csv", "events.csv", "messages.csv", "labels.csv"):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "memory" / name).read_bytes(), name
    assert counts["orders"] == counts["labels"] == n
    assert counts["events"] == len(_read(tmp_path / "streamed" / "events.csv")) - 1


def test_write_world_with_two_workers_writes_the_same_files(tmp_path):
    n = 2 * CHUNK + 10
    one = write_world(tmp_path / "one", n, seed=2)
    two = write_world(tmp_path / "two", n, seed=2, workers=2)
    assert one == two
    for name in ("orders.csv", "events.csv", "messages.csv", "labels.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        ["orders.csv", "events.csv", "messages.csv", "labels.csv"]
    )


def test_cli_generate_writes_the_four_files(run_cli, tmp_path):
    out = tmp_path / "world"
    result = run_cli("generate", "--orders", "120", "--seed", "3", "--as-of", "2026-10-01", "--out", out)
    assert result.exit_code == 0, result.output
    assert "120 orders" in result.output
    orders = _read(out / "orders.csv")
    assert len(orders) == 121
    ordered_at = orders[0].index("ordered_at")
    assert max(row[ordered_at] for row in orders[1:]) <= "2026-10-01T00:00:00Z"
    assert _read(out / "labels.csv")[0] == ["order_id", "fraud", "pattern"]


def test_cli_generate_same_seed_same_files(run_cli, tmp_path):
    for name in ("a", "b"):
        assert run_cli("generate", "--orders", "80", "--out", tmp_path / name).exit_code == 0
    assert (tmp_path / "a" / "events.csv").read_bytes() == (tmp_path / "b" / "events.csv").read_bytes()


def test_cli_generate_rejects_bad_arguments(run_cli, tmp_path):
    assert run_cli("generate", "--orders", "0", "--out", tmp_path / "x").exit_code == 2
    assert run_cli("generate", "--orders", "ten", "--out", tmp_path / "x").exit_code == 2
    assert run_cli("generate", "--orders", "10").exit_code == 2
    assert run_cli("generate", "--orders", "10", "--workers", "0", "--out", tmp_path / "x").exit_code == 2
    bad_time = run_cli("generate", "--orders", "10", "--as-of", "yesterday", "--out", tmp_path / "x")
    assert bad_time.exit_code == 2
    assert "--as-of" in bad_time.output and "Traceback" not in bad_time.output
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert run_cli("generate", "--orders", "10", "--out", a_file).exit_code == 2


def test_same_files_in_fresh_processes_whatever_the_hash_seed(tmp_path):
    """No set or dict-order randomness leaks in: two interpreters with different hash seeds agree."""
    import os
    import subprocess
    import sys

    code = "import sys; from tracker.world import write_world; write_world(sys.argv[1], 300, seed=9)"
    for name, hash_seed in (("a", "1"), ("b", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    for name in ("orders.csv", "events.csv", "messages.csv", "labels.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_generated_files_import_cleanly(run_cli, tmp_path, db_path):
    """What the generator writes is what the contract's importers accept, every row."""
    import sqlite3

    out = tmp_path / "world"
    assert run_cli("generate", "--orders", "600", "--seed", "4", "--out", out).exit_code == 0
    for kind in ("orders", "events", "messages"):
        result = run_cli("import", kind, out / f"{kind}.csv")
        assert result.exit_code == 0, result.output
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 600
        events = len(_read(out / "events.csv")) - 1
        assert conn.execute("SELECT count(*) FROM tracking_events").fetchone()[0] == events


def test_a_world_cut_short_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    """The files are written beside the folder's and moved in once whole: a run that fails midway leaves the
    world made before it, byte for byte, and nothing of its own."""
    import pytest

    from tracker.world import generator

    write_world(tmp_path, CHUNK + 50, seed=3)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    chunk = generator.WorldGenerator.chunk

    def fail_on_the_second(self, c):  # noqa: ANN001, ANN202
        if c == 1:
            raise RuntimeError("killed")
        return chunk(self, c)

    monkeypatch.setattr(generator.WorldGenerator, "chunk", fail_on_the_second)
    with pytest.raises(RuntimeError, match="killed"):
        write_world(tmp_path, CHUNK + 50, seed=4)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
