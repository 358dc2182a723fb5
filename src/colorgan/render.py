"""Between a photo and the model: the small L* the model sees, and its answer joined to the full-size photo.

The model only sees a size×size thumbnail. Its ab is upsampled and joined to the photo's own
full-resolution L* in horizontal stripes, spread over the process's compute pool
(:func:`colorgan.workers.compute_pool`; NumPy releases the GIL),
so the memory used beyond the input and output pixels is bounded by the stripe, not the photo.

Plain bilinear upsampling smears each model pixel's color over (photo / size) pixels, so on a
big photo a red motorcycle tints the floor beside it. Given the model's own input L* as a
guide, :func:`recombine` instead upsamples the coefficients of a guided filter (He et al.
2013, in its fast form of He & Sun 2015): locally ab ≈ A·f(L*) + B, fitted on the model's grid
and applied to the photo's full-resolution f(L*), so color changes where the photo's lightness
changes, at the photo's own resolution, and stays smooth where the lightness is flat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from colorgan.workers import compute_pool
from colorgan.color import denormalize_ab, lightness_f, luminance as luminance_of, luminance_f, normalize_l, to_srgb

if TYPE_CHECKING:
    from colorgan.photo import Photo

# Pixels per stripe of the full-resolution pass, one stripe per thread at a time: its float
# temporaries (256 KB each) stay in the cache, and each stripe's ~40 NumPy calls are few enough
# for their overhead not to show (12 MP photos, issue 31: 16 K-pixel stripes take ~20 % longer).
STRIPE_PIXELS = 1 << 16
# ab is resized to the photo's width once, before the stripes, when that is at most this many
# values per channel (16 MB): every photo up to 32,000 px wide at the usual render sizes.
COLUMNS_FIRST_MAX = 1 << 22
# Pillow first shrinks by a whole factor (box filter) while the photo is over this many times the
# target size, then resamples bicubically: Pillow's docs call a gap of 3 indistinguishable from a
# plain bicubic resize, and a 12 MP photo becomes the model's input ~10x faster.
REDUCING_GAP = 3.0
# The guided filter's window radius on the model's grid and its regularization, in f(L*) units
# ((L* + 16) / 116): a window whose lightness varies by much less than ~7 L* keeps the smooth
# model colors; across a stronger step, ab follows the step. Chosen on training photos
# (tools/tune_upsampling.py), not on the validation set.
GUIDE_RADIUS = 2
GUIDE_EPS = (7.0 / 116.0) ** 2
UPSAMPLINGS = ("guided", "bilinear")


def model_input(photo: Photo, size: int) -> np.ndarray:
    """Normalized L* (1, size, size) float32 of the photo resized as training resizes (bicubic, in sRGB).

    Pillow's two-pass resize runs its passes in the order that keeps the intermediate image
    small, so a 1 × 200,000 photo never becomes a size × 200,000 one (checked in
    tests/test_render.py).
    """
    image = photo.image
    color = image.convert(image.mode[:-1]) if photo.has_alpha else image
    # Pillow's box reduction has no 16-bit gray mode: such scans are resampled in one pass (still bounded memory).
    gap = REDUCING_GAP if color.mode in ("L", "RGB") else None
    small = color.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=gap)
    return normalize_l(luminance_of(np.asarray(small)))[None].astype(np.float32)


def recombine(photo: Photo, ab_norm: np.ndarray, *, luminance: np.ndarray | None = None,
              bits: int = 8, guide: np.ndarray | None = None) -> Image.Image | np.ndarray:
    """Join predicted normalized ab (2, S, S) to the photo's own L*: RGB (RGBA with alpha) at full size.

    ``bits=8`` gives a PIL image; ``bits=16`` a uint16 array (H, W, 3 or 4), for 16-bit scans.
    ``luminance`` is the photo's L* (H, W) when already known (a photo colorized repeatedly);
    by default each stripe's is computed from its pixels. ``guide`` is the model's input
    ((1, S, S) normalized L*, from :func:`model_input`): with it, the colors follow the photo's
    full-resolution edges (see the module docstring); without it, ab is upsampled bilinearly.

    The upsampling (bilinear, as torch's ``F.interpolate`` with ``align_corners=False``) runs
    stripe by stripe, so no full-size float array exists and the memory beyond the input and
    output pixels is bounded by the stripe and S×S, whatever the photo's aspect ratio. Each
    stripe lies between the same two rows of the model's grid, so its rows are one blend of two
    full-width rows: taken from ab resized to the photo's width once (at most S × width), or,
    for a photo wider than that allows, resized from the S×S ab for each stripe.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    width, height = photo.image.size
    maps = denormalize_ab(np.asarray(ab_norm, dtype=np.float32))
    guided = guide is not None
    if guided:  # what is upsampled are the filter's coefficients: A (2 maps) then B (2 maps)
        maps = guided_coefficients(np.asarray(guide, np.float32).reshape(maps.shape[1:]), maps)
    source_row = _full_width_rows(maps, width)
    first, second, weights = _bilinear(maps.shape[1], height)
    # The 8-bit image is not filled first (color None): every stripe is pasted into it.
    image = Image.new("RGBA" if photo.has_alpha else "RGB", (width, height), None) if bits == 8 else None
    out = np.empty((height, width, 4 if photo.has_alpha else 3), np.uint16) if bits == 16 else None

    def stripe(rows: tuple[int, int]) -> None:
        top, bottom = rows
        color, alpha = photo.pixels(top, bottom) if luminance is None or photo.has_alpha else (None, None)
        y, fy = luminance_f(color) if luminance is None else lightness_f(luminance[top:bottom])
        low = source_row(first[top])[:, None, :]
        ab_rows = (source_row(second[top])[:, None, :] - low) * weights[top:bottom, None] + low
        if guided:
            ab_rows = ab_rows[:2] * fy + ab_rows[2:]
        if image is not None:  # interleaved by Pillow, a stripe at a time while it is in the cache
            planes = [*to_srgb(y, fy, ab_rows, planar=True), *([alpha[..., 0]] if alpha is not None else [])]
            image.paste(Image.merge(image.mode, [Image.fromarray(plane) for plane in planes]), (0, top))
        else:
            out[top:bottom, :, :3] = to_srgb(y, fy, ab_rows, bits=16)
            if alpha is not None:
                out[top:bottom, :, 3:] = alpha.astype(np.uint16) * 257

    list(compute_pool().map(stripe, _stripes(first, max(1, STRIPE_PIXELS // width))))
    return image if image is not None else out


def _full_width_rows(maps: np.ndarray, width: int) -> Callable[[int], np.ndarray]:
    """Row ``j`` of ``maps`` (C, S, S) resized to ``width`` (C, width): from one resize of all of
    ``maps`` when that has at most :data:`COLUMNS_FIRST_MAX` values per channel, else on demand."""
    columns = _bilinear(maps.shape[-1], width)
    if maps.shape[1] * width <= COLUMNS_FIRST_MAX:
        wide = _lerp(maps, columns, axis=2)
        return lambda j: wide[:, j]
    return lambda j: _lerp(maps[:, j], columns, axis=1)


def _stripes(first_rows: np.ndarray, most: int) -> list[tuple[int, int]]:
    """Row ranges of at most ``most`` rows, each between the same two rows of the model's grid."""
    edges = [0, *(np.flatnonzero(np.diff(first_rows)) + 1).tolist(), len(first_rows)]
    return [(top, min(top + most, end)) for start, end in zip(edges, edges[1:]) for top in range(start, end, most)]


def guided_coefficients(l_norm: np.ndarray, ab: np.ndarray, *, radius: int | None = None,
                        eps: float | None = None) -> np.ndarray:
    """The fast guided filter's coefficients (4, S, S) float32 on the model's grid: ``A`` (a*, b*)
    then ``B`` (a*, b*), box-averaged, such that ab ≈ A·f + B for the f(L*) = (L* + 16) / 116 of
    the guide ``l_norm`` (S, S) (normalized L*, as the model sees it) and of the full-size photo.

    Per window of ``(2 radius + 1)²`` cells: ``A = cov(f, ab) / (var(f) + eps)``, ``B = mean(ab) -
    A mean(f)``, then both averaged over the same windows (He et al. 2013). Windows are cut at
    the borders (the averages are over the cells inside). ``radius`` and ``eps`` default to
    :data:`GUIDE_RADIUS` and :data:`GUIDE_EPS`.
    """
    radius = GUIDE_RADIUS if radius is None else radius
    eps = GUIDE_EPS if eps is None else eps
    f = ((np.asarray(l_norm, np.float32) + 1.0) * 50.0 + 16.0) / 116.0
    mean_f, mean_ab = _box(f, radius), _box(ab, radius)
    var_f = _box(f * f, radius) - mean_f * mean_f
    cov = _box(ab * f, radius) - mean_ab * mean_f
    a = cov / (var_f + np.float32(eps))
    b = mean_ab - a * mean_f
    return np.concatenate([_box(a, radius), _box(b, radius)]).astype(np.float32)


def _box(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the ``(2 radius + 1)²`` window around each cell of the last two axes, cut at the borders."""
    out = np.asarray(values, np.float64)
    for axis in (-2, -1):
        n = out.shape[axis]
        sums = np.cumsum(out, axis=axis)
        sums = np.concatenate([np.zeros_like(np.take(sums, [0], axis=axis)), sums], axis=axis)
        hi = np.minimum(np.arange(n) + radius + 1, n)
        lo = np.maximum(np.arange(n) - radius, 0)
        shape = [1] * out.ndim
        shape[axis] = n
        out = (np.take(sums, hi, axis=axis) - np.take(sums, lo, axis=axis)) / (hi - lo).reshape(shape)
    return out.astype(np.float32)


def _bilinear(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weights of each output position of a bilinear resize from
    ``src`` to ``dst`` samples (``align_corners=False``, edges clamped)."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    pos = np.maximum(pos, 0.0)
    i0 = np.minimum(pos.astype(np.int64), src - 1)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _lerp(values: np.ndarray, weights: tuple[np.ndarray, np.ndarray, np.ndarray], *, axis: int) -> np.ndarray:
    """``values`` resampled along ``axis`` by :func:`_bilinear`'s indices and weights."""
    i0, i1, t = weights
    low, high = np.take(values, i0, axis=axis), np.take(values, i1, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = len(t)
    high -= low
    high *= t.reshape(shape)
    high += low
    return high
