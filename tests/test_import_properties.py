"""Property tests: arbitrary rows never crash an import, and a file with any bad row writes nothing."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_import_support import snapshot

from tracker.db import open_db
from tracker.errors import BadInput
from tracker.importers import KINDS, ImportResult, import_file

PLAUSIBLE = [
    "",
    " ",
    "A1",
    "A2",
    "de",
    "XX",
    "Fr",
    "2026-03-01",
    "2026-03-01T10:00:00Z",
    "2026-02-30",
    "2026-03-01 10:00+05:00",
    "yes",
    "No",
    "1",
    "-1",
    "30",
    "2.5",
    "12,50",
    "nan",
    "RR473124829CN",
    "lp 0012 3456 7890",
    "seller",
    "buyer",
    "delivered",
    "Delivered",
    "in_transit",
    "Out for delivery",
    "\ufeff",
    "a\nb",
    "x;y",
    '"',
    "\x00",
]
cell = st.one_of(st.none(), st.sampled_from(PLAUSIBLE), st.text(max_size=12))
json_value = st.one_of(
    cell,
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("props")
    db = open_db(folder / "tracker.db")
    yield db, folder
    db.close()


@st.composite
def import_files(draw):  # noqa: ANN001, ANN201
    kind = draw(st.sampled_from(sorted(KINDS)))
    known = list(KINDS[kind].columns)
    header = draw(st.lists(st.one_of(st.sampled_from(known), st.text(max_size=8)), max_size=len(known) + 3))
    if draw(st.booleans()):  # mostly give the required columns, so rows get checked too
        header = list(dict.fromkeys([*KINDS[kind].required, *header]))
    fmt = draw(st.sampled_from(["csv", "jsonl"]))
    width = len(header)
    value = json_value if fmt == "jsonl" else cell
    rows = draw(st.lists(st.lists(value, min_size=width, max_size=width + (fmt == "csv")), max_size=6))
    return kind, fmt, header, rows


def _write(folder, fmt, header, rows):  # noqa: ANN001, ANN202
    path = folder / f"input.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            out = csv.writer(fh, delimiter=",")
            out.writerow(header)
            out.writerows([["" if v is None else v for v in row] for row in rows])
        else:
            for row in rows:
                fh.write(json.dumps(dict(zip(header, row, strict=False)), ensure_ascii=False) + "\n")
    return path


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(case=import_files())
def test_arbitrary_files_never_crash_and_bad_ones_write_nothing(store, case):
    db, folder = store
    kind, fmt, header, rows = case
    path = _write(folder, fmt, header, rows)
    before = snapshot(db)
    try:
        result = import_file(db, kind, path)
    except BadInput as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        assert len(exc.problems) <= 22
        assert snapshot(db) == before
    else:
        assert isinstance(result, ImportResult)
        assert result.rejected == 0
        assert result.inserted + result.updated + result.unchanged == result.rows
    assert not db.conn.in_transaction


GOOD = st.fixed_dictionaries(
    {
        "buyer_id": st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=8).filter(str.strip),
        "seller_id": st.sampled_from(["s1", "s2"]),
        # from 1990 on (a replace(year=...) would meet 29 February in a year without one), and not in the future
        "ordered_at": st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2026, 1, 1)).map(
            lambda d: d.replace(microsecond=0).isoformat()
        ),
        "dest_country": st.sampled_from(["de", "FR", "us", "Br"]),
        "promised_days": st.one_of(st.none(), st.integers(0, 90)),
        "amount": st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
        "tracking_number": st.sampled_from(["", "RR473124829CN", "lp00123456789012", "junk"]),
    }
)
BAD = st.sampled_from(
    [
        ("dest_country", "ZZ"),
        ("ordered_at", "not a date"),
        ("buyer_id", ""),
        ("promised_days", -1),
        ("amount", "12 EUR"),
        ("buyer_received", "perhaps"),
        ("order_id", "DUP"),
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    good=st.lists(GOOD, min_size=1, max_size=12),
    bad=BAD,
    where=st.integers(0, 12),
    fmt=st.sampled_from(["csv", "jsonl"]),
)
def test_one_bad_row_anywhere_means_nothing_is_written(store, good, bad, where, fmt):
    db, folder = store
    rows = [{"order_id": f"P{i}", **g} for i, g in enumerate(good)]
    rows[0]["order_id"] = "DUP"
    column, value = bad
    rows.insert(
        min(where, len(rows)) if column != "order_id" else max(1, min(where, len(rows))),
        {**rows[0], "order_id": "Q", column: value},
    )
    header = list(dict.fromkeys(k for r in rows for k in r))
    path = _write(folder, fmt, header, [[r.get(h) for h in header] for r in rows])
    before = snapshot(db)
    with pytest.raises(BadInput) as info:
        import_file(db, "orders", path)
    assert f"column {column}:" in info.value.problems[0]
    assert snapshot(db) == before
