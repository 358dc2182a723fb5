"""The classification view of color (Zhang et al. 2016): a*b* quantized into bins, and what a
distribution over them says.

A regression head answers one a*b* per pixel; where a backdrop could be blue or pink it answers
something in between, or commits to one, and either can be a blotch. A distribution over color
bins says more: :func:`hue_agreement` is near 1 where the likely colors share one hue and near 0
where they pull apart, so a generator can spend chroma where it is sure and keep an ambiguous
region neutral (:class:`ColorHead`). :func:`annealed_mean` is Zhang et al.'s vivid point answer.
Training uses :func:`soft_targets` (each truth pixel spread over its nearest bins) and
:func:`rebalancing_weights` (rare, saturated colors count more).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorgan.color import AB_SCALE, lab_to_srgb8, rgb_to_lab

BIN_SIZE = 10.0  # a*b* units, as Zhang et al.'s 313 in-gamut bins
SOFT_NEIGHBOURS = 5
SOFT_SIGMA = 5.0
REBALANCE_MIX = 0.5  # λ: the weights invert a mix of the colors' prior and a uniform distribution
ANNEAL_T = 0.38


@functools.cache
def bin_centers() -> np.ndarray:
    """(Q, 2) float32 a*b* centers of the grid's bins that sRGB can show at some lightness."""
    edge = np.arange(-AB_SCALE + BIN_SIZE / 2, AB_SCALE, BIN_SIZE, dtype=np.float32)
    a, b = np.meshgrid(edge, edge, indexing="ij")
    centers = np.stack([a.ravel(), b.ravel()], axis=1)
    lightness = np.linspace(5, 95, 19, dtype=np.float32)
    shown = np.zeros(len(centers), bool)
    for l in lightness:  # a bin is in gamut where its center survives the trip to sRGB and back nearly unchanged
        rgb = lab_to_srgb8(np.full((1, len(centers)), l, np.float32), centers.T[:, None, :].copy())
        back = rgb_to_lab(rgb)[0, :, 1:]
        shown |= np.linalg.norm(back - centers, axis=1) < BIN_SIZE / 2
    return centers[shown]


def centers_tensor(like: torch.Tensor) -> torch.Tensor:
    """:func:`bin_centers` normalized as the model's ab (``/ AB_SCALE``), on ``like``'s device and dtype."""
    return torch.from_numpy(bin_centers() / AB_SCALE).to(like.device, like.dtype)


def soft_targets(ab: torch.Tensor) -> torch.Tensor:
    """(B, Q, H, W): each pixel of normalized ab (B, 2, H, W) spread over its
    :data:`SOFT_NEIGHBOURS` nearest bins with a Gaussian of :data:`SOFT_SIGMA` (Zhang et al.)."""
    centers = centers_tensor(ab)
    distance = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2).float(), centers.float()) * AB_SCALE  # (N, Q)
    near, index = distance.topk(SOFT_NEIGHBOURS, dim=1, largest=False)
    weights = torch.softmax(-(near**2) / (2 * SOFT_SIGMA**2), dim=1)
    target = torch.zeros_like(distance).scatter_(1, index, weights)
    b, _, h, w = ab.shape
    return target.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def rebalancing_weights(prior: torch.Tensor) -> torch.Tensor:
    """(Q,) class weights from the colors' empirical distribution ``prior`` (Q,): inversely
    proportional to a mix of it and the uniform distribution, scaled so the expected weight is 1."""
    prior = prior / prior.sum()
    weights = 1.0 / ((1 - REBALANCE_MIX) * prior + REBALANCE_MIX / len(prior))
    return weights / (prior * weights).sum()


def color_prior(ab: torch.Tensor) -> torch.Tensor:
    """(Q,) how often each bin is the nearest to the pixels of normalized ab batches (B, 2, H, W)."""
    centers = centers_tensor(ab)
    nearest = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2).float(), centers.float()).argmin(dim=1)
    return torch.bincount(nearest, minlength=len(centers)).float()


def annealed_mean(probabilities: torch.Tensor, *, temperature: float = ANNEAL_T) -> torch.Tensor:
    """Zhang et al.'s annealed mean: normalized ab (B, 2, H, W) of a (B, Q, H, W) distribution sharpened by ``temperature``."""
    sharpened = torch.softmax(torch.log(probabilities.clamp(min=1e-8)) / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", sharpened, centers_tensor(probabilities))


def hue_agreement(probabilities: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1]: the length of the distribution's mean a*b* over its mean chroma.

    1 where all likely colors lie on one hue (any chroma: a sure "some red"), near 0 where they
    pull in opposite directions (blue or pink), so their average would be a guess."""
    centers = centers_tensor(probabilities)
    mean = torch.einsum("bqhw,qc->bchw", probabilities, centers)
    chroma = torch.einsum("bqhw,q->bhw", probabilities, centers.norm(dim=1)).unsqueeze(1)
    return (mean.norm(dim=1, keepdim=True) / chroma.clamp(min=1e-6)).clamp(max=1.0)


class ColorHead(nn.Module):
    """A 1×1 convolution from decoder features to color-bin logits, and how its distribution
    shapes the regression answer: ``ab · agreement^gamma``, blended ``blend`` of the way toward
    the annealed mean. With ``gamma = blend = 0`` (how it trains) the answer is the regression's."""

    def __init__(self, *, in_channels: int, gamma: float = 0.0, blend: float = 0.0) -> None:
        super().__init__()
        self.logits = nn.Conv2d(in_channels, len(bin_centers()), 1)
        self.gamma, self.blend = gamma, blend

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Bin logits (B, Q, h, w) of decoder features (B, in_channels, h, w)."""
        return self.logits(features)

    def shape(self, ab: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The regression answer ab (B, 2, H, W) reshaped by the distribution of ``logits`` (at any size)."""
        if not self.gamma and not self.blend:
            return ab
        probabilities = torch.softmax(logits.float(), dim=1)
        answer = ab
        if self.blend:
            vivid = F.interpolate(annealed_mean(probabilities), size=ab.shape[-2:], mode="bilinear", align_corners=False)
            answer = (1 - self.blend) * answer + self.blend * vivid.to(ab.dtype)
        if self.gamma:
            sure = F.interpolate(hue_agreement(probabilities), size=ab.shape[-2:], mode="bilinear", align_corners=False)
            answer = answer * sure.to(ab.dtype) ** self.gamma
        return answer


def color_loss(logits: torch.Tensor, ab: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Zhang et al.'s rebalanced multinomial cross-entropy of bin ``logits`` (B, Q, h, w) against
    the truth's normalized ab (B, 2, H, W), averaged down to the logits' size."""
    truth = F.adaptive_avg_pool2d(ab.float(), logits.shape[-2:])
    target = soft_targets(truth)
    weights = class_weights.to(logits.device)[target.argmax(dim=1)]  # (B, h, w): the weight of each pixel's own color
    cross_entropy = -(target * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return (weights * cross_entropy).mean()
