"""A colorized black-and-white frame joined straight into the encoder's 4:2:0 YUV planes.

A film is encoded as 4:2:0 YUV: full-resolution luma, chroma at half the width and height. The
photo path builds full-size RGB (:func:`colorgan.render.recombine`), which the encoder then
converts back to YUV and subsamples, so three quarters of the color work and the whole RGB to
YUV conversion are thrown away; at 1080p those two passes were most of a frame's time.

For a gray frame the colors are instead made once per chroma sample: the frame's linear
luminance averaged over each 2×2 block gives the block's L*, the predicted a*b* are upsampled
to the chroma grid, and colorgan's own L*a*b* → sRGB rule (:func:`colorgan.color.to_srgb`,
which keeps L* in gamut) gives the block's RGB, hence its Cb, Cr and luma. The full-resolution
luma is the input's own gray level plus how much coloring changed the block's luma (the same
change a colored pixel of that lightness gets: zero where the colors are neutral), upsampled,
so the frame's detail is the input's, exactly, and neutral areas keep their gray levels.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from colorgan.color import denormalize_ab, f_of_luminance, gray_luminance_table, srgb8_of_linear, to_srgb
from colorgan.render import STRIPE_PIXELS, guided_coefficients
from colorgan.workers import compute_pool

# Video ranges: luma 16-235 and chroma 16-240 ("MPEG", "limited" or "TV" range), what players assume.
_LUMA_SCALE = 219.0 / 255.0
_CHROMA_SCALE = 224.0 / 255.0


def gray_to_i420(gray: np.ndarray, ab_norm: np.ndarray, *, kr: float, kb: float,
                 guide: np.ndarray | None = None) -> np.ndarray:
    """A gray frame (H, W) uint8 (H and W even) with its predicted normalized a*b* (2, S, S) as one
    I420 array ((3 H / 2, W) uint8: the Y plane, then U and V, each H/2 × W/2), limited range,
    for the luma weights ``kr``, ``kb`` of the output's matrix (BT.709: 0.2126, 0.0722).

    ``guide`` is the model's input L* ((1, S, S) normalized): the colors then follow the
    frame's edges as :func:`colorgan.render.recombine` makes them (its guided upsampling).
    The chroma grid is done in stripes over the compute pool, as photos are (cache-sized
    temporaries: see :data:`colorgan.render.STRIPE_PIXELS`).
    """
    height, width = gray.shape
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 needs even sides, got {width}x{height}")
    half_w, half_h = width // 2, height // 2
    ab = denormalize_ab(np.asarray(ab_norm, np.float32))
    if guide is not None:  # the guided filter's coefficients are what is upsampled (see colorgan.render)
        ab = guided_coefficients(np.asarray(guide, np.float32).reshape(ab.shape[1:]), ab)
    maps = np.stack([cv2.resize(channel, (half_w, half_h), interpolation=cv2.INTER_LINEAR) for channel in ab])
    out = np.empty((height * 3 // 2, width), np.uint8)
    chroma = out[height:].reshape(2, half_h, half_w)  # U then V, as the I420 layout has them
    change = np.empty((half_h, half_w), np.float32)  # what coloring did to each block's luma, in output levels
    table = gray_luminance_table()
    rows = max(1, STRIPE_PIXELS // half_w)

    def stripe(top: int) -> None:
        bottom = min(half_h, top + rows)
        linear = cv2.LUT(gray[2 * top:2 * bottom], table)
        y = cv2.resize(linear, (half_w, bottom - top), interpolation=cv2.INTER_AREA)  # linear light, per block
        fy = f_of_luminance(y)
        ab_rows = maps[:, top:bottom]
        if guide is not None:
            ab_rows = ab_rows[:2] * fy + ab_rows[2:]
        rgb = to_srgb(y, fy, np.ascontiguousarray(ab_rows)).astype(np.float32)
        red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        luma = kr * red + (1.0 - kr - kb) * green + kb * blue
        np.multiply(luma - srgb8_of_linear(y), _LUMA_SCALE, out=change[top:bottom])
        chroma[0, top:bottom] = _limited(128.0 + (_CHROMA_SCALE / (2.0 * (1.0 - kb))) * (blue - luma))
        chroma[1, top:bottom] = _limited(128.0 + (_CHROMA_SCALE / (2.0 * (1.0 - kr))) * (red - luma))

    list(compute_pool().map(stripe, range(0, half_h, rows)))
    full_change = cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR)
    out[:height] = cv2.add(cv2.LUT(gray, _luma_table()), full_change, dtype=cv2.CV_8U)  # rounded, saturated
    return out


@functools.cache
def _luma_table() -> np.ndarray:
    """Each gray level as limited-range luma (float32)."""
    return (16.0 + _LUMA_SCALE * np.arange(256)).astype(np.float32)


def _limited(values: np.ndarray) -> np.ndarray:
    values += 0.5
    np.clip(values, 0.0, 255.0, out=values)
    return values.astype(np.uint8)
