"""`tracker export-parquet DEST`: the store's bulk tables as Parquet, bucketed by tracking-number hash, only what
changed since the last export; to a folder, a file:// URL or fsspec's memory://."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_rules_builders import T0, add_journey, add_message, add_order, s10_number

from tracker.errors import BadInput
from tracker.events import insert_events
from tracker.mirror import export as mirror_export
from tracker.mirror.layout import MANIFEST, TABLES, Destination, buckets_of, read_bucket
from tracker.poll.store import seed_shipments


def _store(db, orders: int = 12) -> list[str]:
    numbers = []
    for i in range(orders):
        number = add_order(db, f"O{i}", buyer=f"B{i % 5}", seller=f"S{i % 3}")
        add_journey(db, number)
        add_message(db, f"O{i}", f"hello from the seller {i}")
        numbers.append(number)
    seed_shipments(db, T0)
    return numbers


def _rows(dest: str, table: str, columns: list[str]) -> list[tuple]:
    """Every bucket of a table, read back as a worker reads it (newest row per key, tombstones applied)."""
    destination = Destination(dest)
    manifest = destination.read_manifest()
    out = []
    for bucket in range(manifest.buckets):
        found = read_bucket(destination, manifest, table, bucket, columns)
        out += list(zip(*(found.column(c).to_pylist() for c in columns), strict=True))
    return sorted(out, key=repr)


def _store_rows(db, sql: str) -> list[tuple]:
    return sorted(db.conn.execute(sql).fetchall(), key=repr)


def test_a_first_export_mirrors_every_table_bucketed_by_the_number(db, tmp_path):
    _store(db)
    dest = str(tmp_path / "mirror")
    summary = mirror_export.export(db, dest, buckets=4)
    assert summary.full and summary.rows["orders"] == 12 and summary.rows["events"] == 12 * 11
    assert summary.rows["messages"] == 12 and summary.rows["shipment_facts"] == 12
    assert _rows(dest, "orders", ["order_id", "tracking_number", "seq"]) == \
        _store_rows(db, "SELECT order_id, tracking_number, seq FROM orders")
    assert _rows(dest, "events", ["id", "tracking_number", "occurred_at", "raw_code"]) == \
        _store_rows(db, "SELECT id, tracking_number, occurred_at, raw_code FROM tracking_events")
    assert _rows(dest, "messages", ["id", "order_id", "text"]) == \
        _store_rows(db, "SELECT id, order_id, text FROM messages")
    assert _rows(dest, "shipment_facts", ["tracking_number", "n_scans", "delivered_jd"]) == \
        _store_rows(db, "SELECT tracking_number, n_scans, delivered_jd FROM shipment_facts")
    # a number's orders and its scans are in the same bucket: the one its hash names
    manifest = Destination(dest).read_manifest()
    for bucket in range(4):
        orders = read_bucket(Destination(dest), manifest, "orders", bucket, ["tracking_number"])
        events = read_bucket(Destination(dest), manifest, "events", bucket, ["tracking_number"])
        numbers = set(orders.column("tracking_number").to_pylist())
        assert numbers == set(events.column("tracking_number").to_pylist())
        assert set(buckets_of(sorted(numbers), 4).tolist()) <= {bucket}
    # written by pyarrow's dataset writer: hive folders, plain Parquet files any reader opens
    files = sorted(Path(dest).rglob("*.parquet"))
    assert files and all(f.parent.name.startswith("bucket=") for f in files)
    assert pq.read_table(files[0]).num_rows > 0


def test_the_next_export_writes_only_what_changed(db, tmp_path):
    numbers = _store(db)
    dest = str(tmp_path / "mirror")
    mirror_export.export(db, dest, buckets=4)
    again = mirror_export.export(db, dest)
    assert not again.full and sum(again.rows.values()) == 0
    # one changed order, one new scan, one new message
    add_order(db, "O3", buyer="B9", seller="S0", number=numbers[3], received="no")
    with db.conn:
        insert_events(db, [{"tracking_number": numbers[5], "occurred_at": "2026-10-20T10:00:00Z",
                            "status": "delivered", "raw_code": "GTMS_SIGNED", "description": "signed",
                            "country": "RU", "city": "Moscow", "postcode": "101000", "source": "import"}])
    add_message(db, "O7", "please confirm receipt now", hours=90)
    third = mirror_export.export(db, dest)
    assert third.rows["orders"] == 1 and third.rows["events"] == 1 and third.rows["messages"] == 1
    assert third.rows["shipment_facts"] == 1  # the facts of the number that got a scan, made anew
    assert third.rows["shipments"] == 2  # the re-imported order's number and the scanned one
    assert _rows(dest, "shipments", ["tracking_number", "state", "not_found_count"]) == \
        _store_rows(db, "SELECT tracking_number, state, not_found_count FROM shipments")
    assert _rows(dest, "orders", ["order_id", "buyer_id", "buyer_received"]) == \
        _store_rows(db, "SELECT order_id, buyer_id, buyer_received FROM orders")
    assert _rows(dest, "shipment_facts", ["tracking_number", "n_events", "delivered_jd"]) == \
        _store_rows(db, "SELECT tracking_number, n_events, delivered_jd FROM shipment_facts")
    manifest = json.loads((tmp_path / "mirror" / MANIFEST).read_text())
    assert manifest["export"] == 3
    assert manifest["marks"]["event_id"] == db.conn.execute("SELECT max(id) FROM tracking_events").fetchone()[0]
    assert json.loads(db.conn.execute("SELECT value FROM meta WHERE key = 'mirror.last_export'").fetchone()[0]
                      )["export"] == 3


def test_an_order_whose_number_changes_bucket_leaves_its_old_bucket(db, tmp_path):
    _store(db, 4)
    dest = str(tmp_path / "mirror")
    mirror_export.export(db, dest, buckets=8)
    old = db.conn.execute("SELECT tracking_number FROM orders WHERE order_id = 'O1'").fetchone()[0]
    new = next(n for n in (s10_number() for _ in range(100)) if buckets_of([n], 8)[0] != buckets_of([old], 8)[0])
    add_order(db, "O1", buyer="B1", seller="S1", number=new)
    summary = mirror_export.export(db, dest)
    assert summary.moved == 1
    destination = Destination(dest)
    manifest = destination.read_manifest()
    in_old = read_bucket(destination, manifest, "orders", int(buckets_of([old], 8)[0]), ["order_id"])
    in_new = read_bucket(destination, manifest, "orders", int(buckets_of([new], 8)[0]), ["order_id", "tracking_number"])
    assert "O1" not in in_old.column("order_id").to_pylist()
    assert ("O1", new) in list(zip(*(in_new.column(c).to_pylist() for c in ("order_id", "tracking_number")),
                                   strict=True))
    assert _rows(dest, "orders", ["order_id", "tracking_number"]) == \
        _store_rows(db, "SELECT order_id, tracking_number FROM orders")
    # and back again: the tombstone of the move away does not hide it
    add_order(db, "O1", buyer="B1", seller="S1", number=old)
    assert mirror_export.export(db, dest).moved == 1
    assert _rows(dest, "orders", ["order_id", "tracking_number"]) == \
        _store_rows(db, "SELECT order_id, tracking_number FROM orders")


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_an_fsspec_url_is_a_destination(db, tmp_path, scheme):
    _store(db, 5)
    dest = f"memory://mirror-{tmp_path.name}" if scheme == "memory" else f"file://{tmp_path}/mirror"
    first = mirror_export.export(db, dest, buckets=2)
    add_order(db, "O9", buyer="B1")
    second = mirror_export.export(db, dest)
    assert (first.rows["orders"], second.rows["orders"]) == (5, 1)
    assert _rows(dest, "orders", ["order_id"]) == _store_rows(db, "SELECT order_id FROM orders")
    if scheme == "file":
        assert (tmp_path / "mirror" / MANIFEST).exists()
    else:
        import fsspec

        assert fsspec.filesystem("memory").exists(f"/mirror-{tmp_path.name}/{MANIFEST}")


def test_files_not_in_the_manifest_are_not_part_of_the_mirror(db, tmp_path):
    """An export that died before its manifest leaves files no reader sees, and the next export is whole."""
    _store(db, 3)
    dest = tmp_path / "mirror"
    mirror_export.export(db, str(dest), buckets=2)
    stray = dest / "orders" / "bucket=0" / "part-000009-0.parquet"
    pq.write_table(pq.read_table(next((dest / "orders").rglob("*.parquet"))), stray)
    assert _rows(str(dest), "orders", ["order_id"]) == _store_rows(db, "SELECT order_id FROM orders")


def test_a_bucket_of_many_exports_is_compacted_to_one_file(db, tmp_path, monkeypatch):
    monkeypatch.setattr(mirror_export, "COMPACT_FROM", 2)
    numbers = _store(db, 2)
    dest = str(tmp_path / "mirror")
    mirror_export.export(db, dest, buckets=1)
    compacted = []
    for i in range(2):
        add_order(db, "O0", buyer=f"B{i + 10}", number=numbers[0])
        compacted.append(mirror_export.export(db, dest).compacted)
    assert compacted == [0, 2]  # the third file of orders (and of shipments) in the bucket: one file each
    manifest = Destination(dest).read_manifest()
    assert len(manifest.paths("orders", 0)) == 1 and manifest.garbage
    assert _rows(dest, "orders", ["order_id", "buyer_id"]) == _store_rows(db, "SELECT order_id, buyer_id FROM orders")
    retired = list(manifest.garbage)
    mirror_export.export(db, dest)  # the next export deletes what the last one retired
    assert not any((tmp_path / "mirror" / p).exists() for p in retired)


def test_another_stores_mirror_is_refused(db, tmp_path):
    _store(db, 2)
    dest = tmp_path / "mirror"
    mirror_export.export(db, str(dest))
    from tracker.db import open_db

    other = open_db(tmp_path / "other.db")
    add_order(other, "X1")
    with pytest.raises(BadInput, match="another store"):
        mirror_export.export(other, str(dest))
    assert mirror_export.export(other, str(dest), full=True).rows["orders"] == 1
    other.close()


def test_the_command_line(db_path, tmp_path, run_cli):
    from tracker.db import open_db

    db = open_db(db_path)
    _store(db, 3)
    db.close()
    result = run_cli("export-parquet", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "3 orders" in result.output and "full" in result.output
    result = run_cli("export-parquet", tmp_path / "m")
    assert "incremental" in result.output and "0 orders" in result.output
    bad = run_cli("export-parquet", tmp_path / "m", "--buckets", "16")
    assert bad.exit_code == 2 and "only with --full" in bad.output
    zero = run_cli("export-parquet", tmp_path / "n", "--buckets", "0")
    assert zero.exit_code == 2 and "between 1 and 65536" in zero.output
    assert not (tmp_path / "n").exists()
    (tmp_path / "a-file").write_text("not a folder")
    afile = run_cli("export-parquet", tmp_path / "a-file")
    assert afile.exit_code == 2 and "is not a folder" in afile.output
    url = run_cli("export-parquet", "nosuchprotocol://bucket/mirror")
    assert url.exit_code == 2 and "no filesystem for this URL" in url.output


def test_child_writers_and_this_process_write_the_same_mirror(db, tmp_path, monkeypatch, thresholds):
    """Many slices: two spawned children read the store through the ADBC driver; the same rows as sqlite3 here."""
    numbers = _store(db, 30)
    add_order(db, "ODD", number=None, received="maybe")  # no tracking number: the bucket of ''
    with db.conn:
        db.conn.execute("UPDATE orders SET promised_days = 'soon', amount = 12.5 WHERE order_id = 'O4'")
    monkeypatch.setattr(mirror_export, "SLICE_ROWS", 7)
    thresholds(mirror_children_min_rows=0)
    children, here = str(tmp_path / "children"), str(tmp_path / "here")
    assert mirror_export.export(db, children, buckets=4).by == "child writers"
    thresholds(never_children=True)
    assert mirror_export.export(db, here, buckets=4).by == "this process"
    for table in TABLES.values():
        assert _rows(children, table.name, table.names) == _rows(here, table.name, table.names), table.name
    assert _rows(here, "orders", ["order_id", "promised_days", "amount"])[:1]
    assert ("O4", None, 12.5) in _rows(children, "orders", ["order_id", "promised_days", "amount"])
    # dozens of slices, one file per bucket from each of the two children
    assert len(Destination(children).read_manifest().paths("events", int(buckets_of([numbers[0]], 4)[0]))) == 2
