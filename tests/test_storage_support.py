"""Real failing places for the storage tests: a tiny disk that fills up, a folder the system will not write.

As root (as in CI) these are real tmpfs mounts: root may write any file whatever its mode, so a chmod
proves nothing there. As another user, a chmod is the honest read-only folder, and the full disk is a
file-size limit (RLIMIT_FSIZE) on a child process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(folder: Path, options: str) -> bool:
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    return result.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def can_mount() -> bool:
    return os.geteuid() == 0 and Path("/proc/self/mountinfo").exists()


@contextlib.contextmanager
def tiny_disk(folder: Path, size_kib: int = 64) -> Iterator[Path]:
    """A tmpfs of `size_kib` mounted on `folder` (skips the test where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not can_mount() or not _mount(folder, f"size={size_kib}k,mode=0755"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield folder
    finally:
        _umount(folder)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of `folder` until about `leave_bytes` are free; return the filler file."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler


def make_read_only(folder: Path) -> None:
    """Make `folder` (a `tiny_disk` when root) refuse every write, root's included."""
    if os.geteuid() == 0:
        result = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")
        return
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


@contextlib.contextmanager
def read_only_place(folder: Path) -> Iterator[Path]:
    """A folder whose writes are refused: a tmpfs remounted read-only as root, a chmod otherwise.

    Fill it inside the block before calling make_read_only(folder).
    """
    if os.geteuid() == 0:
        with tiny_disk(folder, size_kib=4096):
            yield folder
    else:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            yield folder
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[Path]:
    """`path` refuses writes while its folder stays writable: a read-only bind mount of the one file as
    root, a chmod otherwise."""
    if os.geteuid() == 0:
        if not can_mount() or not _mount_bind_read_only(path):
            pytest.skip("a read-only bind mount needs root")
        try:
            yield path
        finally:
            _umount(path)
    else:
        path.chmod(0o444)
        try:
            yield path
        finally:
            path.chmod(0o644)


def _mount_bind_read_only(path: Path) -> bool:
    if subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode != 0:
        return False
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True).returncode != 0:
        _umount(path)
        return False
    return True
