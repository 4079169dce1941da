"""`python -m bench --orders N`: run every area's benchmark at 10k, 100k and N orders.

Each area module `bench/<area>.py` exposes `run(n_orders, workdir) -> dict` and measures its own floor in the
same run (this machine is shared and noisy, so ratios are the figures we stand behind). Each run happens in a
fresh subprocess so memory figures are its own; the commands a user runs (`tracker import`, `tracker detect`,
`tracker train`) are timed as subprocesses of it (`bench.store.command`). The areas of one size share a store
built afresh from the project's generated world (`bench.store`): the imports area builds it, detect detects it,
model, cases, startup and dashboard copy what detect left. Writes bench/results.json, bench/results.md and
bench/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

AREAS = ["world", "imports", "polling", "detect", "model", "cases", "startup", "dashboard", "dask"]
HERE = Path(__file__).resolve().parent


def _machine() -> dict:
    mem_gb = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def compile_sources() -> None:
    """The project's bytecode written before anything is timed, as a user's commands find it after their first run
    (an install writes it: `make install`): a shell with PYTHONDONTWRITEBYTECODE set (this machine's) would
    otherwise have every timed command compile the project's modules again."""
    import compileall

    for package in ("tracker", "detectors"):
        compileall.compile_dir(str(HERE.parent / package), quiet=1)


def run_area(area: str, n: int, workdir: Path, timeout: int) -> dict:
    code = (
        "import json, sys, pathlib, importlib;"
        f"m = importlib.import_module('bench.{area}');"
        f"r = m.run({n}, pathlib.Path({str(workdir)!r}));"
        "sys.stdout.write('\\n@@RESULT@@' + json.dumps(r, default=str))"
    )
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=HERE.parent
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - started
    if proc.returncode != 0 or "@@RESULT@@" not in proc.stdout:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}", "wall_s": round(wall, 1)}
    result = json.loads(proc.stdout.rsplit("@@RESULT@@", 1)[1])
    result["wall_s"] = round(wall, 1)
    return result


def sizes_for(n: int) -> list[int]:
    return sorted({s for s in (10_000, 100_000) if s < n} | {n})


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def write_markdown(results: dict, path: Path) -> None:
    lines = [f"# Benchmark results ({results['machine']['when']})", "",
             "Each size's figures were measured by the run named in its `measured` row (a partial re-run, "
             "`--only` or `--sizes`, keeps the figures it did not measure; `earlier` marks figures older than "
             "these stamps).", ""]
    m = results["machine"]
    lines.append(f"Machine: {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, {m['platform']}.")
    lines.append("")
    for area, by_size in results["areas"].items():
        lines.append(f"## {area}")
        lines.append("")
        lines.append("| orders | figure | value |")
        lines.append("|---:|---|---:|")
        for size, figures in by_size.items():
            for key, value in _flat({"measured": "earlier", **figures}).items():
                shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
                lines.append(f"| {int(size):,} | {key} | {shown} |")
        lines.append("")
    path.write_text("\n".join(lines))


# the step each area times (seconds), plotted against size; polling is left out: it polls a fixed
# number of pages at every size (its figure is a rate, not a total); so is startup: start-up does not grow with size
STEP_SECONDS = {
    "world": lambda f: f.get("step_s"),
    "imports": lambda f: f.get("events", {}).get("import_s"),
    "detect": lambda f: f.get("full", {}).get("s"),
    "model": lambda f: f.get("train_s"),
    "cases": lambda f: f.get("open_s"),
    "dashboard": lambda f: f["cases_facets_p95_ms"] / 1000 if "cases_facets_p95_ms" in f else None,
    "dask": lambda f: f.get("dask_again_s"),
}
STEP_LABELS = {"model": "tracker train", "detect": "tracker detect --full", "imports": "tracker import events",
               "cases": "open every case", "dashboard": "dashboard p95 (faceted cases)",
               "world": "world (generate)", "dask": "detect on a 2-worker Dask cluster"}


def plot_scaling(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for area, by_size in results["areas"].items():
        step = STEP_SECONDS.get(area)
        if step is None:
            continue
        points = sorted((int(size), step(figures)) for size, figures in by_size.items() if "error" not in figures)
        points = [(x, y) for x, y in points if y]
        if points:
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=STEP_LABELS.get(area, area))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("orders")
    ax.set_ylabel("seconds")
    ax.set_title("tracker: cost of each step against size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=int(os.environ.get("BENCH_ORDERS", 1_000_000)))
    parser.add_argument("--only", default="", help="comma-separated areas (default: all)")
    parser.add_argument("--sizes", default="", help="comma-separated sizes (default: 10k, 100k, N)")
    parser.add_argument("--workdir", default=str(HERE / "out"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per area and size")
    args = parser.parse_args()
    areas = [a for a in args.only.split(",") if a] or AREAS
    sizes = [int(s) for s in args.sizes.split(",") if s] or sizes_for(args.orders)
    results_path = HERE / "results.json"
    results = {"machine": _machine(), "sizes": sizes, "areas": {}}
    compile_sources()
    if args.only and results_path.exists():  # a partial re-run keeps the other areas' figures
        previous = json.loads(results_path.read_text())
        results["areas"] = previous.get("areas", {})
        results["sizes"] = sorted(set(sizes) | {int(n) for n in previous.get("sizes", [])})
    for area in areas:
        results["areas"].setdefault(area, {})  # a partial re-run keeps the sizes it does not measure
        for n in sizes:
            workdir = Path(args.workdir) / area / str(n)
            workdir.mkdir(parents=True, exist_ok=True)
            print(f"bench {area} at {n:,} orders ...", flush=True)
            figures = run_area(area, n, workdir, args.timeout)
            figures["measured"] = results["machine"]["when"]  # a partial re-run leaves older figures beside these
            results["areas"][area][str(n)] = figures
            print("  " + json.dumps(figures, default=str)[:400], flush=True)
            results_path.write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results, HERE / "results.md")
    plot_scaling(results, HERE / "scaling.png")
    print(f"wrote {results_path}, bench/results.md, bench/scaling.png")


if __name__ == "__main__":
    main()
