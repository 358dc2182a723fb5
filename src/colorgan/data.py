"""Photo folders as training data: discovery, selection, decoding, and the epoch sampler.

A dataset item is a resized uint8 RGB tensor; the conversion to L*a*b* happens on the
whole batch in the training loop (on the GPU when there is one), not per image here.
All randomness (order and flips) comes from :class:`EpochSampler`, seeded by
``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from .errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
# Mean per-pixel channel spread (max - min, 0-255) below which an RGB file is a gray photo:
# JPEG noise on a gray photo stays well under it, any real tint (sepia included) is above.
GRAY_SPREAD = 2.0


def find_images(
    root: str | Path,
    *,
    first: int | None = None,
    last: int | None = None,
    file_list: str | Path | None = None,
) -> list[Path]:
    """Photos under ``root`` (recursive, sorted by path), optionally the first N / last M or a listed subset.

    ``file_list`` is a text file with one path per line, absolute or relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"photo folder not found: {root}")
    if file_list is not None:
        paths = _read_file_list(Path(file_list), root)
    else:
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if first is not None and last is not None:
        raise UserError("--first and --last cannot be combined")
    if first is not None:
        paths = paths[: _positive(first, "--first")]
    if last is not None:
        paths = paths[-_positive(last, "--last") :]
    if not paths:
        raise UserError(f"no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {root}")
    return paths


def _positive(n: int, name: str) -> int:
    if n <= 0:
        raise UserError(f"{name} must be a positive number, got {n}")
    return n


def _read_file_list(file_list: Path, root: Path) -> list[Path]:
    try:
        lines = file_list.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read file list {file_list}: {exc}") from None
    paths = [Path(s.strip()) for s in lines if s.strip() and not s.lstrip().startswith("#")]
    paths = [p if p.is_absolute() else root / p for p in paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{file_list} lists {len(missing)} missing files, e.g. {missing[0]}")
    return paths


def load_rgb(path: Path, size: int) -> np.ndarray:
    """Decode a photo to a ``size x size`` uint8 RGB array; raises ValueError for gray photos.

    JPEGs are decoded at reduced scale when the photo is much larger than ``size``
    (``draft``), which makes decoding several times cheaper at no visible cost.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            if img.mode in GRAY_MODES:
                raise ValueError(f"grayscale photo ({img.mode})")
            img.draft("RGB", (size, size))
            img = ImageOps.exif_transpose(img).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    rgb = np.array(img)  # a writable copy: torch.from_numpy needs one
    if is_gray(rgb):
        raise ValueError("grayscale photo (no color to learn)")
    return rgb


def is_gray(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 RGB photo carries no color (mean channel spread < GRAY_SPREAD)."""
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return bool(spread.mean() < GRAY_SPREAD)


class PhotoDataset(Dataset):
    """Square uint8 RGB crops of photos; index with ``(i, flip)`` pairs from :class:`EpochSampler`.

    A photo that cannot be used is returned as a skip record instead of raising, so one
    bad file never stops a run; :func:`collate` drops it and reports it.
    """

    def __init__(self, paths: Sequence[Path], *, size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, bool]) -> dict[str, Any]:
        index, flip = key if isinstance(key, tuple) else (key, False)
        path = self.paths[index]
        try:
            rgb = load_rgb(path, self.size)
        except ValueError as exc:
            return {"skip": str(path), "reason": str(exc), "gray": str(exc).startswith("grayscale")}
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, SyntaxError) as exc:
            return {"skip": str(path), "reason": f"cannot decode ({type(exc).__name__}: {exc})", "gray": False}
        tensor = torch.from_numpy(rgb).permute(2, 0, 1)
        return {"rgb": tensor.flip(-1) if flip else tensor.contiguous()}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack usable photos into one uint8 batch ``(B, 3, S, S)``; keep skip records aside."""
    rgb = [it["rgb"] for it in items if "rgb" in it]
    skipped = [it for it in items if "skip" in it]
    batch = torch.stack(rgb) if rgb else torch.empty(0, dtype=torch.uint8)
    return {"rgb": batch, "skipped": skipped}


class EpochSampler(Sampler):
    """Deterministic per-epoch order and flips: ``(seed, epoch)`` fixes both.

    ``set_position(epoch, start)`` skips the first ``start`` items, which is how a run
    resumed from a mid-epoch checkpoint continues exactly where it stopped. (It is not
    called ``set_epoch`` on purpose: accelerate calls that with its own epoch counter,
    which restarts at 0 in a resumed run.)
    """

    def __init__(self, n: int, *, seed: int, shuffle: bool = True, flip: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.flip = n, seed, shuffle, flip
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.n - self.start

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        flips = torch.rand(self.n, generator=g) < 0.5 if self.flip else torch.zeros(self.n, dtype=torch.bool)
        for i in range(self.start, self.n):
            yield int(order[i]), bool(flips[i])
