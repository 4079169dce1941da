"""How the `tracker` program ends (`tracker.cli.app._end`): without the interpreter's teardown, but with nothing
lost. Each command runs as a user runs it, a fresh `python -m tracker` process whose output is a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VALID = "RR123456785CN"  # an S10 number whose check digit holds
# output to a pipe buffered, as it is for a user (unless the environment asks otherwise)
BUFFERED = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def _tracker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracker", *args], capture_output=True, text=True, cwd=ROOT,
                          check=False, env=BUFFERED)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "tracker.db"
    assert _tracker("--db", str(path), "init").returncode == 0
    return path


def test_every_line_of_a_long_output_reaches_the_pipe() -> None:
    """Output to a pipe is buffered: the buffer's last part is written before the process ends."""
    numbers = [VALID] * 3000
    proc = _tracker("validate", "--format", "csv", *numbers)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert len(rows) == 1 + len(numbers)  # the header, then one row per number
    assert rows[-1].startswith(VALID)


def test_a_writing_command_leaves_its_store_closed(store: Path) -> None:
    """The store the command opened is closed with it: its write-ahead log is checkpointed and removed, as a
    connection's close does, not left for the next process to recover."""
    proc = _tracker("--db", str(store), "detect", "--as-of", "2026-11-01T00:00:00Z")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("examined 0 orders")
    assert not Path(f"{store}-wal").exists()
    assert _tracker("--db", str(store), "detect", "--as-of", "2026-11-01T00:00:00Z").returncode == 0


def test_exit_handlers_run_and_the_status_is_kept(tmp_path: Path) -> None:
    """What a program registers to run at exit still runs, with a success and with bad input (exit 2)."""
    marker = tmp_path / "ran"
    script = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text(sys.argv[1]))\n"
        "from tracker.cli import main\n"
        "main(sys.argv[2:])\n"
    )
    for label, args, status in (("ok", ["validate", VALID], 0), ("bad", ["validate", "RR123456784CN"], 2)):
        proc = subprocess.run([sys.executable, "-c", script, label, *args], capture_output=True, text=True,
                              cwd=ROOT, check=False, env=BUFFERED)
        assert proc.returncode == status, proc.stderr
        assert marker.read_text() == label
        assert "Traceback" not in proc.stderr


def test_a_thread_still_running_is_waited_for(tmp_path: Path) -> None:
    """Where a thread of the program still runs, the process ends the usual way: the interpreter waits for it."""
    marker = tmp_path / "thread"
    script = (
        "import pathlib, sys, threading, time\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        f"    pathlib.Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=late).start()\n"
        "from tracker.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, "validate", VALID], capture_output=True, text=True,
                          cwd=ROOT, check=False, env=BUFFERED)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "done"
