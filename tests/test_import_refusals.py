"""Implausible input is refused with its line: swallowed rows, control characters, future times, negative
amounts. Free text keeps its real line breaks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from test_import_support import snapshot

from tracker.errors import BadInput
from tracker.importers import import_file

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
HEADER = "order_id,buyer_id,seller_id,ordered_at,dest_country,item_title\n"


def rows(n: int, start: int = 1) -> list[str]:
    return [f"O{i},buyer-{i},seller-1,2026-03-0{i % 9 + 1},DE,Lamp {i}\n" for i in range(start, start + n)]


def refused(db, path, kind: str = "orders") -> list[str]:
    before = snapshot(db)
    with pytest.raises(BadInput) as info:
        import_file(db, kind, path, now=NOW)
    assert snapshot(db) == before
    return info.value.problems


def test_a_stray_opening_quote_that_swallows_rows_is_refused_naming_its_line(db, tmp_path):
    # the issue's case: a stray " opens row 2's item_title, and rows 3 to 7 became its text
    lines = rows(7)
    lines[1] = lines[1].replace(",Lamp 2", ',"Lamp 2, the 12 inch model')
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(lines))
    problems = refused(db, path)
    assert problems[0].startswith(f"{path}:3: column item_title: the quote that opens this field on line 3 ")
    assert "takes in line 4, which reads as a row of its own" in problems[0]


def test_a_quote_left_open_in_a_middle_row_names_where_it_opened(db, tmp_path):
    lines = rows(4)
    lines[2] = 'O3,buyer-3,seller-1,2026-03-04,DE,"Lamp 3\n'
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(lines))
    assert "on line 4 " in refused(db, path)[0]


def test_real_line_breaks_in_free_text_are_kept(db, tmp_path):
    title = "Desk lamp\nred, blue, green, yellow, white\n2 bulbs, 1 cable"
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(rows(2)) + f'O9,buyer-9,seller-1,2026-03-01,DE,"{title}"\n' + "".join(rows(2, 20)))
    result = import_file(db, "orders", path, now=NOW)
    assert result.inserted == 5
    assert db.execute("SELECT item_title FROM orders WHERE order_id = 'O9'").fetchone()[0] == title
    chat = tmp_path / "messages.csv"
    text = 'Hello,\nplease confirm receipt, then I send a coupon.\nSeller, shop 12, "best"'
    chat.write_text('order_id,sender,sent_at,text\nO9,seller,2026-03-02,"' + text.replace('"', '""') + '"\n')
    assert import_file(db, "messages", chat, now=NOW).inserted == 1
    assert db.execute("SELECT text FROM messages").fetchone()[0] == text


def test_a_line_break_in_an_id_is_refused(db, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + '"O1\nO2",buyer-1,seller-1,2026-03-01,DE,Lamp\n')
    problems = refused(db, path)
    assert problems[0].startswith(f"{path}:2: column order_id: a line break inside the value")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused_with_their_line_and_column(db, tmp_path, char):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(rows(2)) + f"O3,buyer{char}3,seller-1,2026-03-01,DE,Lamp\n", encoding="utf-8")
    problems = refused(db, path)
    assert problems[0] == f"{path}:4: column buyer_id: control character U+{ord(char):04X} at character 6 of the value"


def test_control_characters_in_json_lines_are_refused(db, tmp_path):
    good = {"order_id": "O1", "buyer_id": "b", "seller_id": "s", "ordered_at": "2026-03-01", "dest_country": "DE"}
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        json.dumps({**good, "order_id": "O2", "item_title": "a\x00b"}),  # escaped as \u0000
        json.dumps({**good, "order_id": "O3", "note": "x\x1fy"}),  # an unknown column is checked too
        json.dumps({**good, "order_id": "O4\nO5"}),
        json.dumps({**good, "order_id": "O6", "item_title": "two\nlines"}),
        json.dumps({**good, "order_id": "O7", "seller_id": "s\x08"}),  # JSON's short escape \b
    ]) + "\n")
    problems = refused(db, path)
    assert problems[:-1] == [
        f"{path}:2: column item_title: control character U+0000 at character 2 of the value",
        f"{path}:3: column note: control character U+001F at character 2 of the value",
        f"{path}:4: column order_id: a line break inside the value; only free text may run over lines",
        f"{path}:6: column seller_id: control character U+0008 at character 2 of the value",
    ]  # line 5's title may run over lines


def test_times_more_than_a_day_after_the_run_are_refused(db, tmp_path, run_cli):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "O1,b,s,2026-04-02T11:00:00Z,DE,Lamp\nO2,b,s,2026-04-02T13:00:00Z,DE,Lamp\n"
                    "O3,b,s,9999-12-31,DE,Lamp\n")
    problems = refused(db, path)
    assert problems[0] == (f"{path}:3: column ordered_at: 2026-04-02T13:00:00Z is in the future "
                           "(more than a day after this run, 2026-04-01T12:00:00Z)")
    assert problems[1].startswith(f"{path}:4: column ordered_at: 9999-12-31T00:00:00Z is in the future")
    events = tmp_path / "events.csv"
    events.write_text("tracking_number,occurred_at,status\nRR473124829CN,2026-04-05,delivered\n")
    assert refused(db, events, "events")[0].startswith(f"{events}:2: column occurred_at: 2026-04-05T00:00:00Z is in")
    # the command line's --as-of moves "now"; without it the clock decides
    later = tmp_path / "later.csv"
    later.write_text(HEADER + "O1,b,s,2030-01-01,DE,Lamp\n")
    assert run_cli("import", "orders", later, "--as-of", "2030-01-01").exit_code == 0
    result = run_cli("import", "orders", later)
    assert result.exit_code == 2 and "2030-01-01T00:00:00Z is in the future" in result.stderr


def test_negative_amounts_are_refused(db, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order_id,buyer_id,seller_id,ordered_at,dest_country,amount\n"
                    "O1,b,s,2026-03-01,DE,-0\nO2,b,s,2026-03-01,DE,-12.50\nO3,b,s,2026-03-01,DE,0\n")
    problems = refused(db, path)
    assert problems[0] == f"{path}:3: column amount: a negative amount ('-12.50'); a price paid is 0 or more"
    assert len(problems) == 2  # the problem and the summary: -0 and 0 are fine
