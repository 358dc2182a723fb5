"""Color science in one place: sRGB <-> CIE L*a*b* (D65), the model's normalization, and the gray tests.

Everything here is NumPy on channel-last pixels (``(..., 3)``), the inference path's layout;
training has the same formulas on tensors, differentiable, in :mod:`colorgan.training.lab`
(kornia's, which these reproduce: tests compare the two).

The generator sees ``L/50 - 1`` (in [-1, 1]) and predicts ``ab/110`` through ``tanh``.

A colorized photo goes back to sRGB with :func:`to_srgb` (its luminance from
:func:`luminance_f`, the predicted a*b* upsampled): at full resolution, a stripe at a time, in a
few passes; out-of-gamut colors are pulled toward the gray of the same L*, so the photo
keeps its own luminance (its detail) exactly, which clipping does not.

Whether a photo has color is asked two ways: :func:`is_gray` (no color at all: the training
data and the evaluation leave such photos out) and :func:`color_kind` (gray, toned or genuine
color: ``colorize --keep-color`` leaves color photos alone and says which rule applied).
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

L_SCALE = 50.0
AB_SCALE = 110.0
# linear sRGB -> XYZ (D65), the matrix kornia uses, and its white point.
RGB_TO_XYZ = np.array([
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
])
WHITE = np.array([0.95047, 1.0, 1.08883])
# XYZ relative to the white -> linear sRGB.
_XYZ_TO_RGB = (np.linalg.inv(RGB_TO_XYZ) * WHITE).astype(np.float32)
_RGB_TO_XYZ_WHITE = (RGB_TO_XYZ / WHITE[:, None]).astype(np.float32)
_THRESHOLD = 0.008856  # CIE's f switches from its linear toe to the cube root here (kornia's constant)
_DELTA = 6.0 / 29.0
# Mean per-pixel channel spread (max - min, 0-255) below which RGB pixels are a gray photo:
# JPEG noise on a gray photo stays well under it, any real tint (sepia included) is above.
GRAY_SPREAD = 2.0
# A photo is toned (sepia, selenium, cyanotype: one hue from black to white) when, on a box-filtered
# thumbnail of TONE_THUMBNAIL px (which averages JPEG's chroma noise away), at most TONE_OFF_SHARE of
# its pixels lie over TONE_OFF_RAY off the ray from gray through its mean color, and its chroma is a
# function of lightness: within each band of TONE_L_BAND L*, chroma varies by at most TONE_SPREAD
# (mean standard deviation). A blue toy on a white table or a dog on grass has one hue too, but
# beside neutral pixels of the same lightness, so it stays a color photo. Chosen on val photos
# and toned copies of them: 193 of 196 color photos stay color (the three left are nearly gray or
# toned themselves), 458 of 588 toned JPEGs are found; keeping a color photo matters more.
TONE_THUMBNAIL = 64
TONE_OFF_RAY = 5.0
TONE_OFF_SHARE = 0.005
TONE_L_BAND = 5.0
TONE_SPREAD = 2.5
# Toning gives a print modest chroma (sepia about 20, a cyanotype's Prussian blue up to about 40):
# a photo whose strongest colors (the 99th percentile of C*ab) go past this is in color, one hue or not.
TONE_MAX_CHROMA = 45.0
COLOR_KINDS = ("gray", "toned", "color")


def normalize_l(l):  # noqa: ANN201 - NumPy arrays and torch tensors alike
    """L* in [0, 100] -> the model's input in [-1, 1]."""
    return l / L_SCALE - 1.0


def denormalize_l(l_norm):  # noqa: ANN201
    return (l_norm + 1.0) * L_SCALE


def normalize_ab(ab):  # noqa: ANN201
    """a*b* -> the model's output range (tanh)."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm):  # noqa: ANN201
    return ab_norm * AB_SCALE


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear light (the sRGB transfer curve, kornia's thresholds)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0.04045, ((values + 0.055).clip(min=0.0) / 1.055) ** 2.4, values / 12.92)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB in [0, 1] (inverse of :func:`srgb_to_linear`)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > 0.0031308, 1.055 * values.clip(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * values)


@functools.cache
def _linear_table(levels: int) -> np.ndarray:
    """Linear light of each code value of an 8-bit (256) or 16-bit (65536) channel."""
    return srgb_to_linear(np.arange(levels) / (levels - 1)).astype(np.float32)


def _linear_rgb(rgb: np.ndarray) -> np.ndarray:
    """Linear light (..., 3) float32 of sRGB pixels: uint8/uint16 through a table, floats in [0, 1] directly."""
    if rgb.dtype == np.uint8:
        return _linear_table(256)[rgb]
    if rgb.dtype == np.uint16:
        return _linear_table(65536)[rgb]
    return srgb_to_linear(rgb).astype(np.float32)


def _f(t: np.ndarray) -> np.ndarray:
    """CIE's f (in place on float32 ``t``): cube root above the threshold, linear toe below."""
    toe = t <= _THRESHOLD
    low = t[toe] * 7.787 + 4.0 / 29.0
    with np.errstate(invalid="ignore"):  # negative values (toe only) get their toe value below
        np.power(t, np.float32(1 / 3), out=t)  # ~2x faster than np.cbrt on float32
    t[toe] = low
    return t


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB pixels (..., 3): uint8, uint16 or float in [0, 1] -> L*a*b* float32 (..., 3), L* in [0, 100]."""
    rgb = np.asarray(rgb)
    xyz = _f(_linear_rgb(rgb) @ _RGB_TO_XYZ_WHITE.T)
    lab = np.empty_like(xyz)
    lab[..., 0] = 116.0 * xyz[..., 1] - 16.0
    lab[..., 1] = 500.0 * (xyz[..., 0] - xyz[..., 1])
    lab[..., 2] = 200.0 * (xyz[..., 1] - xyz[..., 2])
    return lab


@functools.cache
def gray_level_luminance(levels: int) -> np.ndarray:
    """L* of each of ``levels`` evenly spaced gray levels (256: 8-bit, 65536: 16-bit), so gray
    pixels looked up here get exactly the L* :func:`rgb_to_lab` gives their RGB."""
    y = _linear_table(levels) * np.float32(_RGB_TO_XYZ_WHITE[1].sum())
    return 116.0 * _f(y) - 16.0


def luminance(pixels: np.ndarray) -> np.ndarray:
    """L* (H, W) float32 of gray (uint8/uint16, through a table) or RGB (uint8/uint16) pixels."""
    if pixels.ndim == 2:
        return np.take(gray_level_luminance(256 if pixels.dtype == np.uint8 else 65536), pixels)
    y = _linear_rgb(pixels) @ _RGB_TO_XYZ_WHITE[1]
    return (_f(y) * 116.0 - 16.0).astype(np.float32, copy=False)


def luminance_f(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear luminance Y and CIE's f(Y) = (L* + 16) / 116, both float32 (H, W), of gray (uint8/uint16)
    or RGB (uint8/uint16) pixels: what joining predicted a*b* to a photo needs (:func:`to_srgb`).

    Table lookups, for speed on full-resolution photos: exact for gray pixels; for RGB, f comes
    from a 65,536-step table of Y, within 0.02 of L* (a fraction of one 8-bit output level).
    """
    levels = 256 if pixels.dtype == np.uint8 else 65536
    if pixels.ndim == 2:  # np.take: ~2.5x faster than indexing a table with an array
        y_table, f_table = _luminance_tables(levels)
        return np.take(y_table, pixels), np.take(f_table, pixels)
    weights = _weighted_linear_tables(levels)
    y = np.take(weights[0], pixels[..., 0])
    y += np.take(weights[1], pixels[..., 1])
    y += np.take(weights[2], pixels[..., 2])
    steps = y * 65535.0
    steps += 0.5
    return y, np.take(_f_table(), steps.astype(np.uint16))


@functools.cache
def _luminance_tables(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Y and f(Y) of each gray code value (256 or 65536 levels)."""
    y = _linear_table(levels) * np.float32(_RGB_TO_XYZ_WHITE[1].sum())
    return y, _f(y.copy())


@functools.cache
def _f_table() -> np.ndarray:
    """f(Y) of linear luminance Y in 65,536 steps."""
    return _f(np.arange(65536, dtype=np.float32) / np.float32(65535))


@functools.cache
def _weighted_linear_tables(levels: int) -> np.ndarray:
    """Each channel's code values as their contribution to Y (3, levels)."""
    return _linear_table(levels)[None, :] * _RGB_TO_XYZ_WHITE[1][:, None]


def _f_inverse(f: np.ndarray) -> np.ndarray:
    """CIE's f⁻¹ (in place on float32 ``f``): the cube, with the linear toe below δ (looked for
    only where the minimum says there is one: most stripes of a photo have none)."""
    flat = f.reshape(-1)
    toe = np.flatnonzero(flat < _DELTA) if flat.size and flat.min() < _DELTA else None
    low = (flat[toe] - 4.0 / 29.0) * (3 * _DELTA**2) if toe is not None else None
    cube = f * f
    f *= cube
    if low is not None:
        flat[toe] = low
    return f


def to_srgb(y: np.ndarray, fy: np.ndarray, ab: np.ndarray, *, bits: int = 8, planar: bool = False) -> np.ndarray:
    """Linear luminance Y and f(Y) (H, W) (from :func:`luminance_f`) and a*b* (2, H, W), float32 ->
    sRGB (H, W, 3), uint8 (``bits=8``) or uint16 (``bits=16``), whose luminance is exactly Y.

    Colors outside sRGB are pulled toward the gray of the same luminance in linear RGB, which
    keeps luminance exactly (plain clipping changes L*, i.e. the photo's detail). This is the
    full-resolution inner loop: few passes, the gamut fix only on the pixels that need it.
    ``planar`` (8 bits only) returns the channels as planes (3, H, W): interleaving them costs
    NumPy more than all the color math, and Pillow's ``Image.merge`` does it ~10x faster.
    """
    rgb = _lab_to_linear(y, fy, ab)
    flat_y = y.reshape(-1)
    if bits == 16:
        outside = np.flatnonzero((rgb.max(axis=0) > 1.0) | (rgb.min(axis=0) < 0.0))
        for channel, fitted in zip(rgb, _into_gamut(rgb, flat_y, outside), strict=True):
            channel[outside] = fitted
        return np.round(linear_to_srgb(np.clip(rgb, 0.0, 1.0)) * 65535.0).astype(np.uint16).reshape(3, *y.shape).transpose(1, 2, 0)
    steps = np.multiply(rgb, 65535.0, out=np.empty(rgb.shape, np.int32), casting="unsafe")
    unsigned = steps.view(np.uint32)  # a negative step is above 65535 too
    if unsigned.max() > 65535:  # some colors are outside sRGB: those pixels alone are fixed
        outside = np.flatnonzero(np.maximum(np.maximum(unsigned[0], unsigned[1]), unsigned[2]) > 65535)
        for channel_steps, fitted in zip(steps, _into_gamut(rgb, flat_y, outside), strict=True):
            channel_steps[outside] = fitted * 65535.0
    planes = np.empty((3, *y.shape), np.uint8)
    for channel in range(3):  # mode="clip" keeps the steps on the table in the same pass
        np.take(_srgb8_table(), steps[channel], mode="clip", out=planes[channel].reshape(-1))
    return planes if planar else planes.transpose(1, 2, 0)


def _lab_to_linear(y: np.ndarray, fy: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Linear sRGB (3, H·W) float32 of Y, f(Y) and a*b* (outside [0, 1] where the color is outside sRGB)."""
    height, width = y.shape
    xyz = np.empty((3, height, width), np.float32)  # X/Xn, Y, Z/Zn
    np.multiply(ab[0], 1 / 500, out=xyz[0])
    xyz[0] += fy
    np.multiply(ab[1], -1 / 200, out=xyz[2])
    xyz[2] += fy
    _f_inverse(xyz[0])
    _f_inverse(xyz[2])
    xyz[1] = y
    return np.matmul(_XYZ_TO_RGB, xyz.reshape(3, -1))


def _into_gamut(rgb: np.ndarray, y: np.ndarray, outside: np.ndarray) -> list[np.ndarray]:
    """The channels of the pixels ``outside`` of linear ``rgb`` (3, N), which leave [0, 1], with
    their chroma (the distance from the gray of luminance ``y``) scaled until they fit. Y is a
    positive mix of R, G and B, so min ≤ Y ≤ max and the gray itself always fits."""
    gray = np.take(y, outside)
    values = [np.take(channel, outside) for channel in rgb]  # a channel at a time: 2-D fancy indexing is slower
    top, bottom = np.maximum(np.maximum(*values[:2]), values[2]), np.minimum(np.minimum(*values[:2]), values[2])
    room_up = (1.0 - gray) / np.maximum(top - gray, 1e-12)
    room_down = gray / np.maximum(gray - bottom, 1e-12)
    scale = np.minimum(np.minimum(room_up, room_down), 1.0)
    return [(value - gray) * scale + gray for value in values]


def lightness_f(l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`luminance_f` of known L* (H, W): linear luminance Y and f(Y) = (L* + 16) / 116."""
    fy = (np.asarray(l, np.float32) + 16.0) / 116.0
    return _f_inverse(fy.copy()), fy


def lab_to_srgb8(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """L* (H, W) and a*b* (2, H, W) -> sRGB uint8 (H, W, 3) whose L* is ``l`` (see :func:`to_srgb`)."""
    return to_srgb(*lightness_f(l), np.asarray(ab, np.float32))


def lab_to_srgb16(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """:func:`lab_to_srgb8` for 16-bit output (16-bit scans): uint16 (H, W, 3), the transfer
    curve computed exactly (a 16-bit table would lose the darkest levels)."""
    return to_srgb(*lightness_f(l), np.asarray(ab, np.float32), bits=16)


def gray_luminance_table() -> np.ndarray:
    """Linear luminance Y (float32) of each 8-bit gray level (read-only): ``table[gray]`` is what
    :func:`luminance_f` gives a gray frame's pixels."""
    table = _luminance_tables(256)[0]
    table.flags.writeable = False
    return table


def f_of_luminance(y: np.ndarray) -> np.ndarray:
    """CIE's f(Y) = (L* + 16) / 116 of linear luminance Y (float32, a new array)."""
    return _f(np.array(y, np.float32))


def srgb8_of_linear(y: np.ndarray) -> np.ndarray:
    """The 8-bit sRGB level (float32) of linear light ``y`` in [0, 1], rounded as :func:`to_srgb` rounds."""
    steps = np.clip(np.asarray(y, np.float32) * 65535.0, 0.0, 65535.0)
    return _srgb8_table()[steps.astype(np.uint16)].astype(np.float32)


@functools.cache
def _srgb8_table() -> np.ndarray:
    """Linear light in 65,536 steps -> sRGB uint8 (a lookup is ~4x faster than the power law)."""
    steps = np.minimum((np.arange(65536) + 0.5) / 65535, 1.0)
    return np.round(linear_to_srgb(steps) * 255.0).astype(np.uint8)


def is_gray(pixels: np.ndarray) -> bool:
    """Whether a photo's pixels carry no color: one channel (H, W), or uint8 RGB (H, W, 3) whose
    mean channel spread is below :data:`GRAY_SPREAD`. A toned (sepia) photo is not gray."""
    if pixels.ndim == 2:
        return True
    spread = pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)
    return bool(spread.mean() < GRAY_SPREAD)


def color_kind(rgb: np.ndarray) -> str:
    """What a photo's uint8 RGB pixels (H, W, 3) are: ``"gray"`` (:func:`is_gray`), ``"toned"`` (one
    hue, as a sepia or cyanotype print: see :data:`TONE_SPREAD`) or ``"color"`` (genuine color)."""
    if is_gray(rgb):
        return "gray"
    height, width = rgb.shape[:2]
    if max(height, width) > TONE_THUMBNAIL:
        scale = TONE_THUMBNAIL / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BOX))
    lab = rgb_to_lab(rgb).reshape(-1, 3).astype(np.float64)
    ab = lab[:, 1:]
    hue = ab.mean(axis=0)
    hue /= max(np.linalg.norm(hue), 1e-6)
    along = ab @ hue
    off_ray = np.where(along > 0, np.linalg.norm(ab - along[:, None] * hue, axis=1), np.linalg.norm(ab, axis=1))
    if (off_ray > TONE_OFF_RAY).mean() > TONE_OFF_SHARE or np.percentile(np.hypot(ab[:, 0], ab[:, 1]), 99) > TONE_MAX_CHROMA:
        return "color"
    bands = np.minimum((lab[:, 0] / TONE_L_BAND).astype(np.int64), int(100 / TONE_L_BAND) - 1)
    counts = np.bincount(bands)
    sums, squares = np.bincount(bands, along), np.bincount(bands, along * along)
    used = counts > 0
    spread = np.sqrt(np.maximum(squares[used] / counts[used] - (sums[used] / counts[used]) ** 2, 0.0))
    return "toned" if (spread * counts[used]).sum() / counts.sum() <= TONE_SPREAD else "color"


def to_8_bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 pixels rounded to uint8 (65535 -> 255, v * 257 -> v); uint8 ones as they are: the one
    rule for a 16-bit scan shown or saved at 8 bits."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype != np.uint16:
        raise ValueError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    return _eight_bit_table()[pixels]  # a table: no full-size temporary wider than the result


@functools.cache
def _eight_bit_table() -> np.ndarray:
    return ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
