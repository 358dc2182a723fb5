"""The API's private temporary folder, and the clean-up of those left by servers that were killed.

A server removes its folder when it stops, but not when it is killed (kill -9, a crash, power
loss): the upload in flight then stays on disk. So each folder's name records who made it,
``colorgan-serve-<pid>@<host>-<random>`` (``host``: a short hash of the machine's name), and a
server that starts removes the folders of this machine whose process is gone. Folders of
another machine sharing the temporary folder, of a live process, of another user or with any
other name are left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "colorgan-serve-"
_NAME = re.compile(rf"^{PREFIX}(\d+)@([0-9a-f]{{8}})-")


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def make_workdir(root: str | os.PathLike | None = None) -> Path:
    """A new private folder (mode 700) under ``root`` (default: the temporary folder), named for this process."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}@{_host_tag()}-", dir=root))


def remove_stale_workdirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the folders under ``root`` that servers of this machine left when they died; returns them."""
    base = Path(tempfile.gettempdir() if root is None else root)
    host = _host_tag()
    removed = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _NAME.match(path.name)
        if match is None or match.group(2) != host or _is_alive(int(match.group(1))):
            continue
        try:
            if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    if removed:
        log.info("removed %d temporary folder(s) left by colorgan servers that were killed", len(removed))
    return removed


def _is_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    if pid <= 0:
        return True  # not a real process id: never ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
