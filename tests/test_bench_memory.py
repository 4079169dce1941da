"""The bench's peak memory of a process tree (`bench.store.TreeMemory`) counts each process's own memory: a child
running its own program adds its memory, a forked child that has not started its own program (it shares its
parent's pages) adds none."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from bench.store import TreeMemory

ALLOCATE = "block = bytearray(300 * 2**20)\nblock[::4096] = b'x' * len(block[::4096])\n"


def _peak(script: str) -> float:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    memory = TreeMemory(proc.pid, every_s=0.01)
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        peak = memory.stop()
    return peak


def test_a_child_running_its_own_program_counts():
    peak = _peak(ALLOCATE + textwrap.dedent("""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.0)"], check=True)
    """))
    assert peak > 480  # 300 MB here and 200 MB in the child


def test_a_forked_child_sharing_its_parents_pages_does_not_count_twice():
    peak = _peak(ALLOCATE + textwrap.dedent("""
        import os, time
        pid = os.fork()
        if pid == 0:
            time.sleep(1.0)
            os._exit(0)
        os.waitpid(pid, 0)
    """))
    assert 290 < peak < 480  # the parent's 300 MB once, not twice


SPIN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end:\n    pass\n"


def test_the_cpu_of_the_command_is_told_from_its_childrens():
    """A parent that spins 0.6 s of CPU, then waits while a child spins 0.9 s: the parent's share is its own."""
    script = SPIN.format(s=0.6) + textwrap.dedent(f"""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {SPIN.format(s=0.9)!r}], check=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    memory = TreeMemory(proc.pid, every_s=0.01)
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        memory.stop()
    assert 0.55 <= memory.main_cpu_s < 0.85  # its own 0.6 s (and its start), not the child's 0.9 s


def test_a_sampler_of_its_own_counts_this_process_and_its_children_not_itself():
    """`OwnTreeMemory` samples from a child process of the measured one, so no thread of the measured process
    samples; it counts the measured process and its other children, and not its own memory."""
    import os

    from bench.store import OwnTreeMemory

    with open(f"/proc/{os.getpid()}/statm") as fh:
        mine = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    threads = set(os.listdir(f"/proc/{os.getpid()}/task"))
    memory = OwnTreeMemory()
    # no sampling thread here (a thread of the test run that ends meanwhile is no concern: none may start)
    assert not set(os.listdir(f"/proc/{os.getpid()}/task")) - threads
    child = subprocess.run([sys.executable, "-c", ALLOCATE + "import time; time.sleep(0.5)"], check=True)
    peak = memory.stop()
    assert child.returncode == 0
    assert mine + 290 < peak < mine + 300 + 200  # this process and the child's 300 MB


def test_a_sampler_in_a_child_of_the_measured_process_leaves_itself_out():
    script = textwrap.dedent("""
        import os, time
        from bench.store import TreeMemory
        memory = TreeMemory(os.getppid(), every_s=0.01)
        time.sleep(0.2)
        memory.stop()
        print(os.getpid(), os.getppid(), *memory._counted)
    """)
    me, parent, *counted = map(int, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                                   check=True).stdout.split())
    assert parent in counted and me not in counted
