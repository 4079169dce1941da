"""The bench's start-up area (`bench/startup.py`): the floor and the commands run in turns, each one's best run
counts, and the rows a listing printed are counted from its table. No figure is held to a speed here: timings
belong to the bench."""

from __future__ import annotations

import pytest

from bench import startup


def test_the_floor_and_the_commands_run_in_turns():
    calls: list[str] = []
    seconds = iter([0.5, 0.9, 0.3, 0.7, 0.4, 0.8])

    def fake(argv: list[str]) -> tuple[float, str]:
        calls.append(argv[0])
        return next(seconds), f"{argv[0]} said"

    runs = startup.in_turns({"floor": ["floor"], "help": ["help"]}, 3, runner=fake)
    assert calls == ["floor", "help"] * 3
    assert runs == {"floor": [(0.5, "floor said"), (0.3, "floor said"), (0.4, "floor said")],
                    "help": [(0.9, "help said"), (0.7, "help said"), (0.8, "help said")]}


def test_a_failing_command_fails_the_run():
    import sys

    with pytest.raises(RuntimeError, match="exit 3"):
        startup.timed([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_rows_are_counted_from_the_table_tracker_prints(capsys):
    from tracker.cli.output import emit_rows

    for n in (0, 1, 7):
        emit_rows([{"id": i, "reason": "", "score": None} for i in range(n)], ["id", "reason", "score"], "table")
        assert startup.table_rows(capsys.readouterr().out) == n
    with pytest.raises(ValueError):
        startup.table_rows('[{"id": 1}]\n')  # JSON, not a table


def test_the_area_times_each_command_and_counts_what_the_listings_printed(tmp_path):
    """On a tiny detected world: each figure is the best of its runs, the rows are the cases `list_cases` finds,
    and the store's copy is gone afterwards."""
    from datetime import timedelta

    from bench import store
    from tracker.cases.queries import list_cases
    from tracker.db import open_db
    from tracker.timeutil import parse_time

    workdir = tmp_path / "out" / "startup" / "300"
    out = startup.run(300, workdir, repeats=2)
    assert out["repeats"] == 2
    for name in ("floor", "help", "validate", "cases_due", "cases_all"):
        assert len(out[f"{name}_s_each"]) == 2
        assert out[f"{name}_s"] == min(out[f"{name}_s_each"]) > 0
    db = open_db(store.shared(workdir, 300) / store.DETECTED, create=False)
    as_of = parse_time(store.AS_OF)
    every = list_cases(db, as_of=as_of)
    due = list_cases(db, due_within=timedelta(days=3), as_of=as_of)
    db.close()
    assert out["cases_all_rows"] == len(every) > 0
    assert out["cases_due_rows"] == len(due)
    assert not list(workdir.glob("*.db*"))


def test_the_table_shows_the_start_up_rows_against_the_bare_interpreter():
    from bench.summary import table

    machine = {"when": "2026-12-07T12:00:00Z", "cpus": 2, "memory_gb": 23.5, "python": "3.11.7"}
    figures = {"floor_s": 0.02, "help_s": 0.1, "validate_s": 0.12, "cases_due_s": 0.15, "cases_all_s": 0.4,
               "cases_due_rows": 3, "cases_all_rows": 1234, "repeats": 5, "measured": "2026-12-07T12:00:00Z"}
    text = table({"machine": machine, "areas": {"startup": {"10000": figures}}})
    row = next(line for line in text.splitlines() if line.startswith("| `tracker --help`"))
    assert f"best of {startup.REPEATS}" in row
    assert row.endswith("| 10,000 | 0.100 s | 0.020 s | 5.00 | ≤ 0.3 s |")
    assert (f"| `tracker cases`, every case listed, best of {startup.REPEATS} | 10,000 | 0.400 s | 0.020 s | 20.00 | — |"
            in text)
    assert "rows listed: due within 3 days / every case | 10,000 | 3 / 1,234 |" in text


def test_every_row_of_the_table_belongs_to_an_area_the_bench_runs():
    from bench.__main__ import AREAS
    from bench.summary import ROWS

    assert {area for area, *_ in ROWS} <= set(AREAS)
    assert AREAS.index("detect") < AREAS.index("startup")  # it lists the cases detect opened
