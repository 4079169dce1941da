"""Benchmark of start-up: the commands a person types often, timed as a user runs them, against a bare interpreter.

`run(n_orders, workdir)` times, each as a fresh `python -m tracker ...` subprocess from the repository root (wall
clock around the whole process, its output captured):

- `tracker --help`;
- `tracker validate RR123456785CN LP00123456789012` (two valid numbers: exit status 0);
- `tracker cases --due-within 3d` on a copy of the store the detect area left (`tracker cases` migrates a store
  that lacks a migration, so it may write), and the rows it listed;
- `tracker cases`, every case listed: not start-up, but what a user runs; its own figure, with its rows;
- floor: the bare interpreter, `python -c pass`.

On a shared machine a noisy minute would land on one command only, so the floor and the commands run in turns,
`REPEATS` times (each turn the floor, then every command once), and each one's best time counts. Issue 19's
target: `tracker --help`, `tracker validate` and `tracker cases` start in well under 0.3 s. Run alone:
`python -m bench.startup 10000`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import store

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5
NUMBERS = ("RR123456785CN", "LP00123456789012")

Runner = Callable[[list[str]], tuple[float, str]]


def timed(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of one process run from the repository root, and what it printed; a failure raises."""
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[1:])}: exit {proc.returncode}: {tail}")
    return seconds, proc.stdout


def in_turns(commands: dict[str, list[str]], repeats: int,
             runner: Runner = timed) -> dict[str, list[tuple[float, str]]]:
    """Every command's runs (seconds, output): `repeats` turns, each running every command once, in order."""
    runs: dict[str, list[tuple[float, str]]] = {name: [] for name in commands}
    for _turn in range(repeats):
        for name, argv in commands.items():
            runs[name].append(runner(argv))
    return runs


def table_rows(out: str) -> int:
    """The rows of a listing `tracker` printed as a table: the lines below its header and its rule of dashes (one
    line per row, `tracker.cli.output.emit_rows`)."""
    lines = out.splitlines()
    if len(lines) < 2 or set(lines[1]) - {"-", " "}:
        raise ValueError(f"not a tracker table: {out[:200]!r}")
    return len(lines) - 2


def run(n_orders: int, workdir: Path, repeats: int = REPEATS) -> dict:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    root = store.shared(workdir, n_orders)
    detected = store.store(n_orders, root, store.DETECTED)
    path = store.copy_store(detected, workdir / "startup.db")
    tracker = [sys.executable, "-m", "tracker"]
    cases = [*tracker, "--db", str(path), "cases"]
    commands = {
        "floor": [sys.executable, "-c", "pass"],
        "help": [*tracker, "--help"],
        "validate": [*tracker, "validate", *NUMBERS],
        "cases_due": [*cases, "--due-within", "3d", "--as-of", store.AS_OF],
        "cases_all": [*cases, "--as-of", store.AS_OF],
    }
    try:
        runs = in_turns(commands, max(1, repeats))
    finally:
        store.remove_store(path)
    out: dict = {"orders": n_orders, "repeats": max(1, repeats)}
    for name, each in runs.items():
        out[f"{name}_s"] = round(min(seconds for seconds, _ in each), 3)
    for name in ("cases_due", "cases_all"):
        counts = {table_rows(printed) for _, printed in runs[name]}
        if len(counts) != 1:  # the same store at the same --as-of: every run lists the same cases
            raise RuntimeError(f"{name}: runs listed different numbers of rows: {sorted(counts)}")
        out[f"{name}_rows"] = counts.pop()
    for name, each in runs.items():
        out[f"{name}_s_each"] = [round(seconds, 3) for seconds, _ in each]
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(run(n, ROOT / "bench" / "out" / "startup" / str(n)), indent=2))
