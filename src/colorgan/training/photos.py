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

import numpy as np
import torch

from colorgan.training.data import GRAY_MODES
from colorgan.errors import PhotoError
from colorgan.evaluation.metrics import colorfulness
from colorgan.photo import open_image

log = logging.getLogger(__name__)


@dataclass
class PhotoScan:
    """``found`` files, of which ``usable`` go to training; ``gray`` and ``unreadable`` hold (path, reason),
    ``dull`` the color photos left out by ``--min-colorfulness``."""

    found: int
    usable: list[Path]
    gray: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    dull: list[Path] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.gray) + len(self.unreadable) + len(self.dull)


def scan_photos(paths: list[Path], *, warn: bool = True, min_colorfulness: float = 0.0) -> PhotoScan:
    """Open each of ``paths``; those that cannot be a color photo are set aside with a warning each (``warn``).

    With ``min_colorfulness``, color photos whose colorfulness (Hasler & Süsstrunk, as
    ``colorgan evaluate`` scores it) is below it are left out too, without a warning each: dull
    photos (a gray street, a beige room) teach a colorizer that caution pays (BigColor and
    DDColor filter their training data the same way).
    """
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
    if min_colorfulness > 0:
        keep = [_colorfulness(path) >= min_colorfulness for path in scan.usable]
        scan.dull = [path for path, kept in zip(scan.usable, keep) if not kept]
        scan.usable = [path for path, kept in zip(scan.usable, keep) if kept]
        log.info("left out %d of %d photos with colorfulness below %g", len(scan.dull), len(keep), min_colorfulness)
    return scan


def _colorfulness(path: Path) -> float:
    """The photo's colorfulness (:func:`colorgan.evaluation.metrics.colorfulness`); an unreadable one counts as dull (0)."""
    try:
        with open_image(path, bomb_limit="warning") as img:
            rgb = np.asarray(img.convert("RGB"))
    except (PhotoError, OSError):
        return 0.0
    return float(colorfulness(rgb[None])[0])


PRIOR_PHOTOS = 2000
PRIOR_SIZE = 32


def photos_color_prior(paths: list[Path]) -> torch.Tensor:
    """How often each color bin occurs in the training photos (:func:`~colorgan.networks.color_classes.color_prior`),
    from up to :data:`PRIOR_PHOTOS` of them spread evenly over ``paths``, each at :data:`PRIOR_SIZE` px:
    what a color head's loss is rebalanced by (the same photos every run, so a resume computes the same)."""
    from colorgan.training.data import load_rgb
    from colorgan.networks.color_classes import color_prior
    from colorgan.training.lab import rgb_to_model_space, uint8_to_unit

    step = max(1, len(paths) // PRIOR_PHOTOS)
    counts = None
    for path in paths[::step][:PRIOR_PHOTOS]:
        try:
            rgb = load_rgb(path, PRIOR_SIZE)
        except (PhotoError, OSError, ValueError):  # unreadable or gray: the loop skips them too
            continue
        _, ab = rgb_to_model_space(uint8_to_unit(torch.from_numpy(rgb).permute(2, 0, 1)[None]))
        found = color_prior(ab)
        counts = found if counts is None else counts + found
    if counts is None:
        raise PhotoError(str(paths[0].parent), "no readable photo to learn the colors' distribution from")
    return counts
