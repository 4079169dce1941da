"""Whether a process has ended, asked of the system: a `multiprocessing` process object can say it is alive
after its process ended, when another thread (a pool's manager) collected its exit first."""

from __future__ import annotations

import time


def ended(pid: int, timeout: float = 20.0) -> bool:
    """True once the process `pid` is gone or a zombie (ended, not yet collected), within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
