"""Fuzzing the CSV and JSON Lines readers: whatever the bytes, exactly one of two outcomes.

Either the import is refused (bad input, every problem on a numbered line, nothing written), or what is
stored equals the file row for row. Files are generated from known rows (quotes, delimiters, line breaks,
control characters, future dates, negative amounts; several encodings, delimiters and quoting styles), so
the expected outcome of an untouched file is known exactly; a file with a random byte string or a stray
quote pushed into it may be refused, or import every row unchanged except the one that was hit.
"""

from __future__ import annotations

import csv
import io
import json
import re

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tracker.db import open_db
from tracker.errors import BadInput
from tracker.importers import import_file
from tracker.timeutil import parse_time

NOW = parse_time("2026-04-01T12:00:00Z")
# free text last: a quote opened there swallows the next rows and still leaves the right number of fields
COLUMNS = ["order_id", "buyer_id", "seller_id", "ordered_at", "dest_country", "amount", "item_title"]
# time text -> (stored form, accepted): the reference's whole knowledge of times
TIMES = {
    "2026-03-01": ("2026-03-01T00:00:00Z", True),
    "2026-03-01T10:00:00Z": ("2026-03-01T10:00:00Z", True),
    "2026-03-01 10:00+02:00": ("2026-03-01T08:00:00Z", True),
    "2026-04-02T11:00:00Z": ("2026-04-02T11:00:00Z", True),  # within a day of the run
    "2026-04-03": ("2026-04-03T00:00:00Z", False),  # the future
    "9999-12-31": ("9999-12-31T00:00:00Z", False),
}
AMOUNTS = {"": (None, True), "0": (0.0, True), "12.5": (12.5, True), "-3": (None, False)}
COUNTRIES = {"DE": "DE", "fr": "FR", " us ": "US"}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
BREAK = re.compile(r"\r\n|\r|\n")
# text with what breaks naive readers: quotes, every delimiter, spaces, non-ASCII; and, less often, line
# breaks and control characters (which only free text may hold, and no cell may hold, respectively)
tricky = st.sampled_from(list('"\',;\t \\{}[]:éß€中🙂\u00a0'))
printable = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
clean = st.text(st.one_of(tricky, printable), max_size=12)
dirty = st.text(st.one_of(tricky, printable, st.sampled_from(["\n", "\r"]), st.characters(max_codepoint=0x9f)),
                max_size=12)
title = st.text(st.one_of(tricky, printable, st.sampled_from(["\n", "\r"])), max_size=30)


@st.composite
def orders(draw):  # noqa: ANN001, ANN201
    """Up to 6 rows; one file in three may hold values the reference refuses."""
    n = draw(st.integers(1, 6))
    spoilt = draw(st.integers(0, 2)) == 0
    text = st.one_of(clean, dirty) if spoilt else clean
    times = sorted(TIMES) if spoilt else [t for t, (_, ok) in TIMES.items() if ok]
    amounts = sorted(AMOUNTS) if spoilt else [a for a, (_, ok) in AMOUNTS.items() if ok]
    return [
        {
            "order_id": f"O{i}{draw(text)}",
            "buyer_id": draw(st.one_of(st.just(f"buyer-{i}"), text)),
            "seller_id": draw(st.one_of(st.just("seller-1"), text)),
            "ordered_at": draw(st.sampled_from(times)),
            "dest_country": draw(st.sampled_from(sorted(COUNTRIES))),
            "item_title": draw(st.one_of(title, text)),
            "amount": draw(st.sampled_from(amounts)),
        }
        for i in range(n)
    ]


def expected(row: dict[str, str]) -> tuple | None:
    """The stored row, or None when the reference says the row must be refused."""
    for column, value in row.items():
        if CONTROL.search(value):
            return None
        if column != "item_title" and BREAK.search(value.strip()):
            return None
    ids = [row[c].strip() for c in ("order_id", "buyer_id", "seller_id")]
    stored_time, time_ok = TIMES[row["ordered_at"]]
    amount, amount_ok = AMOUNTS[row["amount"]]
    if not all(ids) or not time_ok or not amount_ok:
        return None
    return (*ids, stored_time, COUNTRIES[row["dest_country"]], row["item_title"].strip() or None, amount)


def encode(rows: list[dict[str, str]], fmt: str, delimiter: str, quoting: int, newline: str, encoding: str,
           ascii_json: bool) -> tuple[bytes, list[int]]:
    """The file's bytes, and where each data row starts in them (the last entry: the end)."""
    starts = []
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=newline)
        writer.writerow(COLUMNS)
        head = out.getvalue().encode(encoding)
        body = b""
        for row in rows:
            out = io.StringIO()
            # "\r\n" as the terminator makes the writer quote a value holding either character (with "\n" alone
            # it would leave a "\r" bare, which is a line break in the file); then the row ends as asked
            csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator="\r\n").writerow(
                [row[c] for c in COLUMNS])
            starts.append(len(head) + len(body))
            line = out.getvalue()[:-2] + newline
            body += line.encode("utf-16-le" if encoding == "utf-16" else encoding.replace("-sig", ""))
        data = head + body
    else:
        data = b""
        for row in rows:
            starts.append(len(data))
            data += (json.dumps(row, ensure_ascii=ascii_json) + newline).encode(
                "utf-16-le" if encoding == "utf-16" else encoding.replace("-sig", ""))
        if encoding in ("utf-8-sig", "utf-16"):
            bom = "\ufeff".encode(encoding.replace("-sig", "") if encoding != "utf-16" else "utf-16-le")
            data = bom + data
            starts = [s + len(bom) for s in starts]
    return data, [*starts, len(data)]


def as_utf8(value: str, encoding: str) -> str | None:
    """What the reader sees of a value written in `encoding`: the bytes read as UTF-8 (None: not UTF-8)."""
    try:
        return value.encode("utf-16-le" if encoding == "utf-16" else encoding.replace("-sig", "")).decode("utf-8")
    except UnicodeError:
        return None


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(
    rows=orders(),
    fmt=st.sampled_from(["csv", "jsonl"]),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    newline=st.sampled_from(["\n", "\r\n"]),
    encoding=st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]),
    ascii_json=st.booleans(),
    mutation=st.one_of(st.none(), st.tuples(st.floats(0, 1, exclude_max=True), st.one_of(
        st.just(b'"'),
        st.binary(min_size=1, max_size=3),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=3).map(str.encode),
    ), st.booleans())),
)
def test_an_import_is_refused_with_line_numbers_or_equals_the_file_row_for_row(
    tmp_path_factory, rows, fmt, delimiter, quoting, newline, encoding, ascii_json, mutation
):
    for row in rows:
        for value in row.values():
            try:
                value.encode("utf-16-le" if encoding == "utf-16" else encoding.replace("-sig", ""))
            except UnicodeError:
                assume(False)  # this encoding cannot hold the text at all
    data, starts = encode(rows, fmt, delimiter, quoting, newline, encoding, ascii_json)
    hit = None
    if mutation is not None:
        where, junk, at_field_start = mutation
        offset = starts[0] + int(where * (starts[-1] - starts[0]))
        if at_field_start:  # just after the next delimiter: where a stray quote opens a quoted field
            found = data.find(delimiter.encode() if fmt == "csv" else b'": "', offset)
            offset = offset if found < 0 else found + (1 if fmt == "csv" else 3)
        data = data[:offset] + junk + data[offset:]
        hit = max(i for i, start in enumerate(starts[:-1]) if start <= offset)

    # the reference: what an untouched file must give
    seen = [{c: as_utf8(v, encoding) if fmt == "csv" or not ascii_json else v for c, v in r.items()} for r in rows]
    if encoding == "utf-16":
        reference = None  # never UTF-8
    elif any(v is None for r in seen for v in r.values()):
        reference = None
    else:
        reference = [expected(r) for r in seen]
        ids = [r[0] for r in reference if r is not None]
        if None in reference or len(set(ids)) != len(ids):
            reference = None

    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"orders.{fmt}"
    path.write_bytes(data)
    db = open_db(folder / "tracker.db")
    try:
        try:
            import_file(db, "orders", path, now=NOW)
        except BadInput as exc:
            event(f"refused ({'mutated' if mutation else 'untouched'}, {fmt})")
            assert mutation is not None or reference is None, exc.problems
            assert re.match(rf"{re.escape(str(path))}:\d+: ", exc.problems[0]), exc.problems
            assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
            return
        stored = db.execute(
            "SELECT order_id, buyer_id, seller_id, ordered_at, dest_country, item_title, amount FROM orders"
            " ORDER BY seq").fetchall()
        event(f"imported ({'mutated' if mutation else 'untouched'}, {fmt})")
        if mutation is None:
            assert reference is not None, stored
            assert stored == reference
        else:
            assert len(stored) == len(rows), (stored, rows)  # no row swallowed, none split in two
            if reference is not None:
                for i, (got, want) in enumerate(zip(stored, reference, strict=True)):
                    assert i == hit or got == want, (i, hit, got, want)
    finally:
        db.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=orders(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    where=st.floats(0, 1, exclude_max=True),
)
def test_a_stray_quote_at_the_start_of_any_field_never_swallows_rows(tmp_path_factory, rows, delimiter, quoting,
                                                                    where):
    data, starts = encode(rows, "csv", delimiter, quoting, "\n", "utf-8", False)
    fields = [m.end() for m in re.finditer(re.escape(delimiter.encode()) + b"|\n", data[: starts[-1]])
              if m.end() >= starts[0] and m.end() < starts[-1]]
    offset = fields[int(where * len(fields))] if fields else starts[0]
    data = data[:offset] + b'"' + data[offset:]
    folder = tmp_path_factory.mktemp("quote")
    path = folder / "orders.csv"
    path.write_bytes(data)
    db = open_db(folder / "tracker.db")
    try:
        import_file(db, "orders", path, now=NOW)
    except BadInput as exc:
        assert re.match(rf"{re.escape(str(path))}:\d+: ", exc.problems[0]), exc.problems
        assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
    else:
        assert db.execute("SELECT count(*) FROM orders").fetchone()[0] == len(rows)
    finally:
        db.close()
