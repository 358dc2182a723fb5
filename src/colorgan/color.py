"""sRGB <-> CIE L*a*b* (D65) on batched tensors, and the model's normalization.

The generator sees ``L/50 - 1`` (in [-1, 1]) and predicts ``ab/110`` through ``tanh``.
Everything here works on ``(..., C, H, W)`` float tensors on any device, so a whole
batch is converted at once (on the GPU when training runs there).
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

L_SCALE = 50.0
AB_SCALE = 110.0


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
