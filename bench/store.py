"""What every area measures on, and how a command is timed as a user runs it.

- `world_files(n, root)`: the project's own generated world at n orders (its reuse clusters, sellers' habits,
  chat), written once per size and seed with `tracker.world.write_world` (two workers).
- `command(...)`: one `python -m tracker ...` run as a subprocess, as a user types it: wall time, CPU time of
  the whole process tree, and its peak memory (the RSS of the process and every child it starts, sampled every
  20 ms from /proc), its output, and the stage split it logs with `-v`; from the same samples, the CPU of the
  command's own process against its children's, and the core time it left unused (cores × wall − CPU).
- `fresh_store(n, root)`: a store built from that world with `tracker import orders/events/messages`; the
  imports area builds it (and times those imports), the later areas copy it (`STORE`) or the store detect
  left (`DETECTED`), so each size of each `make bench` run stands on a freshly built store.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261206
AS_OF = "2026-11-01T00:00:00Z"  # the generated world's "now"
STORE = "store.db"  # in the root: the imported world, as the imports area left it
DETECTED = "detected.db"  # the same after `tracker detect --full`, as the detect area left it
KINDS = ("orders", "events", "messages")


def world_files(n_orders: int, root: Path) -> Path:
    """The generated world's files at this size (orders, events, messages, labels), written once."""
    folder = root / "world" / f"{n_orders}-{SEED}"
    done = folder / "counts.json"
    if not done.exists():
        from tracker.world import write_world

        shutil.rmtree(folder, ignore_errors=True)
        counts = write_world(folder, n_orders, seed=SEED, workers=2)
        done.write_text(json.dumps(counts))
    return folder


def shared(workdir: Path, n_orders: int) -> Path:
    """The folder the areas of one size share (beside the areas' own: bench/out/shared/N)."""
    folder = Path(workdir).resolve().parents[1] / "shared" / str(n_orders)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_store(source: Path, target: Path) -> Path:
    """A copy of a store (its write-ahead log checkpointed first), on the disk before it is handed back: gigabytes
    of a fresh copy still in the page cache would be written out while the next command is timed, and each of its
    commits would wait behind them."""
    import sqlite3

    conn = sqlite3.connect(source)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    remove_store(target)
    shutil.copyfile(source, target)
    os.sync()
    return target


class TreeMemory:
    """The peak RSS (MB) of a process and all its descendants, sampled every `every_s` seconds from /proc; and,
    from the same samples, the CPU the process itself used (`main_cpu_s`: its threads included, as last seen).

    The sampler shares the machine with what it measures, so it stays cheap: the whole process table (a read of
    every process's stat) is walked for new descendants only every `scan_every` samples, and in between only the
    known tree's memory is read (a few files). Walked every sample, it took about a tenth of a core, which a
    command using both cores pays for and a one-process baseline does not."""

    def __init__(self, pid: int, every_s: float = 0.02, scan_every: int = 5):
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self.scan_every = scan_every
        self.main_cpu_s = 0.0
        self._tick = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._counted: list[int] = [pid]  # the tree's processes whose memory counts, as last walked
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _walk(self) -> None:
        """The tree's processes now."""
        parent_of: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                    parent_of[int(entry)] = int(fields[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, grown = {self.pid}, True
        while grown:
            more = {pid for pid, ppid in parent_of.items() if ppid in tree} - tree
            tree |= more
            grown = bool(more)
        commands = {}
        for pid in tree:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    commands[pid] = fh.read()
            except OSError:
                continue
        # a child forked but not yet running its own program shares its parent's pages (copy-on-write): counting
        # them twice would report memory nobody uses (a spawned child passes through that state)
        # a sampler of its own (`OwnTreeMemory`) is a child of the process it measures: not counted
        me = os.getpid()
        self._counted = [pid for pid in tree if pid == self.pid or (
            pid != me and commands.get(pid) not in (b"", commands.get(parent_of.get(pid))))]

    def _tree_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            self.main_cpu_s = (int(fields[11]) + int(fields[12])) / self._tick  # its utime + stime
        except (OSError, IndexError, ValueError):
            pass
        total = 0
        for pid in self._counted:
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1]) * self._page
            except (OSError, IndexError, ValueError):
                continue
        return total / 2**20

    def _run(self) -> None:
        sample = 0
        while not self._stop.is_set():
            if sample % self.scan_every == 0:
                self._walk()
            sample += 1
            self.peak_mb = max(self.peak_mb, self._tree_mb())
            self._stop.wait(self.every_s)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


_STAGES = re.compile(r"detect: (.+)$", re.MULTILINE)


class OwnTreeMemory:
    """`TreeMemory` of this process and its children, sampled from a process of its own (not counted). A sampling
    thread in the measured process takes the GIL from it 50 times a second, each time for several file reads:
    `pipeline.detect(full=True)` at 1M orders ran 47.5 and 49.3 s beside one, 40.0 and 44.3 s without."""

    def __init__(self) -> None:
        code = ("import sys\nfrom bench.store import TreeMemory\nmemory = TreeMemory(int(sys.argv[1]))\n"
                "sys.stdout.write('ready\\n'); sys.stdout.flush()\nsys.stdin.read()\nprint(memory.stop())")
        self._proc = subprocess.Popen([sys.executable, "-c", code, str(os.getpid())], cwd=ROOT,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self._proc.stdout.readline()  # sampling from here on

    def stop(self) -> float:
        out, _ = self._proc.communicate("", timeout=60)
        return float(out.strip().splitlines()[-1])


def command(db: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 7200,
            code: Path = ROOT) -> dict:
    """`python -m tracker -v --db DB ARGS...` as a user runs it: wall seconds, CPU seconds (the process and its
    children), peak memory of the process tree, exit status, output, and the stage seconds `detect` logs. `code`:
    the checkout whose code runs (another one's, for `bench.ab`)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    paths = {} if code == ROOT else {"PYTHONPATH": str(code)}
    proc = subprocess.Popen([sys.executable, "-m", "tracker", "-v", "--db", str(db), *args], cwd=code,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **paths, **(env or {})})
    memory = TreeMemory(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        peak = memory.stop()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"tracker {' '.join(args)}: exit {proc.returncode}: {err.strip().splitlines()[-3:]}")
    stages: dict[str, float] = {}
    found = _STAGES.findall(err)
    if found:
        for part in found[-1].split(","):
            words = part.split()
            if len(words) >= 3 and words[-1] == "s":
                try:
                    stages[" ".join(words[:-2])] = float(words[-2])
                except ValueError:
                    continue
    return {"s": wall, "cpu_s": cpu, "peak_mb": peak, "out": out.strip(), "stages": stages,
            "main_cpu_s": memory.main_cpu_s, "children_cpu_s": max(cpu - memory.main_cpu_s, 0.0),
            # the core time the run left unused: what the machine's cores could have given it over its wall time
            "idle_core_s": max((os.cpu_count() or 1) * wall - cpu, 0.0)}


def fresh_store(n_orders: int, root: Path, path: Path | None = None) -> tuple[Path, dict[str, dict]]:
    """A new store with the generated world imported, kind by kind, with `tracker import`; and each import's
    figures (`command`)."""
    folder = world_files(n_orders, root)
    path = path or root / STORE
    remove_store(path)
    figures = {kind: command(path, "import", kind, str(folder / f"{kind}.csv")) for kind in KINDS}
    return path, figures


def store(n_orders: int, root: Path, name: str = STORE) -> Path:
    """The store an earlier area of this run left (the imported world, or it detected), else one built now."""
    path = root / name
    if path.exists():
        return path
    imported, _ = fresh_store(n_orders, root)
    if name == STORE:
        return imported
    copy_store(imported, path)
    command(path, "detect", "--full", "--as-of", AS_OF)
    return path
