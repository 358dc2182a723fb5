"""The training photos a run finds, and which of them it can use: counted once, before the first step.

Every file is opened up front (its header only: cheap next to an epoch) so that a file that
is no photo at all, or a photo stored as grayscale, is reported once with its reason and
left out of the sampler, whichever batch it would have fallen into. What only decoding can
show (a truncated file, an RGB photo with no color) is still skipped and counted by the
training loop when it gets there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..data import GRAY_MODES
from ..errors import PhotoError
from ..photo import open_image

log = logging.getLogger(__name__)


@dataclass
class PhotoScan:
    """``found`` files, of which ``usable`` go to training; ``gray`` and ``unreadable`` hold (path, reason)."""

    found: int
    usable: list[Path]
    gray: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.gray) + len(self.unreadable)


def scan_photos(paths: list[Path], *, warn: bool = True) -> PhotoScan:
    """Open each of ``paths``; those that cannot be a color photo are set aside with a warning each (``warn``)."""
    scan = PhotoScan(found=len(paths), usable=[])
    for path in paths:
        try:
            with open_image(path, bomb_limit="warning") as img:
                mode = img.mode
        except PhotoError as exc:
            scan.unreadable.append((path, exc.reason))
            continue
        if mode in GRAY_MODES:
            scan.gray.append((path, f"grayscale photo ({mode})"))
            continue
        scan.usable.append(path)
    if warn:
        for path, reason in scan.gray + scan.unreadable:
            log.warning("skipping %s: %s", path, reason)
    return scan


def epoch_plan(usable: int, *, batch_size: int, processes: int, drop_last: bool) -> tuple[int, int]:
    """``(photos an epoch draws, photos that sit out)``: with ``drop_last`` the photos past the last
    full batch of every process (fewer than one step's worth, different ones each epoch) sit out."""
    per_step = batch_size * processes
    drawn = usable // per_step * per_step if drop_last else usable
    return drawn, usable - drawn
