"""Photo folders as training data: discovery, selection, decoding, and the epoch sampler.

A dataset item is a resized uint8 RGB tensor; the conversion to L*a*b* happens on the
whole batch in the training loop (on the GPU when there is one), not per image here.
All randomness (order, flips and crops) comes from :class:`EpochSampler`, seeded by
``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, Sampler

from colorgan.color import is_gray
from colorgan.errors import PhotoError, UserError
from colorgan.files.discovery import top_folder
from colorgan.photo import open_image

log = logging.getLogger(__name__)

# Pillow modes of gray files: refused before decoding them.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def folder_balance_weights(paths: Sequence[Path], root: Path, exponent: float) -> torch.Tensor:
    """Sampling weights that even out the top-level folders of ``root``.

    A photo in a folder of ``n`` photos gets weight ``n ** -exponent``, so a folder's share of
    the draws grows as ``n ** (1 - exponent)``: 0 keeps the natural mix, 1 draws every folder
    equally often, 0.5 (square-root balancing) lifts small folders without repeating their
    photos dozens of times per epoch. Photos directly in ``root`` form one group.
    """
    groups = [top_folder(p.relative_to(root)) if p.is_relative_to(root) else str(p.parent) for p in paths]
    counts = Counter(groups)
    return torch.tensor([counts[g] ** -exponent for g in groups], dtype=torch.float64)


def load_rgb(path: Path, size: int, crop: tuple[float, float, float] | None = None) -> np.ndarray:
    """Decode a photo to a ``size x size`` uint8 RGB array; raises ValueError for gray photos and
    :class:`PhotoError` for unreadable ones (and for photos over Pillow's bomb warning threshold).

    Without ``crop`` the whole photo is resized to the square (the paper's recipe). With
    ``crop = (side, x, y)`` a square of ``side`` times the short side is cut first, at the
    relative position ``(x, y)`` in [0, 1] of the room left, so the network sees objects at
    several scales and never a squashed aspect ratio. JPEGs are decoded at reduced scale
    when the photo is much larger than needed (``draft``), several times cheaper.
    """
    with open_image(path, bomb_limit="warning") as img:
        mode = img.mode
        square = None if mode in GRAY_MODES else _square_rgb(img, size, crop)
    if square is None:  # raised out here: inside open_image a ValueError reads as a damaged file
        raise ValueError(f"grayscale photo ({mode})")
    rgb = np.array(square)  # a writable copy: torch.from_numpy needs one
    if is_gray(rgb):
        raise ValueError("grayscale photo (no color to learn)")
    return rgb


def _square_rgb(img: Image.Image, size: int, crop: tuple[float, float, float] | None) -> Image.Image:
    """The decoding half of :func:`load_rgb`: upright RGB, cropped as ``crop`` says, resized to ``size``."""
    need = size if crop is None else math.ceil(size / crop[0])
    img.draft("RGB", (need, need))
    img = ImageOps.exif_transpose(img).convert("RGB")
    if crop is not None:
        side = max(1, round(min(img.size) * crop[0]))
        left, top = round((img.width - side) * crop[1]), round((img.height - side) * crop[2])
        img = img.crop((left, top, left + side, top + side))
    return img.resize((size, size), Image.Resampling.BICUBIC)


class PhotoDataset(Dataset):
    """Square uint8 RGB views of photos; index with the keys of :class:`EpochSampler`.

    ``crop_scale`` (in (0, 1]) turns on random square crops whose side is between that
    fraction and all of the photo's short side; None resizes whole photos.
    A photo that cannot be used is returned as a skip record instead of raising, so one
    bad file never stops a run; :func:`collate` drops it and reports it.
    """

    def __init__(self, paths: Sequence[Path], *, size: int, crop_scale: float | None = None) -> None:
        if crop_scale is not None and not 0 < crop_scale <= 1:
            raise UserError(f"crop scale must be in (0, 1], got {crop_scale}")
        self.paths = list(paths)
        self.size = size
        self.crop_scale = crop_scale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple) -> dict[str, Any]:
        """``key`` is an index, or ``(index, flip)``, or ``(index, flip, (u, x, y))`` with
        three uniform numbers in [0, 1) that place the random crop."""
        key = key if isinstance(key, tuple) else (key,)
        index, flip, draws = key[0], len(key) > 1 and key[1], key[2] if len(key) > 2 else None
        path = self.paths[index]
        crop = None
        if self.crop_scale is not None and draws is not None:
            u, x, y = draws
            crop = (self.crop_scale + (1.0 - self.crop_scale) * u, x, y)
        try:
            rgb = load_rgb(path, self.size, crop)
        except PhotoError as exc:
            return {"skip": str(path), "reason": exc.reason, "gray": False}
        except ValueError as exc:
            return {"skip": str(path), "reason": str(exc), "gray": str(exc).startswith("grayscale")}
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)
        return {"rgb": tensor.flip(-1) if flip else tensor.contiguous()}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack usable photos into one uint8 batch ``(B, 3, S, S)``; keep skip records aside."""
    rgb = [it["rgb"] for it in items if "rgb" in it]
    skipped = [it for it in items if "skip" in it]
    batch = torch.stack(rgb) if rgb else torch.empty(0, dtype=torch.uint8)
    return {"rgb": batch, "skipped": skipped}


class EpochSampler(Sampler):
    """Deterministic per-epoch order, flips and crop draws: ``(seed, epoch)`` fixes all three.

    Yields ``(index, flip, (u, x, y))``. With ``weights`` an epoch is ``n`` draws with
    replacement in proportion to them (see :func:`folder_balance_weights`), else a permutation.
    ``set_position(epoch, start)`` skips the first ``start`` items, which is how a run
    resumed from a mid-epoch checkpoint continues exactly where it stopped. (It is not
    called ``set_epoch`` on purpose: accelerate calls that with its own epoch counter,
    which restarts at 0 in a resumed run.)
    """

    def __init__(
        self, n: int, *, seed: int, shuffle: bool = True, flip: bool = True, weights: torch.Tensor | None = None
    ) -> None:
        if weights is not None and len(weights) != n:
            raise ValueError(f"{len(weights)} sampling weights for {n} photos")
        self.n, self.seed, self.shuffle, self.flip, self.weights = n, seed, shuffle, flip, weights
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.n - self.start

    def __iter__(self) -> Iterator[tuple[int, bool, tuple[float, float, float]]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        else:
            order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        flips = torch.rand(self.n, generator=g) < 0.5 if self.flip else torch.zeros(self.n, dtype=torch.bool)
        crops = torch.rand(self.n, 3, generator=g, dtype=torch.float64).tolist()
        for i in range(self.start, self.n):
            yield int(order[i]), bool(flips[i]), tuple(crops[i])
