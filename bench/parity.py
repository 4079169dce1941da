"""`python -m bench.parity`: the same flags and scores from two versions of the code, on one generated world.

A refactor of detection must not change what users see. This step builds a generated world once, imports it
and runs `tracker detect --full` with each version of the code (this checkout, and another one named by
`--against`, e.g. a `git worktree` of main), then compares a digest of the two stores' flags (order_id,
code, severity, explanation, evidence) and scores (order_id, score, codes, reasons) and lists every row that
differs. Each run is a `python -m tracker` subprocess, so each version runs its own code from start to end.

    git worktree add /tmp/main main
    python -m bench.parity --orders 100000 --against /tmp/main

Or take the digest of one store (`--dump STORE`), or compare two stores already built (`--stores A B`).
Exit status 0 when both tables are identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS_OF = "2026-11-01T00:00:00Z"
FLAG_COLUMNS = ("order_id", "code", "severity", "explanation", "evidence")
SCORE_COLUMNS = ("order_id", "score", "codes", "reasons")
TABLES = {
    "flags": f"SELECT {', '.join(FLAG_COLUMNS)} FROM flags WHERE resolved_at IS NULL ORDER BY order_id, code",
    "scores": f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores ORDER BY order_id",
}


def rows(store: str | Path, table: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        return conn.execute(TABLES[table]).fetchall()
    finally:
        conn.close()


def digest(store: str | Path) -> dict[str, dict[str, object]]:
    """Per table: its row count and the SHA-256 of its rows in key order (scores as stored, to 7 digits)."""
    out = {}
    for table in TABLES:
        h = hashlib.sha256()
        found = rows(store, table)
        for row in found:
            h.update(json.dumps(row, ensure_ascii=False).encode())
            h.update(b"\n")
        out[table] = {"rows": len(found), "sha256": h.hexdigest()}
    return out


def differences(a: str | Path, b: str | Path, limit: int = 20) -> dict[str, list[str]]:
    """Per table, one line per key whose row differs between the two stores (at most `limit` shown)."""
    out: dict[str, list[str]] = {}
    for table in TABLES:
        width = 2 if table == "flags" else 1
        left = {r[:width]: r for r in rows(a, table)}
        right = {r[:width]: r for r in rows(b, table)}
        lines = []
        for key in sorted(left.keys() | right.keys()):
            x, y = left.get(key), right.get(key)
            if x != y:
                lines.append(f"{'/'.join(key)}: {x!r} -> {y!r}")
        out[table] = lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
        out[f"{table}_changed"] = [str(len(lines))]
    return out


def _tracker(code: Path, store: Path, *args: str) -> float:
    """Run `python -m tracker --db store args` on the code in `code`; return its wall time."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tracker", "--db", str(store), *args], check=True, env=env, cwd=code,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def build(code: Path, world: Path, store: Path, as_of: str = AS_OF) -> dict[str, float]:
    """A store of the world's files, imported and detected (`detect --full`) by the code in `code`."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    seconds = {}
    for kind in ("orders", "events", "messages"):
        seconds[f"import_{kind}_s"] = round(_tracker(code, store, "import", kind, str(world / f"{kind}.csv")), 2)
    seconds["detect_s"] = round(_tracker(code, store, "detect", "--full", "--as-of", as_of), 2)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", default=AS_OF)
    parser.add_argument("--against", help="another checkout of the code (its folder) to compare with")
    parser.add_argument("--workdir", default=str(HERE / "out" / "parity"))
    parser.add_argument("--dump", metavar="STORE", help="print the digest of one store and stop")
    parser.add_argument("--stores", nargs=2, metavar=("A", "B"), help="compare two stores already built")
    args = parser.parse_args(argv)
    if args.dump:
        print(json.dumps(digest(args.dump), indent=2))
        return 0
    if args.stores:
        a, b = (Path(s) for s in args.stores)
    else:
        if not args.against:
            parser.error("give --against FOLDER (or --stores A B, or --dump STORE)")
        workdir = Path(args.workdir)
        world = workdir / f"world-{args.orders}-{args.seed}"
        if not (world / "labels.csv").exists():
            subprocess.run([sys.executable, "-m", "tracker", "generate", "--orders", str(args.orders), "--seed",
                            str(args.seed), "--as-of", args.as_of, "--out", str(world)], check=True,
                           stdout=subprocess.DEVNULL)
        a, b = workdir / "against.db", workdir / "this.db"
        timings = {"against": build(Path(args.against).resolve(), world, a, args.as_of),
                   "this": build(HERE.parent, world, b, args.as_of)}
        print(json.dumps(timings, indent=2))
    left, right = digest(a), digest(b)
    print(json.dumps({"a": left, "b": right}, indent=2))
    if left == right:
        print("identical: the same flags and the same scores")
        return 0
    for table, lines in differences(a, b).items():
        for line in lines:
            print(f"{table}: {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
