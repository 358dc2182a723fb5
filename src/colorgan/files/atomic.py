"""Writing so that no reader ever sees half a file: everything colorgan writes for a user (photos,
models, reports, CSVs, grids, caches) goes through :func:`atomic_output`, a temporary file beside
its target, renamed over it only once complete, with the permissions a plain ``open()`` would have
given it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

_DEFAULT_MODE = 0o666 & ~_umask()

def publish(tmp: str | Path, path: str | Path) -> None:
    """Atomically rename ``tmp`` to ``path`` and give it the mode a plain ``open()`` would.

    Temporary files from ``mkstemp`` and from safetensors are private (0600); a user's
    colorized photo or shared model must not be.
    """
    os.chmod(tmp, _DEFAULT_MODE)
    os.replace(tmp, path)

# The name of a temporary :func:`atomic_output` makes for NAME (``mkstemp``: 8 random characters);
# a run killed with SIGKILL leaves it behind, and the next run can recognize it by this pattern.
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")

@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    An interrupted write never leaves a half-written ``path`` behind (at worst a hidden temp).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

def write_report(path: Path, report: Any) -> None:
    """Write a JSON report atomically, indented, UTF-8 as is (photo names in any script stay readable)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
