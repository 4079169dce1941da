"""`make test` and .ci/run wait for another package install's dpkg lock instead of failing on it.

Run against a stand-in apt-get (it records its arguments) on a PATH without chromium, so the install branch
runs exactly as on a fresh machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAIT = "-o DPkg::Lock::Timeout=600"


def fake_bin(tmp_path: Path, *real: str) -> tuple[Path, Path]:
    """A PATH folder with a recording apt-get (and a recording make) plus links to the `real` tools."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "calls.log"
    for name in ("apt-get", "make"):
        script = folder / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        script.chmod(0o755)
    for tool in real:
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    return folder, log


@pytest.mark.skipif(os.geteuid() != 0, reason="the Makefile installs chromium only as root")
def test_make_browser_waits_for_the_package_lock(tmp_path):
    folder, log = fake_bin(tmp_path, "id")
    make = shutil.which("make")
    result = subprocess.run([make, "-s", "-C", str(ROOT), "browser"], env={"PATH": str(folder)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert [c.split(WAIT)[1].split()[0] for c in calls] == ["update", "install"], calls
    assert all(c.startswith(f"apt-get {WAIT} ") for c in calls), calls


def test_ci_run_waits_for_the_package_lock(tmp_path):
    folder, log = fake_bin(tmp_path, "bash", "dirname")
    result = subprocess.run([str(ROOT / ".ci" / "run")], env={"PATH": str(folder)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    apt = [c for c in calls if c.startswith("apt-get")]
    assert len(apt) == 2 and all(c.startswith(f"apt-get {WAIT} ") for c in apt), calls
    assert calls[-1] == "make test"
