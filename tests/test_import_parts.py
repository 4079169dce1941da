"""A big file read on two processes (`tracker.importers.parts`) imports exactly as the plain import does: the
same rows, rowids, seqs, shipments and search queue; the same error lines for a bad file (the plain import reports
them); nothing written after an interrupt; a re-import writes nothing."""

from __future__ import annotations

import json
import logging
import marshal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import pytest
from test_import_support import order, orders_csv, write_jsonl

from tracker.db import open_db
from tracker.errors import BadInput
from tracker.importers import import_file, parts
from tracker.importers.sources import Source
from tracker.plan import override

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
TABLES = ("orders", "shipments", "orders_fts_pending", "meta")


def rows(n: int, **overrides: object) -> list[dict[str, object]]:
    numbers = ["LP{:014d}", "YT{:016d}", "RR{:09d}CN", "ZZ{:06d}"]
    return [order(i, tracking_number=numbers[i % 4].format(i // 3) if i % 5 else "",
                  carrier="" if i % 3 else "cainiao", item_title=f"thing {i}", amount=f"{i}.5",
                  promised_days=str(i % 40), buyer_received=["yes", "no", ""][i % 3], **overrides)
            for i in range(1, n + 1)]


def stored(db) -> dict[str, list[tuple]]:  # noqa: ANN001
    return {t: db.conn.execute(f"SELECT rowid, * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


@pytest.fixture
def small_parts(monkeypatch, tmp_path):
    """Parts of a few rows, the helper from the first byte, and this process slowed down per part it reads, so
    that the helper takes most of them; scratch folders under tmp_path."""
    monkeypatch.setattr(parts, "PART_BYTES", 400)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    read_part = parts.read_part

    def slow(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.02)
        return read_part(*args, **kwargs)

    monkeypatch.setattr(parts, "read_part", slow)
    with override(import_helper_min_bytes=0):
        yield tmp_path


def plain(tmp_path, path, name="plain.db"):  # noqa: ANN001, ANN201
    db = open_db(tmp_path / name)
    with override(never_children=True):
        try:
            result = import_file(db, "orders", path, now=NOW)
        except BadInput as exc:
            return db, exc.problems
    return db, result


def in_parts(tmp_path, path, caplog, name="parts.db"):  # noqa: ANN001, ANN201
    db = open_db(tmp_path / name)
    with caplog.at_level(logging.DEBUG, logger="tracker.importers"):
        try:
            result = import_file(db, "orders", path, now=NOW)
        except BadInput as exc:
            return db, exc.problems
    return db, result


def helper_parts(caplog) -> int:  # noqa: ANN001
    found = [r.getMessage() for r in caplog.records if "parts read by the helper" in r.getMessage()]
    return int(found[-1].split()[1]) if found else -1


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_clean_file_imports_as_the_plain_import_does(small_parts, caplog, kind):
    tmp_path = small_parts
    data = rows(120)
    path = orders_csv(tmp_path / "o.csv", data) if kind == "csv" else write_jsonl(tmp_path / "o.jsonl", data)
    mine_db, mine = in_parts(tmp_path, path, caplog)
    plain_db, theirs = plain(tmp_path, path)
    assert helper_parts(caplog) > 0  # the helper did read parts
    assert (mine.rows, mine.inserted, mine.updated, mine.unchanged) == (theirs.rows, theirs.inserted, 0, 0) == (
        120, 120, 0, 0)
    assert stored(mine_db) == stored(plain_db)
    assert not list(tmp_path.glob("tracker-import-*"))  # the scratch folder goes


def test_a_reimport_writes_nothing(small_parts, caplog):
    tmp_path = small_parts
    path = orders_csv(tmp_path / "o.csv", rows(80))
    db, _ = in_parts(tmp_path, path, caplog)
    before, changes = stored(db), db.conn.total_changes
    again = import_file(db, "orders", path, now=datetime(2026, 5, 1, tzinfo=UTC))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 80)
    assert stored(db) == before and db.conn.total_changes == changes


def _bad_cell(data: list) -> None:
    data[97]["ordered_at"] = "yesterday"
    data[30]["dest_country"] = "XX"


def _twice_far_apart(data: list) -> None:
    data[110]["order_id"] = data[3]["order_id"]


def _twice_in_the_helpers_parts(data: list) -> None:
    data[115]["order_id"] = data[90]["order_id"]


def _short_row(data: list) -> None:
    pass  # written below: a row with a field missing


@pytest.mark.parametrize("spoil", [_bad_cell, _twice_far_apart, _twice_in_the_helpers_parts, _short_row])
def test_a_bad_file_is_reported_as_the_plain_import_reports_it(small_parts, caplog, spoil):
    tmp_path = small_parts
    data = rows(120)
    spoil(data)
    path = orders_csv(tmp_path / "o.csv", data)
    if spoil is _short_row:
        lines = path.read_text().splitlines(keepends=True)
        lines[100] = lines[100].rsplit(",", 1)[0] + "\n"
        path.write_text("".join(lines))
    mine_db, mine = in_parts(tmp_path, path, caplog)
    plain_db, theirs = plain(tmp_path, path)
    assert isinstance(mine, list) and mine == theirs and len(mine) >= 2
    assert any("read the plain way" in r.getMessage() for r in caplog.records)  # the parts were tried first
    assert stored(mine_db) == stored(plain_db)
    assert mine_db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
    assert mine_db.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'orders_fts_queue_insert'"
                                ).fetchone()[0] == 1  # the search queue's trigger is back


@pytest.mark.parametrize("spoil", [_twice_far_apart, _twice_in_the_helpers_parts])
def test_an_id_of_two_parts_into_a_store_holding_orders_is_reported(small_parts, caplog, spoil):
    """Into an empty table the orders' key refuses an id of two parts; into one holding orders the import looks each
    id up itself (the second row would otherwise update the first): both report what the plain import reports."""
    tmp_path = small_parts
    data = rows(120)
    spoil(data)
    path = orders_csv(tmp_path / "o.csv", data)
    earlier = orders_csv(tmp_path / "earlier.csv", [order(1000 + i) for i in range(3)])
    dbs = {}
    for name in ("parts.db", "plain.db"):
        dbs[name] = open_db(tmp_path / name)
        import_file(dbs[name], "orders", earlier, now=NOW)
    mine_db, mine = in_parts(tmp_path, path, caplog)
    plain_db, theirs = plain(tmp_path, path)
    assert isinstance(mine, list) and mine == theirs and any("is already on line" in p for p in mine)
    assert any("read the plain way" in r.getMessage() for r in caplog.records)
    assert stored(mine_db) == stored(plain_db)
    assert mine_db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 3


def test_line_breaks_in_quoted_fields_across_the_cuts(small_parts, caplog):
    """Cuts fall after line feeds, some inside a quoted title: such a part falls back, the store is the same."""
    tmp_path = small_parts
    data = rows(100)
    for i, row in enumerate(data):
        row["item_title"] = "line one\nline two\n" * (i % 7) + f"end {i}"
    path = orders_csv(tmp_path / "o.csv", data)
    mine_db, mine = in_parts(tmp_path, path, caplog)
    plain_db, theirs = plain(tmp_path, path)
    assert mine.inserted == theirs.inserted == 100
    assert stored(mine_db) == stored(plain_db)
    assert any("read the plain way" in r.getMessage() for r in caplog.records)  # a part cut inside a title


def test_parts_are_cut_after_line_feeds(tmp_path):
    path = orders_csv(tmp_path / "o.csv", rows(60))
    data = path.read_bytes()
    with Source(path) as src:
        bounds = src.part_bounds(300)
        assert bounds[0][0] == data.index(b"\n") + 1 and bounds[-1][1] == len(data)
        assert all(end == start for (_, end), (start, _) in zip(bounds, bounds[1:], strict=False))
        assert all(data[end - 1:end] == b"\n" for _, end in bounds)
    header = tmp_path / "h.csv"
    header.write_text('order_id,"buyer\nid",seller_id,ordered_at,dest_country\nA1,b,s,2026-03-01,DE\n')
    with Source(header) as src:
        assert src.data_start() is None and src.part_bounds(300) is None  # a header over two lines: plain


def test_an_interrupted_import_leaves_the_store_as_it_was_and_ends_the_helper(small_parts, caplog, monkeypatch):
    from tracker.importers import base, orders

    tmp_path = small_parts
    monkeypatch.setattr(base, "BATCH_SIZE", 20)
    db = open_db(tmp_path / "store.db")
    import_file(db, "orders", orders_csv(tmp_path / "first.csv", [order(900)]), now=NOW)
    before = stored(db)
    helpers: list[subprocess.Popen] = []
    start = parts._Helper.__init__

    def remember(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        start(self, *args, **kwargs)
        helpers.append(self.process)

    writes = 0
    write = orders.OrdersWriter.write

    def interrupted(self, batch):  # noqa: ANN001, ANN202
        nonlocal writes
        writes += 1
        if writes == 3:
            raise KeyboardInterrupt
        return write(self, batch)

    monkeypatch.setattr(parts._Helper, "__init__", remember)
    monkeypatch.setattr(orders.OrdersWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_file(db, "orders", orders_csv(tmp_path / "o.csv", rows(120)), now=NOW)
    assert writes == 3 and helpers and helpers[0].poll() is not None
    assert stored(db) == before and not db.conn.in_transaction
    assert not list(tmp_path.glob("tracker-import-*"))


def test_without_a_helper_this_process_reads_every_part(small_parts, caplog, monkeypatch):
    tmp_path = small_parts

    def refused(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError("no processes here")

    monkeypatch.setattr(parts.subprocess, "Popen", refused)
    path = orders_csv(tmp_path / "o.csv", rows(60))
    mine_db, mine = in_parts(tmp_path, path, caplog)
    plain_db, _ = plain(tmp_path, path)
    assert mine.inserted == 60 and helper_parts(caplog) == 0
    assert stored(mine_db) == stored(plain_db)


def test_a_small_file_starts_no_helper(tmp_path, monkeypatch):
    def started(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a helper for a small file")

    monkeypatch.setattr(parts, "_Helper", started)
    db = open_db(tmp_path / "s.db")
    assert import_file(db, "orders", orders_csv(tmp_path / "o.csv", rows(30)), now=NOW).inserted == 30


def test_the_helper_reads_a_part_as_this_process_does(tmp_path):
    """The helper's side, run as the import runs it: its order on stdin, a line per part, a marshal file each
    holding the records this process's checks make of that part."""
    from tracker.importers.orders import Orders

    path = orders_csv(tmp_path / "o.csv", rows(40))
    with Source(path) as src:
        bounds = src.part_bounds(500)
        state = src.parts_state()
        spec = Orders()
        spec.refuse_times_after(NOW)
        here = [parts.read_part(spec, src.part(*b), i == len(bounds) - 1) for i, b in enumerate(bounds)]
    folder = tmp_path / "scratch"
    folder.mkdir()
    order_text = json.dumps({"path": str(path), "source": state, "kind": "tracker.importers.orders:Orders",
                             "bounds": bounds,
                             "now": NOW.isoformat(), "folder": str(folder)})
    done = subprocess.run([sys.executable, "-c", "from tracker.importers.parts import main; main()"],
                          input=order_text.encode(), capture_output=True, check=True)
    assert done.stderr == b""
    lines = [line.split() for line in done.stdout.decode().splitlines()]
    assert [int(part) for part, _ in lines] == list(range(len(bounds))) and len(bounds) > 2
    assert [int(n) for _, n in lines] == [len(records) for records in here]
    handed = [marshal.loads((folder / f"{part}.rows").read_bytes()) for part in range(len(bounds))]
    assert handed == here and sum(map(len, here)) == 40
