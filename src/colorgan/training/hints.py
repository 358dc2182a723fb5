"""Training's simulated color hints (Zhang et al. 2017): the truth revealed at a few random
squares, on torch batches. The hint channels' definition is :mod:`colorgan.hints`."""

from __future__ import annotations

import math

import torch

from colorgan.hints import HINT_CHANNELS, HINT_COUNT_P, HINT_GAIN, MAX_HINTS, MAX_SIMULATED_SIDE, NO_HINT_SHARE


def reveal(ab: torch.Tensor, channels: torch.Tensor, *, y: int, x: int, side: int) -> None:
    """Write into ``channels`` (3, H, W) a hint holding the mean of normalized ``ab`` (2, H, W) over
    the side×side square whose top-left corner is (y, x): what a user who knows the truth would pin."""
    rows, cols = slice(y, y + side), slice(x, x + side)
    channels[:2, rows, cols] = HINT_GAIN * ab[:, rows, cols].mean(dim=(1, 2), keepdim=True)
    channels[2, rows, cols] = HINT_GAIN


def simulate_hints(ab: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training's hint channels (B, 3, H, W) for a batch of true normalized ab (B, 2, H, W), as Zhang et al.

    With probability :data:`NO_HINT_SHARE` a photo gets no hints (so the automatic case keeps
    training); otherwise a geometric number of squares (mean 1 / :data:`HINT_COUNT_P`) of
    1-:data:`MAX_SIMULATED_SIDE` pixels at uniform places, each holding the truth's mean ab there.
    Draws from ``generator`` (default: torch's global one, which checkpoints save, so a resumed run repeats them).
    """
    batch, _, height, width = ab.shape
    truth = ab.detach().float().cpu()
    channels = torch.zeros(batch, HINT_CHANNELS, height, width)
    for i in range(batch):
        if torch.rand((), generator=generator) < NO_HINT_SHARE:
            continue
        count = _geometric(HINT_COUNT_P, generator)
        for _ in range(min(count, MAX_HINTS)):
            side = int(torch.randint(1, MAX_SIMULATED_SIDE + 1, (), generator=generator))
            y = int(torch.randint(0, max(1, height - side + 1), (), generator=generator))
            x = int(torch.randint(0, max(1, width - side + 1), (), generator=generator))
            reveal(truth[i], channels[i], y=y, x=x, side=side)
    return channels.to(device=ab.device, dtype=ab.dtype)


def _geometric(p: float, generator: torch.Generator | None) -> int:
    """A geometric count >= 1 with mean 1/p, by inversion of one uniform (torch's Geometric takes no generator)."""
    u = float(torch.rand((), generator=generator).clamp_(min=torch.finfo(torch.float32).tiny))
    return 1 + int(math.floor(math.log(u) / math.log1p(-p)))
