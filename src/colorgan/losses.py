"""The conditional-GAN objective of pix2pix: adversarial loss on logits plus lambda * L1.

The names of the logged losses are declared once here, in the paper's spelling
(Tables 4.1 / 5.2), and everything that logs or prints them uses this tuple.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError

LOSS_NAMES = ("Loss_D_fake", "Loss_D_real", "Loss_D", "Loss_G_GAN", "Loss_G_L1", "Loss_G")
GAN_MODES = ("vanilla", "lsgan")


class GANLoss(nn.Module):
    """Adversarial loss against an all-real or all-fake target of the logits' shape.

    ``vanilla`` is binary cross-entropy on logits (pix2pix, the paper); ``lsgan`` is the
    least-squares variant (Mao et al. 2017), often steadier on small data.
    """

    def __init__(self, *, mode: str = "vanilla") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise UserError(f"unknown GAN loss {mode!r}; choose one of: {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, logits: torch.Tensor, *, real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if self.mode == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)


def l1_loss(pred_ab: torch.Tensor, true_ab: torch.Tensor, *, weight: float) -> torch.Tensor:
    """``weight * mean |pred - true|`` on normalized ab: the paper's Loss_G_L1 (weight = lambda = 100)."""
    return weight * F.l1_loss(pred_ab, true_ab)
