"""Between a photo and the model: the small L* the model sees, and its answer joined to the full-size photo.

The model only sees a size×size thumbnail. Its ab is upsampled and joined to the photo's own
full-resolution L* in horizontal stripes, spread over a thread pool, so the memory used
beyond the input and output pixels is bounded by the stripe, not the photo.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import denormalize_ab, lab_to_srgb8, normalize_l, luminance as luminance_of

if TYPE_CHECKING:
    from .photo import Photo

# Pixels per stripe of the full-resolution pass, one stripe per thread at a time: 64 K pixels
# keep its float temporaries (~1 MB each) in cache, which is ~2x faster than 1 M-pixel stripes.
STRIPE_PIXELS = 1 << 16


def model_input(photo: Photo, size: int) -> torch.Tensor:
    """Normalized L* (1, size, size) of the photo resized as training resizes (bicubic, in sRGB).

    Pillow's two-pass resize runs its passes in the order that keeps the intermediate image
    small, so a 1 × 200,000 photo never becomes a size × 200,000 one (checked in
    tests/test_render.py).
    """
    image = photo.image
    color = image.convert(image.mode[:-1]) if photo.has_alpha else image
    small = color.resize((size, size), Image.Resampling.BICUBIC)
    return normalize_l(luminance_of(np.asarray(small)))[None]


def recombine(photo: Photo, ab_norm: torch.Tensor, *, luminance: torch.Tensor | None = None) -> Image.Image:
    """Join predicted normalized ab (2, S, S) to the photo's own L*: RGB (RGBA with alpha) at full size.

    ``luminance`` is the photo's L* (H, W) when already known (a photo colorized repeatedly);
    by default each stripe's is computed from its pixels.

    ab is upsampled bilinearly (as ``F.interpolate`` with ``align_corners=False``) stripe by
    stripe, so no full-size float array exists and the memory beyond the input and output
    pixels is bounded by the stripe and S×S, whatever the photo's aspect ratio. A photo at
    most S wide has ab resized to its width once (at most S×S); a wider one has each stripe's
    rows taken from the S×S ab, then resized to the width (never S × full width).
    """
    width, height = photo.image.size
    ab = denormalize_ab(ab_norm.float().cpu())
    narrow = width <= ab.shape[-1]
    if narrow:
        ab = F.interpolate(ab[None], size=(ab.shape[-2], width), mode="bilinear", align_corners=False)[0]
    rows = max(1, STRIPE_PIXELS // width)
    tops = range(0, height, rows)

    def stripe(top: int) -> Image.Image:
        bottom = min(height, top + rows)
        color, alpha = photo.pixels(top, bottom) if luminance is None or photo.has_alpha else (None, None)
        l_rows = luminance[top:bottom] if luminance is not None else luminance_of(color)
        ab_rows = _rows(ab, top, bottom, height)
        if not narrow:
            ab_rows = F.interpolate(ab_rows[None], size=(bottom - top, width), mode="bilinear", align_corners=False)[0]
        rgb = lab_to_srgb8(l_rows, ab_rows)
        return Image.fromarray(rgb if alpha is None else np.concatenate([rgb, alpha], axis=-1))

    out = Image.new("RGBA" if photo.has_alpha else "RGB", (width, height))
    with _one_thread_per_op() as workers, ThreadPoolExecutor(workers) as pool:
        for top, done in zip(tops, pool.map(stripe, tops), strict=True):
            out.paste(done, (0, top))
    return out


def _rows(ab: torch.Tensor, top: int, bottom: int, height: int) -> torch.Tensor:
    """Rows ``top:bottom`` of ``ab`` (C, S, W) resized bilinearly to ``height`` rows (align_corners=False)."""
    src = ab.shape[1]
    pos = ((torch.arange(top, bottom, dtype=torch.float32) + 0.5) * (src / height) - 0.5).clamp_(min=0.0)
    i0 = pos.long().clamp_(max=src - 1)
    i1 = (i0 + 1).clamp_(max=src - 1)
    return torch.lerp(ab.index_select(1, i0), ab.index_select(1, i1), (pos - i0)[:, None])


@contextlib.contextmanager
def _one_thread_per_op() -> Iterator[int]:
    """Make torch ops single-threaded for the block and yield the thread count it had.

    The stripes are spread over that many Python threads instead (torch releases the GIL):
    it scales the same on an idle machine, and avoids OpenMP's barrier after every small op,
    which stalls for whole scheduler slices when other processes share the cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)
