"""Private scratch folders of a run (the child readers' files, the facts handed to the writing child, an import's
parts), named after the process that made them, and the sweep of those a killed run left behind.

A run removes its folder when it ends, failing or not; a run killed outright (SIGKILL, a power cut) cannot. Its
folder names its process: `sweep` removes, from the system's temporary folder, the folders of this kind that this
user owns and whose process no longer runs. It is called where a run that makes such folders starts, so what a
killed run left (hundreds of MB at a million orders) goes with the next run. Standard library only: the lean child
processes import it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time

_PREFIX = "tracker-"
KINDS = ("frame", "facts", "flags", "import")
_NAME = re.compile(rf"^{_PREFIX}(?:{'|'.join(KINDS)})-(\d+)-")  # as `folder` names them: kind, then process id
MIN_AGE_S = 60.0  # a folder younger than this is left alone, whoever made it


def folder(kind: str) -> str:
    """A new private folder (mode 0700) for this process's scratch files of `kind` (one of `KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown scratch kind {kind!r}")
    return tempfile.mkdtemp(prefix=f"{_PREFIX}{kind}-{os.getpid()}-")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError), or no way to tell: taken as running
        return True
    return True


def sweep(root: str | None = None, now: float | None = None) -> list[str]:
    """Remove the scratch folders a killed run left in `root` (the system's temporary folder): named as `folder`
    names them, directories (not links), owned by this user, older than `MIN_AGE_S`, their process gone. Returns
    the paths removed; a folder that cannot be removed is left as it is."""
    root = root or tempfile.gettempdir()
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for name in names:
        found = _NAME.match(name)
        if found is None:
            continue
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid):
            continue
        if now - info.st_mtime < MIN_AGE_S or _running(int(found.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed
