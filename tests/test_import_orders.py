"""`tracker import orders`: validation, line numbers, formats, atomicity, idempotence, --skip-invalid."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from test_import_support import ORDER_HEADER, order, orders_csv, snapshot, write_csv, write_jsonl

from tracker.db import open_db
from tracker.errors import BadInput
from tracker.importers import import_file

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def problems_of(db, path, **kw) -> list[str]:  # noqa: ANN001
    with pytest.raises(BadInput) as info:
        import_file(db, "orders", path, now=NOW, **kw)
    return info.value.problems


def test_import_normalises_and_keeps_what_the_user_wrote(db, tmp_path):
    path = orders_csv(
        tmp_path / "o.csv",
        [
            order(
                1,
                tracking_number="rr 473 124 829 cn",
                dest_city=" Berlin ",
                promised_days="30",
                buyer_received="Y",
                amount="12.5",
                currency="eur",
                ordered_at="2026-03-01 12:00:00+02:00",
            ),
            order(2, dest_country="FR", carrier="China Post", tracking_number="", amount=""),
        ],
    )
    result = import_file(db, "orders", path, now=NOW)
    assert (result.inserted, result.updated, result.unchanged, result.rejected) == (2, 0, 0, 0)
    one = db.conn.execute(
        "SELECT tracking_number, tracking_number_raw, carrier, dest_country, dest_city, promised_days, "
        "buyer_received, amount, currency, ordered_at, extra, imported_at FROM orders WHERE order_id = 'A1'"
    ).fetchone()
    assert one == (
        "RR473124829CN",
        "rr 473 124 829 cn",
        "chinapost",
        "DE",
        "Berlin",
        30,
        "yes",
        12.5,
        "EUR",
        "2026-03-01T10:00:00Z",
        None,
        "2026-04-01T12:00:00Z",
    )
    two = db.conn.execute(
        "SELECT tracking_number, carrier, amount, dest_country FROM orders WHERE order_id = 'A2'"
    ).fetchone()
    assert two == (None, "chinapost", None, "FR")
    shipment = db.conn.execute(
        "SELECT tracking_number, carrier, state, first_seen_at, next_poll_at FROM shipments"
    ).fetchall()
    assert shipment == [
        ("RR473124829CN", "chinapost", "pending", "2026-04-01T12:00:00Z", "1970-01-01T00:00:00Z")
    ]


def test_cli_prints_one_summary_line(run_cli, tmp_path):
    path = orders_csv(tmp_path / "o.csv", [order(1), order(2)])
    result = run_cli("import", "orders", path)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [
        f"{path}: orders: 2 inserted, 0 updated, 0 unchanged, 0 rejected"
    ]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("order_id", "", "required value is missing"),
        ("buyer_id", "  ", "required value is missing"),
        ("seller_id", "", "required value is missing"),
        ("ordered_at", "", "required value is missing"),
        ("ordered_at", "yesterday", "not an ISO 8601 date or datetime ('yesterday')"),
        ("ordered_at", "2026-02-30", "not an ISO 8601 date or datetime"),
        ("ordered_at", "2026-01-01T25:00:00Z", "not an ISO 8601 date or datetime"),
        ("dest_country", "", "required value is missing"),
        ("dest_country", "XX", "'XX' is not an ISO 3166-1 alpha-2 country code"),
        ("dest_country", "Germany", "is not an ISO 3166-1 alpha-2 country code"),
        ("shipped_at", "03/02/2026", "not an ISO 8601 date or datetime"),
        ("buyer_confirmed_at", "soon", "not an ISO 8601 date or datetime"),
        ("promised_days", "-3", "must be a whole number of days, 0 or more ('-3')"),
        ("promised_days", "2.5", "must be a whole number of days"),
        ("promised_days", "ten", "must be a whole number of days"),
        ("buyer_received", "maybe", "must be yes or no ('maybe')"),
        ("amount", "12 USD", "not a number ('12 USD')"),
        ("amount", "inf", "not a finite number"),
        ("tracking_number", " - ", "no tracking number in"),
    ],
)
def test_each_column_error_names_line_column_and_reason(db, tmp_path, column, value, reason):
    path = orders_csv(tmp_path / "o.csv", [order(1), order(2, **{column: value})])
    problems = problems_of(db, path)
    assert problems[0].startswith(f"{path}:3: column {column}: ")
    assert reason in problems[0]
    assert "nothing imported" in problems[-1]
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("value", "stored"),
    [("y", "yes"), ("N", "no"), ("true", "yes"), ("False", "no"), ("1", "yes"), ("0", "no"), ("", None)],
)
def test_buyer_received_spellings(db, tmp_path, value, stored):
    import_file(db, "orders", orders_csv(tmp_path / "o.csv", [order(1, buyer_received=value)]), now=NOW)
    assert db.conn.execute("SELECT buyer_received FROM orders").fetchone()[0] == stored


def test_several_errors_in_one_row_are_all_reported(db, tmp_path):
    path = orders_csv(tmp_path / "o.csv", [order(1, buyer_id="", dest_country="ZZ", amount="x")])
    problems = problems_of(db, path)
    assert [p.split(": ")[1] for p in problems[:3]] == [
        "column buyer_id",
        "column dest_country",
        "column amount",
    ]


def test_line_numbers_count_a_quoted_multiline_field_as_an_editor_does(db, tmp_path):
    path = orders_csv(
        tmp_path / "o.csv",
        [
            order(1, item_title="a title\nover three\nlines"),  # lines 2-4
            order(2, dest_country="QQ"),  # line 5
        ],
    )
    assert path.read_text().splitlines()[4].startswith("A2,")  # what an editor shows as line 5
    assert problems_of(db, path)[0].startswith(f"{path}:5: column dest_country:")


def test_blank_lines_are_skipped_but_counted(db, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text(",".join(ORDER_HEADER) + "\n\nA1,b,s,2026-01-01,DE\n\n\nA2,b,s,2026-01-01,XX\n")
    assert problems_of(db, path)[0].startswith(f"{path}:6: column dest_country:")


def test_wrong_number_of_fields_is_a_row_error(db, tmp_path):
    path = tmp_path / "o.csv"
    path.write_text(",".join(ORDER_HEADER) + "\nA1,b,s,2026-01-01,DE,extra\n")
    assert problems_of(db, path)[0] == f"{path}:2: row has 6 fields, the header has 5"


def test_missing_required_columns_is_one_error_naming_them_all(db, tmp_path):
    path = write_csv(tmp_path / "o.csv", ["order_id", "ordered_at", "notes"], [["A1", "2026-01-01", "x"]])
    problems = problems_of(db, path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:1: missing required columns buyer_id, seller_id, dest_country")


def test_header_names_are_matched_loosely(db, tmp_path):
    path = write_csv(
        tmp_path / "o.csv",
        ["Order ID", "Buyer-Id", " seller_id ", "ORDERED_AT", "Dest Country"],
        [["A1", "b", "s", "2026-01-01", "de"]],
    )
    assert import_file(db, "orders", path, now=NOW).inserted == 1


def test_duplicate_order_id_in_one_file_is_an_error(db, tmp_path):
    path = orders_csv(tmp_path / "o.csv", [order(1), order(2), order(1, buyer_id="other")])
    problems = problems_of(db, path)
    assert problems[0] == f"{path}:4: column order_id: 'A1' is already on line 2 of this file"


def test_bom_and_semicolons(db, tmp_path):
    path = write_csv(
        tmp_path / "o.csv",
        [*ORDER_HEADER, "amount"],
        [["A1", "b", "s", "2026-01-01", "es", "12,50"]],
        delimiter=";",
        bom=True,
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbforder_id;")
    import_file(db, "orders", path, now=NOW)
    assert db.conn.execute("SELECT order_id, dest_country, amount FROM orders").fetchall() == [
        ("A1", "ES", 12.5)
    ]


def test_stdin_csv(run_cli, db_path):
    text = "\ufeff" + ",".join(ORDER_HEADER) + "\nA1,b,s,2026-01-01,DE\nA2,b,s,2026-01-02T00:00:00Z,fr\n"
    result = run_cli("import", "orders", "-", input=text.encode("utf-8"))
    assert result.exit_code == 0, result.output
    assert "<stdin>: orders: 2 inserted" in result.output
    bad = run_cli("import", "orders", "-", input=",".join(ORDER_HEADER) + "\nA3,b,s,2026-01-01,XX\n")
    assert bad.exit_code == 2
    assert "<stdin>:2: column dest_country:" in bad.output
    db = open_db(db_path)
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2


def test_jsonl_rows_and_bad_lines(db, tmp_path):
    path = write_jsonl(
        tmp_path / "o.jsonl",
        [
            {**order(1), "promised_days": 30, "amount": 9.99, "buyer_received": True, "gift": {"wrap": True}},
            {**order(2), "promised_days": None},
        ],
    )
    result = import_file(db, "orders", path, now=NOW)
    assert result.inserted == 2
    row = db.conn.execute(
        "SELECT promised_days, amount, buyer_received, extra FROM orders WHERE order_id='A1'"
    ).fetchone()
    assert row == (30, 9.99, "yes", '{"gift": {"wrap": true}}')

    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        json.dumps(order(3)) + "\n\n{not json\n[1, 2]\n" + json.dumps({**order(4), "buyer_id": ["x"]}) + "\n"
    )
    problems = problems_of(db, bad)
    assert problems[0].startswith(f"{bad}:3: not valid JSON")
    assert problems[1] == f"{bad}:4: expected a JSON object, got list"
    assert problems[2] == f"{bad}:5: column buyer_id: expected text or a number, got a JSON list"
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2


def test_jsonl_lone_surrogate_is_a_row_error(db, tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text(
        '{"order_id": "A1", "buyer_id": "b\\ud800", "seller_id": "s", "ordered_at": "2026-01-01", "dest_country": "DE"}\n'
    )
    assert "not valid Unicode" in problems_of(db, path)[0]


def test_unknown_columns_are_kept_in_extra(db, tmp_path):
    path = orders_csv(
        tmp_path / "o.csv", [order(1, Note="fragile", coupon=""), order(2, Note="", coupon="X5")]
    )
    import_file(db, "orders", path, now=NOW)
    extras = dict(db.conn.execute("SELECT order_id, extra FROM orders").fetchall())
    assert json.loads(extras["A1"]) == {"Note": "fragile"}
    assert json.loads(extras["A2"]) == {"coupon": "X5"}


def test_atomic_nothing_written_even_after_full_batches(db, tmp_path, monkeypatch):
    from tracker.importers import base

    monkeypatch.setattr(base, "BATCH_SIZE", 3)  # several batches are flushed before the bad row
    import_file(db, "orders", orders_csv(tmp_path / "first.csv", [order(100)]), now=NOW)
    before = snapshot(db)
    rows = [order(i, tracking_number=f"LP{10**13 + i}") for i in range(1, 11)] + [
        order(11, ordered_at="never")
    ]
    problems = problems_of(db, orders_csv(tmp_path / "o.csv", rows))
    assert len(problems) == 2
    assert snapshot(db) == before
    assert not db.conn.in_transaction


def test_more_than_twenty_problems_are_summarised(db, tmp_path):
    path = orders_csv(tmp_path / "o.csv", [order(i, dest_country="XX") for i in range(30)])
    problems = problems_of(db, path)
    assert len(problems) == 22
    assert problems[20] == "... and 10 more problems"


def test_reimport_changes_nothing(db, tmp_path):
    path = orders_csv(
        tmp_path / "o.csv",
        [
            order(i, tracking_number=f"LP{10**13 + i}", amount="3.10", promised_days="20", Note="n")
            for i in range(5)
        ],
    )
    import_file(db, "orders", path, now=NOW)
    before, changes = snapshot(db), db.conn.total_changes
    again = import_file(db, "orders", path, now=datetime(2026, 5, 1, tzinfo=UTC))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
    assert snapshot(db) == before
    assert db.conn.total_changes == changes


def test_changed_order_is_updated_and_gets_a_new_seq(db, tmp_path):
    import_file(db, "orders", orders_csv(tmp_path / "a.csv", [order(1), order(2)]), now=NOW)
    seqs = dict(db.conn.execute("SELECT order_id, seq FROM orders").fetchall())
    later = datetime(2026, 4, 2, tzinfo=UTC)
    result = import_file(
        db,
        "orders",
        orders_csv(tmp_path / "b.csv", [order(1), order(2, buyer_received="no"), order(3)]),
        now=later,
    )
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)
    rows = {
        r[0]: r[1:] for r in db.conn.execute("SELECT order_id, seq, buyer_received, imported_at FROM orders")
    }
    assert rows["A1"] == (seqs["A1"], None, "2026-04-01T12:00:00Z")
    assert rows["A2"][1:] == ("no", "2026-04-02T00:00:00Z") and rows["A2"][0] > max(seqs.values())
    assert rows["A3"][0] > max(seqs.values())
    assert len({rows[k][0] for k in rows}) == 3


def test_skip_invalid_imports_good_rows_and_writes_rejects(run_cli, db_path, tmp_path):
    path = orders_csv(
        tmp_path / "o.csv",
        [order(1), order(2, dest_country="XX", item_title="two\nlines"), order(3), order(1, buyer_id="dup")],
    )
    rejects = tmp_path / "out" / "rejects.csv"
    result = run_cli("import", "orders", path, "--skip-invalid", rejects)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"{path}: orders: 2 inserted, 0 updated, 0 unchanged, 2 rejected (written to {rejects})"
    )
    import csv

    with rejects.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["order_id"] for r in rows] == ["A2", "A1"]
    assert rows[0]["item_title"] == "two\nlines"
    assert rows[0]["line"] == "3" and rows[0]["reason"].startswith("column dest_country: 'XX'")
    assert rows[1]["line"] == "6" and "already on line 2" in rows[1]["reason"]
    db = open_db(db_path)
    assert [r[0] for r in db.conn.execute("SELECT order_id FROM orders ORDER BY 1")] == ["A1", "A3"]


def test_skip_invalid_jsonl_rejects(db, tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", [order(1), {**order(2), "dest_country": "??", "x": 1}])
    result = import_file(db, "orders", path, skip_invalid=tmp_path / "rej.jsonl", now=NOW)
    assert (result.inserted, result.rejected) == (1, 1)
    rejected = [json.loads(line) for line in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert rejected[0]["order_id"] == "A2" and rejected[0]["x"] == 1 and rejected[0]["line"] == 2


@pytest.mark.parametrize("name", ["orders.txt", "orders", "orders.xlsx"])
def test_unknown_extension_is_one_line_exit_2(run_cli, tmp_path, name):
    path = tmp_path / name
    path.write_text("order_id\n")
    result = run_cli("import", "orders", path)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"tracker: error: {path}: unknown file type {path.suffix or '(no extension)'}; "
        "use .csv, .jsonl or .ndjson, or '-' for CSV on stdin"
    ]


def test_unreadable_and_empty_files(run_cli, tmp_path):
    missing = run_cli("import", "orders", tmp_path / "nope.csv")
    assert missing.exit_code == 2 and "nope.csv: cannot read" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    (tmp_path / "empty.csv").write_text("")
    empty = run_cli("import", "orders", tmp_path / "empty.csv")
    assert empty.exit_code == 2 and "no header row" in empty.output
    (tmp_path / "latin1.csv").write_bytes(
        (",".join(ORDER_HEADER) + "\nA1,b,s,2026-01-01,DE\nA2,Jos\xe9,s,2026-01-01,DE\n").encode("latin-1")
    )
    latin = run_cli("import", "orders", tmp_path / "latin1.csv")
    assert latin.exit_code == 2 and "not UTF-8 text" in latin.output and "Traceback" not in latin.output


def test_header_only_file_imports_nothing(db, tmp_path):
    result = import_file(db, "orders", write_csv(tmp_path / "o.csv", ORDER_HEADER, []), now=NOW)
    assert (result.rows, result.inserted) == (0, 0)


def test_import_inside_a_callers_transaction_uses_a_savepoint(db, tmp_path):
    db.conn.execute("BEGIN")
    db.conn.execute("INSERT INTO meta(key, value) VALUES ('mine', '1')")
    with pytest.raises(BadInput):
        import_file(db, "orders", orders_csv(tmp_path / "o.csv", [order(1, dest_country="XX")]), now=NOW)
    assert db.conn.in_transaction
    import_file(db, "orders", orders_csv(tmp_path / "p.csv", [order(2)]), now=NOW)
    db.conn.commit()
    assert db.conn.execute("SELECT value FROM meta WHERE key = 'mine'").fetchone() == ("1",)
    assert db.conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
