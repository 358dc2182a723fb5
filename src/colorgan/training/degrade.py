"""Old-scan damage for training inputs (``--degrade P``): so a damaged scan gets the colors a clean
photo gets.

A share ``P`` of each batch's photos has its lightness (the model's input, never its colors,
which stay the clean photo's) damaged the ways archive scans are: film grain, softness, JPEG
blocking, faded contrast with lifted blacks, dust and fine vertical scratches, each with
probability one half. Everything draws from torch's global generator, whose state checkpoints
keep, so a resumed run damages exactly the photos an uninterrupted one would.
"""

from __future__ import annotations

import torch
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import gaussian_blur2d

KINDS = ("grain", "blur", "jpeg", "fade", "dust", "scratches")


def degrade(l: torch.Tensor, share: float) -> torch.Tensor:
    """Normalized L* (B, 1, H, W) in [-1, 1] with ``share`` of its photos damaged (see the module docstring)."""
    if share <= 0:
        return l
    chosen = torch.rand(len(l)) < share
    if not chosen.any():
        return l
    out = l.clone()
    picked = out[chosen].float()
    for kind in KINDS:
        apply = torch.rand(len(picked)) < 0.5
        if apply.any():
            picked[apply] = _DAMAGE[kind](picked[apply])
    out[chosen] = picked.clamp(-1.0, 1.0).to(out.dtype)
    return out


def _grain(l: torch.Tensor) -> torch.Tensor:
    sigma = torch.empty(len(l), 1, 1, 1).uniform_(0.01, 0.06)  # 0.5 to 3 L*
    return l + torch.randn_like(l) * sigma


def _blur(l: torch.Tensor) -> torch.Tensor:
    sigma = float(torch.empty(1).uniform_(0.5, 1.5))
    return gaussian_blur2d(l, 7, (sigma, sigma))


def _jpeg(l: torch.Tensor) -> torch.Tensor:
    quality = torch.empty(len(l)).uniform_(15, 60)
    gray = ((l + 1) / 2).clamp(0, 1).expand(-1, 3, -1, -1)
    return jpeg_codec_differentiable(gray, quality).mean(dim=1, keepdim=True) * 2 - 1


def _fade(l: torch.Tensor) -> torch.Tensor:
    contrast = torch.empty(len(l), 1, 1, 1).uniform_(0.55, 0.9)
    lift = torch.empty(len(l), 1, 1, 1).uniform_(0.0, 0.25)
    mean = l.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (l - mean) * contrast + lift


def _dust(l: torch.Tensor) -> torch.Tensor:
    specks = torch.rand_like(l) < 4e-4
    shade = torch.where(torch.rand_like(l) < 0.5, 1.0, -1.0)
    grown = torch.nn.functional.max_pool2d(specks.float(), 3, stride=1, padding=1) > 0  # specks of a few pixels
    return torch.where(grown, shade, l)


def _scratches(l: torch.Tensor) -> torch.Tensor:
    out = l.clone()
    for i in range(len(l)):
        for _ in range(int(torch.randint(1, 4, ()))):
            column = int(torch.randint(0, l.shape[-1], ()))
            out[i, :, :, column] = out[i, :, :, column] * 0.3 + 0.7 * float(torch.empty(1).uniform_(0.4, 1.0))
    return out


_DAMAGE = {"grain": _grain, "blur": _blur, "jpeg": _jpeg, "fade": _fade, "dust": _dust, "scratches": _scratches}
