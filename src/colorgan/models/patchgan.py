"""The 70x70 PatchGAN discriminator of pix2pix, on (L, a, b) stacked as 3 channels."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import UserError
from .registry import init_normal

D_NORMS = ("batch", "spectral")


class PatchGAN(nn.Module):
    """C64-C128-C256-C512 then a 1-channel conv: one logit per 70x70 patch (30x30 for 256 input).

    ``norm="batch"`` is pix2pix's BatchNorm; ``norm="spectral"`` (Miyato et al. 2018) divides
    every kernel by its largest singular value instead, which bounds how sharply the
    discriminator can react and so steadies the adversarial game.
    """

    def __init__(self, *, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if norm not in D_NORMS:
            raise UserError(f"unknown discriminator norm {norm!r}; choose one of: {', '.join(D_NORMS)}")
        self.config = dict(in_channels=in_channels, base_channels=base_channels, num_layers=num_layers, norm=norm)
        spectral = norm == "spectral"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = base_channels
        for i in range(1, num_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [
                nn.Conv2d(ch, out, 4, stride=stride, padding=1, bias=spectral),
                nn.Identity() if spectral else nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(init_normal)
        if spectral:  # after init: the parametrization wraps the initialized kernels
            for layer in self.net:
                if isinstance(layer, nn.Conv2d):
                    spectral_norm(layer)

    def forward(self, l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Logits for the pair (L, ab): the condition is always shown with the colors."""
        return self.net(torch.cat([l, ab], dim=1))
