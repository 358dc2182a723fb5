"""Color science in one place: sRGB <-> CIE L*a*b* (D65), the model's normalization, and the gray tests.

The generator sees ``L/50 - 1`` (in [-1, 1]) and predicts ``ab/110`` through ``tanh``.

L*a*b* goes back to sRGB along two paths, because their users need different things:

- :func:`lab_to_rgb` (kornia): float ``(..., 3, H, W)`` batches on any device, differentiable,
  out-of-gamut colors clipped. Training, validation and the metrics use it.
- :func:`lab_to_srgb8`: a colorized photo at full resolution, stripe by stripe on the CPU,
  straight to uint8 in a few in-place passes; out-of-gamut colors are pulled toward the gray
  of the same L*, so the photo keeps its own luminance (its detail) exactly, which clipping
  does not. It uses kornia's matrix and transfer curve, so inside the gamut the two agree
  to one 8-bit level.

Both invert the one forward conversion, :func:`rgb_to_lab`.

Whether a photo has color is asked two ways: :func:`is_gray` (no color at all: the training
data and the evaluation leave such photos out) and :func:`looks_colored` (genuine color,
neither gray nor toned: ``colorize --keep-color`` leaves such photos alone).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import linear_rgb_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

L_SCALE = 50.0
AB_SCALE = 110.0
# XYZ relative to the D65 white -> linear sRGB: kornia's matrix (as rgb_to_lab uses) times the white.
_XYZ_TO_RGB = torch.tensor(
    [
        [3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
        [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
        [0.0556466391351772, -0.2040413383665112, 1.0573110696453443],
    ]
) * torch.tensor([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0
# Mean per-pixel channel spread (max - min, 0-255) below which RGB pixels are a gray photo:
# JPEG noise on a gray photo stays well under it, any real tint (sepia included) is above.
GRAY_SPREAD = 2.0
# A photo counts as genuinely colored when this share of its pixels lies this far (in a*b*)
# off the hue of its mean color.
_COLOR_DISTANCE = 12.0
_COLOR_SHARE = 0.05


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (..., 3, H, W) -> L*a*b* (L in [0, 100])."""
    return _kornia_rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """L*a*b* -> sRGB clipped to [0, 1]. Out-of-gamut colors are clipped, not wrapped."""
    return _kornia_lab_to_rgb(lab, clip=True)


def normalize_l(l: torch.Tensor) -> torch.Tensor:
    return l / L_SCALE - 1.0


def denormalize_l(l_norm: torch.Tensor) -> torch.Tensor:
    return (l_norm + 1.0) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    return ab / AB_SCALE


def denormalize_ab(ab_norm: torch.Tensor) -> torch.Tensor:
    return ab_norm * AB_SCALE


def rgb_to_model_space(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB in [0, 1] -> (normalized L with 1 channel, normalized ab with 2 channels)."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), normalize_ab(lab[..., 1:, :, :])


def model_space_to_rgb(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_model_space`: joins L and ab and returns sRGB in [0, 1]."""
    lab = torch.cat([denormalize_l(l_norm), denormalize_ab(ab_norm)], dim=-3)
    return lab_to_rgb(lab.float())


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def unit_rgb(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) pixels -> float (3, H, W) in [0, 1], the layout :func:`rgb_to_lab` takes."""
    return torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1).div_(255.0)


@functools.cache
def gray_level_luminance(levels: int) -> np.ndarray:
    """L* of each of ``levels`` evenly spaced gray levels, by :func:`rgb_to_lab` itself, so gray pixels
    looked up here get exactly the L* their RGB would."""
    ramp = torch.linspace(0.0, 1.0, levels).expand(3, 1, levels)
    return rgb_to_lab(ramp)[0, 0].numpy()


def luminance(pixels: np.ndarray) -> torch.Tensor:
    """L* (H, W) of gray (uint8/uint16) or RGB (uint8) pixels; gray goes through a lookup table."""
    if pixels.ndim == 2:
        return torch.from_numpy(np.take(gray_level_luminance(256 if pixels.dtype == np.uint8 else 65536), pixels))
    return rgb_to_lab(unit_rgb(pixels))[0]


def _lab_f_inverse(f: torch.Tensor) -> torch.Tensor:
    """CIE's f⁻¹ with its linear toe, branch-free: max(f, δ)³ + 3δ²·min(f − δ, 0). Consumes ``f``."""
    toe = (f - _DELTA).clamp_(max=0.0).mul_(3 * _DELTA**2)
    top = f.clamp_(min=_DELTA)
    return top.square().mul_(top).add_(toe)


@functools.cache
def _srgb8_table() -> torch.Tensor:
    """Linear light in 65,536 steps -> sRGB uint8 (a lookup is ~4x faster than the power law)."""
    steps = ((torch.arange(65536) + 0.5) / 65535).clamp_(max=1.0)
    return linear_rgb_to_rgb(steps.expand(3, 1, -1))[0, 0].mul_(255.0).round_().to(torch.uint8)


def lab_to_srgb8(l: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """L* (H, W) and a*b* (2, H, W) -> sRGB uint8 (H, W, 3) whose L* is ``l``.

    Colors outside sRGB are pulled toward the gray of the same luminance in linear RGB, which
    keeps luminance exactly (plain clipping changes L*, i.e. the photo's detail). Written as
    few in-place passes over the stripe: this is the full-resolution inner loop.
    """
    height, width = l.shape
    f = torch.empty(3, height, width)
    torch.add(l, 16.0, out=f[1]).div_(116.0)
    torch.add(f[1], ab[0], alpha=1 / 500, out=f[0])
    torch.add(f[1], ab[1], alpha=-1 / 200, out=f[2])
    xyz = _lab_f_inverse(f)  # X/Xn, Y, Z/Zn
    y = xyz[1]
    rgb = (_XYZ_TO_RGB @ xyz.view(3, -1)).view(3, height, width)
    room_up = (1.0 - y).div_((rgb.amax(dim=0) - y).clamp_(min=1e-12))
    room_down = y.div((y - rgb.amin(dim=0)).clamp_(min=1e-12))
    saturation = torch.minimum(room_up, room_down).clamp_(max=1.0)
    rgb.sub_(y).mul_(saturation).add_(y)
    steps = rgb.mul_(65535.0).clamp_(0.0, 65535.0).long()
    return torch.take(_srgb8_table(), steps).permute(1, 2, 0).numpy()


def is_gray(pixels: np.ndarray) -> bool:
    """Whether a photo's pixels carry no color: one channel (H, W), or uint8 RGB (H, W, 3) whose
    mean channel spread is below :data:`GRAY_SPREAD`. A toned (sepia) photo is not gray."""
    if pixels.ndim == 2:
        return True
    spread = pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)
    return bool(spread.mean() < GRAY_SPREAD)


def looks_colored(rgb: np.ndarray) -> bool:
    """Whether a photo's uint8 RGB pixels (H, W, 3) are in genuine color: false for gray and for
    toned (sepia, cyanotype) photos.

    A toned photo's a*b* lie on one ray from gray (one hue, any chroma); a colored one has many
    pixels off the ray through its mean color. Not the opposite of :func:`is_gray`: a sepia
    photo is neither gray nor in genuine color.
    """
    ab = rgb_to_lab(unit_rgb(rgb))[1:].flatten(1)
    hue = ab.mean(dim=1)
    hue = hue / hue.norm().clamp(min=1e-6)
    along = hue @ ab
    off_ray = torch.where(along > 0, (ab - hue[:, None] * along).norm(dim=0), ab.norm(dim=0))
    return bool((off_ray > _COLOR_DISTANCE).float().mean() > _COLOR_SHARE)
