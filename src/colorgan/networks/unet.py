"""The pix2pix U-Net generator (Isola et al. 2017), as the recipe fixes it for L -> ab."""

from __future__ import annotations

import torch
from torch import nn

from colorgan.networks.registry import Generator, init_normal, register_generator


def _down(in_ch: int, out_ch: int, *, outermost: bool, innermost: bool) -> nn.Sequential:
    # pix2pix puts the activation before the conv; biases are dropped where BatchNorm follows
    # (and, as in pix2pix, at the innermost level too, which keeps its ~54.4 M parameter count).
    layers: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2, inplace=True)]
    layers.append(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False))
    if not (outermost or innermost):
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


def _up(in_ch: int, out_ch: int, *, outermost: bool, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=outermost),
    ]
    if outermost:
        layers.append(nn.Tanh())
    else:
        layers.append(nn.BatchNorm2d(out_ch))
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@register_generator("unet")
class UNetGenerator(Generator):
    """8-level pix2pix U-Net: 256x256 L in, 256x256 ab out (tanh).

    Dropout(0.5) in the three decoder blocks next to the bottleneck is the only noise.
    Input sides must be multiples of ``2**num_downs`` (256 by default). ``in_channels`` is
    the image's channel count (L*: 1); ``cond_channels`` are added to it.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 64,
        num_downs: int = 8,
        dropout: float = 0.5,
        cond_channels: int = 0,
    ) -> None:
        super().__init__(cond_channels=cond_channels)
        if num_downs < 5:
            raise ValueError("num_downs must be at least 5 (the pix2pix U-Net has 8)")
        if (in_channels, out_channels) != (1, 2):  # kept as arguments: model.json files of pix2pix U-Nets name them
            raise ValueError("the unet generator maps L* (in_channels=1) to a*b* (out_channels=2); add inputs with cond_channels")
        self.size_multiple = 2**num_downs
        chans = [min(base_channels * 2**i, base_channels * 8) for i in range(num_downs)]
        last = num_downs - 1
        self.downs = nn.ModuleList(
            _down(self.in_channels if i == 0 else chans[i - 1], chans[i], outermost=i == 0, innermost=i == last)
            for i in range(num_downs)
        )
        # ups[i] undoes downs[i]; all but the innermost take [skip, upsampled] concatenated.
        self.ups = nn.ModuleList(
            _up(
                chans[i] if i == last else 2 * chans[i],
                out_channels if i == 0 else chans[i - 1],
                outermost=i == 0,
                dropout=dropout if last - 4 < i < last else 0.0,
            )
            for i in range(num_downs)
        )
        self.apply(init_normal)

    @property
    def encoder(self) -> nn.Module:
        return nn.Sequential(*self.downs)

    @property
    def encoder_channels(self) -> int:
        return self.downs[-1][-1].out_channels  # innermost block: LeakyReLU, Conv2d

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = self.ups[-1](skips.pop())
        for up in reversed(self.ups[:-1]):
            x = up(torch.cat([skips.pop(), x], dim=1))
        return x
