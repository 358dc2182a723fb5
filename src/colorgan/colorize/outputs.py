"""The place a folder job writes: made and proved writable before the first photo, held by one job
at a time (a lock file inside it), and cleared of the temporaries a killed job left.

Every output itself is written by :func:`colorgan.files.atomic.atomic_output` (a temporary renamed once
complete), so a kill at any moment leaves outputs whole or absent, and a hidden temporary at most.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from colorgan.colorize.plan import names_a_file
from colorgan.errors import UserError
from colorgan.files.atomic import TEMP_NAME

# A temporary of a planned output older than this (seconds) was left by a killed run, not one writing now.
STALE_TEMP_AGE = 300
LOCK_NAME = ".colorgan-lock"


def lock_path(out: Path) -> Path:
    """The lock file of an output folder (of one output file, for ``-o photo.png``): hidden, inside
    that folder (beside that file), so every job that writes there finds it, whatever its temp
    folder; removed when the job ends."""
    return out.parent / f".{out.name}{LOCK_NAME}" if names_a_file(out) else out / LOCK_NAME


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Make the output folder, prove it writable, and hold it for this job: a second job on the same
    folder is refused at once, instead of both doing all the work. The OS drops the lock when the
    process ends, even by kill -9; the next job on the folder then takes over the file and removes it."""
    path = lock_path(out)
    folder = path.parent
    made = _missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    try:
        handle = _locked(path, out)
        try:
            os.ftruncate(handle.fileno(), 0)
            handle.write(f"{os.getpid()}\n".encode())  # a byte on disk: a full disk is found before the first photo
            os.fsync(handle.fileno())
        except OSError as exc:
            handle.close()
            path.unlink(missing_ok=True)
            raise UserError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None
    except UserError:
        for made_folder in made:  # a refused job leaves no folder of its own behind
            with contextlib.suppress(OSError):
                made_folder.rmdir()
        raise
    with handle:
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still locked: a waiting job never takes a removed file


def _locked(path: Path, out: Path) -> BinaryIO:
    """The lock file, opened unbuffered (nothing is left to write when it closes) and locked."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; jobs on one folder are not kept apart
        fcntl = None
    while True:
        try:
            handle = path.open("a+b", buffering=0)
        except OSError as exc:
            raise UserError(f"cannot write to the output folder {path.parent}: {exc.strerror or exc}") from None
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if path.exists() and os.path.samestat(os.fstat(handle.fileno()), path.stat()):
                return handle  # (else the job before removed the file between our open and our lock: open it anew)
        except BlockingIOError:
            handle.close()
            raise UserError(f"another colorgan job is writing to {out}; wait for it to finish or choose another -o") from None
        handle.close()


def _missing_folders(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would make, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_stale_temps(outputs: Sequence[Path], *, older_than: float = STALE_TEMP_AGE) -> int:
    """Remove the temporaries :func:`files.atomic_output` made for these outputs and a killed run left
    behind (SIGKILL skips its cleanup); returns how many.

    Only names of exactly that pattern, for exactly these outputs, are touched, and only once they are
    ``older_than`` seconds old, so a job writing the same folder right now keeps its files.
    """
    wanted: dict[Path, set[str]] = defaultdict(set)
    for output in outputs:
        wanted[output.parent].add(output.name)
    removed, now = 0, time.time()
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = TEMP_NAME.fullmatch(entry.name)
            if match and match["name"] in names and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                        os.unlink(entry.path)
                        removed += 1
    return removed
