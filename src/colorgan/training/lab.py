"""L*a*b* on torch tensors, for training: kornia's differentiable sRGB <-> L*a*b* (D65) on
``(..., 3, H, W)`` batches, on any device, and the model's normalization of them.

The same formulas as :mod:`colorgan.color` (NumPy, the inference path), which tests compare.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

from colorgan.color import denormalize_ab, denormalize_l, normalize_ab, normalize_l


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (..., 3, H, W) -> L*a*b* (L in [0, 100])."""
    return _kornia_rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """L*a*b* -> sRGB clipped to [0, 1]. Out-of-gamut colors are clipped, not wrapped."""
    return _kornia_lab_to_rgb(lab, clip=True)


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
