"""The bench reads its figures from what the commands print: `tracker detect`'s summary line gives the orders
examined and scored of each run (the "orders examined / scored" row of docs/performance.md)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.detect import _figures
from tracker.detection.pipeline import DetectSummary

counts = st.integers(min_value=0, max_value=10**7)


@given(examined=counts, raised=counts, scored=counts, opened=counts, updated=counts)
def test_examined_and_scored_come_from_detects_own_summary_line(examined: int, raised: int, scored: int,
                                                                 opened: int, updated: int) -> None:
    line = DetectSummary(examined=examined, flags_raised=raised, scored=scored, cases_opened=opened,
                         cases_updated=updated).line()
    figures = _figures({"s": 1.0, "cpu_s": 1.0, "peak_mb": 10.0, "out": f"some note\n{line}",
                        "stages": {"rules": 0.5}})
    assert figures["examined"] == examined
    assert figures["scored"] == scored
    assert figures["rules_s"] == 0.5


def test_a_run_that_prints_no_summary_has_no_counts() -> None:
    figures = _figures({"s": 1.0, "cpu_s": 1.0, "peak_mb": 10.0, "out": "nothing to say", "stages": {}})
    assert "examined" not in figures and "scored" not in figures


def test_the_dashboards_floor_keeps_a_query_of_hundredths_of_a_millisecond() -> None:
    """A bare query of a few hundredths of a millisecond is a floor above 0 (a ratio can be made of it)."""
    from bench.dashboard import _percentiles

    p50, p95 = _percentiles([0.031] * 10 + [0.047] * 10)
    assert p50 == 0.039 and p95 == 0.047


def test_the_benchmark_table_says_when_its_rows_were_measured():
    """A partial re-run keeps older figures beside its own: the table names the days its rows come from."""
    from bench.summary import table

    machine = {"when": "2026-12-07T12:00:00Z", "cpus": 2, "memory_gb": 23.5, "python": "3.11.7"}
    detect = {"full": {"s": 40.0, "stages": {}}, "floor_group_by_s": 10.0, "measured": "2026-12-07T12:00:00Z"}
    cases = {"open_s": 2.5, "floor_s": 1.0, "measured": "2026-12-01T09:00:00Z"}
    one_day = table({"machine": machine, "areas": {"detect": {"1000000": detect}}})
    assert "Measured by `make bench` on 2026-12-07:" in one_day
    two_days = table({"machine": machine, "areas": {"detect": {"1000000": detect}, "cases": {"1000000": cases}}})
    assert "between 2026-12-01 and 2026-12-07" in two_days
    unstamped = {k: v for k, v in cases.items() if k != "measured"}
    older = table({"machine": machine, "areas": {"detect": {"1000000": detect}, "cases": {"1000000": unstamped}}})
    assert "on 2026-12-07, some rows earlier" in older


def test_the_import_bench_takes_each_sides_best_turn_and_builds_the_whole_store(tmp_path):
    """Imports and floors run in turns; each side's best counts; the turns before the last import into copies of the
    store the last one finds, so the run's store holds each kind once."""
    import sqlite3

    from bench import imports, store

    out = imports.run(300, tmp_path / "out" / "imports" / "300", repeats={"orders": 2, "events": 1, "messages": 2})
    for kind, turns in (("orders", 2), ("events", 1), ("messages", 2)):
        figures = out[kind]
        assert figures["turns"] == turns == len(figures["import_s_each"]) == len(figures["floor_s_each"])
        assert figures["import_s"] == min(figures["import_s_each"])
        assert figures["floor_s"] == min(figures["floor_s_each"])
    built = store.shared(tmp_path / "out" / "imports" / "300", 300) / store.STORE
    conn = sqlite3.connect(built)
    counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("orders", "tracking_events", "messages")]
    conn.close()
    assert counts == [out["orders"]["rows"], out["events"]["rows"], out["messages"]["rows"]] and counts[0] == 300
    assert out["reimport_orders_written"] == 0
    assert not list((tmp_path / "out" / "imports" / "300").glob("*.db*"))  # the turns' copies are gone


def test_a_repeated_command_runs_each_time_on_the_same_store_state_and_reports_the_median(tmp_path,  # noqa: ANN001
                                                                                          monkeypatch) -> None:  # noqa: ANN001
    """`bench.detect.repeated` runs the command on the store as it was before the first run each time (the copy it
    keeps is put back), reports the figures of the run of median time with every run's seconds, and leaves the
    store as a run leaves it, without its spare copy."""
    import sqlite3

    from bench import detect, store

    path, spare = tmp_path / "store.db", tmp_path / "spare.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(k,) for k in range(5)])
    conn.commit()
    conn.close()
    seen: list[int] = []
    times = iter([3.0, 1.0, 2.0])

    def command(db, *args):  # noqa: ANN001, ANN002, ANN202 - a command that changes the store as a detect does
        c = sqlite3.connect(db)
        seen.append(c.execute("SELECT count(*) FROM t").fetchone()[0])
        c.execute("INSERT INTO t VALUES (99)")
        c.commit()
        c.close()
        s = next(times)
        return {"s": s, "cpu_s": s, "peak_mb": 1.0, "out": f"examined {int(s)} orders: 0 scored", "stages": {}}

    monkeypatch.setattr(store, "command", command)
    figures = detect.repeated(path, spare, "detect", times=3)
    assert seen == [5, 5, 5]
    assert figures["s"] == 2.0 and figures["examined"] == 2 and figures["runs_s"] == [3.0, 1.0, 2.0]
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0] == 6
    assert not spare.exists()


def test_alternated_pairs_run_each_version_on_a_fresh_copy_of_the_same_store(tmp_path) -> None:  # noqa: ANN001
    """`bench.ab.compare` runs the other checkout then this one in each pair, each on the store as it was (a fresh
    copy), and reports each pair, each side's medians (seconds, stage seconds, peak memory) and in how many pairs this one was faster; the copy goes."""
    import sqlite3

    from bench import ab

    source, copy = tmp_path / "store.db", tmp_path / "copy.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    calls: list[tuple[str, int]] = []
    seconds = iter([5.0, 4.0, 3.0, 6.0, 5.0, 2.0])

    def run(checkout, db, args):  # noqa: ANN001, ANN202 - a command that changes the store, as detect does
        c = sqlite3.connect(db)
        calls.append((checkout.name, c.execute("SELECT count(*) FROM t").fetchone()[0]))
        c.execute("INSERT INTO t VALUES (1)")
        c.commit()
        c.close()
        s = next(seconds)
        return {"s": s, "stages": {"rules": s / 2}, "peak_mb": s * 100}

    out = ab.compare(source, copy, tmp_path / "this", tmp_path / "other", ["detect"], 3, run=run)
    assert calls == [("other", 0), ("this", 0)] * 3
    assert out["pairs"] == [[5.0, 4.0], [3.0, 6.0], [5.0, 2.0]]
    assert out["against"] == {"s": 5.0, "peak_mb": 500.0, "rules_s": 2.5}
    assert out["this"] == {"s": 4.0, "peak_mb": 400.0, "rules_s": 2.0}
    assert out["this_faster"] == 2
    assert not copy.exists()
