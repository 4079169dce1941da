"""A store whose orders carry no tracking number yet, or that has no order at all, is detected (nothing to score),
and scored once orders with numbers come, as a full rescore scores them."""

from __future__ import annotations

import sqlite3


def _run(db, *args):  # noqa: ANN001, ANN202
    from click.testing import CliRunner

    from tracker.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(db), *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _incremental_and_full(store, twin, as_of: str) -> tuple[str, list, list]:  # noqa: ANN001
    """A copy of the store (its write-ahead log's pages too) detected with --full, the store itself incrementally:
    the incremental run's output and both stores' scores."""
    source, target = sqlite3.connect(store), sqlite3.connect(twin)
    source.backup(target)
    source.close()
    target.close()
    output = _run(store, "detect", "--as-of", as_of)
    _run(twin, "detect", "--full", "--as-of", as_of)
    from tracker.db import open_db

    scores = []
    for path in (store, twin):
        db = open_db(path)
        scores.append(db.conn.execute("SELECT order_id, score, codes, reasons FROM scores ORDER BY 1").fetchall())
        db.close()
    return output, scores[0], scores[1]


def test_a_store_whose_orders_carry_no_number_yet_is_detected_then_scored_as_a_full_rescore(tmp_path):
    """No order with a number: nothing to score (scikit-learn refuses an empty array: the binned walk must not
    ask it); then an order with a number arrives, and the incremental run scores it as a full rescore does."""
    run = _run
    header = "order_id,buyer_id,seller_id,ordered_at,dest_country,tracking_number\n"
    first = tmp_path / "a.csv"
    first.write_text(header + "A1,b1,s1,2026-03-01T00:00:00Z,DE,\n")
    second = tmp_path / "b.csv"
    second.write_text(header + "A2,b2,s1,2026-03-02T00:00:00Z,DE,LP00000000000001\n")
    store = tmp_path / "t.db"
    run(store, "import", "orders", first)
    assert "examined 1 orders" in run(store, "detect", "--full", "--as-of", "2026-04-01T00:00:00Z")
    run(store, "import", "orders", second)
    output, incremental, full = _incremental_and_full(store, tmp_path / "twin.db", "2026-04-02T00:00:00Z")
    assert "1 scored" in output
    assert incremental == full and [row[0] for row in incremental] == ["A2"]


def test_a_store_without_any_order_is_detected_then_scored_as_a_full_rescore(tmp_path):
    """No order at all (a new store, or a file of headers only): both kinds of run pass and keep books of no
    seller; the orders that come next are scored as a full rescore scores them."""
    run = _run
    header = "order_id,buyer_id,seller_id,ordered_at,dest_country,tracking_number\n"
    empty = tmp_path / "empty.csv"
    empty.write_text(header)
    orders = tmp_path / "orders.csv"
    orders.write_text(header + "A1,b1,s1,2026-03-01T00:00:00Z,DE,LP00000000000001\n"
                      "A2,b2,s1,2026-03-02T00:00:00Z,DE,LP00000000000002\n")
    store = tmp_path / "t.db"
    run(store, "import", "orders", empty)
    assert "examined 0 orders" in run(store, "detect", "--full", "--as-of", "2026-04-01T00:00:00Z")
    assert "examined 0 orders" in run(store, "detect", "--as-of", "2026-04-01T12:00:00Z")
    fresh = tmp_path / "fresh.db"
    assert "examined 0 orders" in run(fresh, "detect", "--as-of", "2026-04-01T00:00:00Z")
    run(store, "import", "orders", orders)
    output, incremental, full = _incremental_and_full(store, tmp_path / "twin.db", "2026-04-02T00:00:00Z")
    assert "2 scored" in output
    assert incremental == full and [row[0] for row in incremental] == ["A1", "A2"]
