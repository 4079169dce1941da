"""`python -m bench.ab`: one `tracker` command timed with two versions of the code, in alternated pairs.

On a shared machine one run moves by a fifth from one minute to the next, so a change of a tenth is read from
pairs: each pair runs the command with the other checkout (`--against`, e.g. a `git worktree` of main), then with
this one, each on a fresh copy of the same store (written to disk first, `bench.store.copy_store`), as a
`python -m tracker` subprocess (start-up included: `bench.store.command`). It prints each pair, the median of each side's seconds,
stage seconds and peak memory of the process tree, and in how many pairs this checkout was faster.

    git worktree add /tmp/main main
    python -m bench.ab --against /tmp/main --store STORE --pairs 8 -- detect --as-of 2026-11-01T00:00:00Z
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from bench import store

HERE = Path(__file__).resolve().parent


def run_with(checkout: Path, db: Path, args: list[str]) -> dict:
    """`python -m tracker -v --db DB ARGS` run with `checkout`'s code (`bench.store.command`)."""
    return store.command(db, *args, code=checkout)


def compare(source: Path, copy: Path, this: Path, other: Path, args: list[str], pairs: int,
            run: Callable[[Path, Path, list[str]], dict] = run_with) -> dict:
    """`pairs` alternated runs of `args` (the other checkout first in each pair), each on a fresh copy of `source`
    at `copy`; the copy is removed after."""
    sides: dict[str, list[dict]] = {"against": [], "this": []}
    try:
        for _ in range(pairs):
            for side, checkout in (("against", other), ("this", this)):
                store.copy_store(source, copy)
                sides[side].append(run(checkout, copy, args))
    finally:
        store.remove_store(copy)

    def medians(results: list[dict]) -> dict:
        stages = sorted({name for r in results for name in r["stages"]})
        return {"s": round(statistics.median(r["s"] for r in results), 3),
                **({"peak_mb": round(statistics.median(r["peak_mb"] for r in results), 1)}
                   if all("peak_mb" in r for r in results) else {}),
                **{f"{name}_s": round(statistics.median(r["stages"].get(name, 0.0) for r in results), 3)
                   for name in stages}}

    return {"pairs": [[round(a["s"], 3), round(b["s"], 3)] for a, b in zip(sides["against"], sides["this"],
                                                                           strict=True)],
            "against": medians(sides["against"]), "this": medians(sides["this"]),
            "this_faster": sum(b["s"] < a["s"] for a, b in zip(sides["against"], sides["this"], strict=True))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the other checkout of the code (its folder)")
    parser.add_argument("--store", required=True, help="the store both run on (each run on a fresh copy)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--workdir", default=str(HERE / "out" / "ab"))
    parser.add_argument("command", nargs="+", help="the tracker command and its arguments (after --)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = compare(Path(args.store), workdir / "ab.db", HERE.parent, Path(args.against).resolve(), args.command,
                  args.pairs)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
