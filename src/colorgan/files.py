"""Publishing a finished temporary file under its final name, with ordinary permissions."""

from __future__ import annotations

import os
from pathlib import Path


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
