"""The 70x70 PatchGAN discriminator of pix2pix, on (L, a, b) stacked as 3 channels, and its file.

A critic file (``critic.safetensors`` beside a model) holds the PatchGAN's weights with its
constructor's arguments in the safetensors header, so a GAN run that starts from a model can
go on with the critic that trained it (see :func:`load_critic`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from colorgan.errors import UserError
from colorgan.files.atomic import atomic_output
from colorgan.networks.registry import init_normal

log = logging.getLogger(__name__)

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


def save_critic(critic: PatchGAN, path: str | Path, *, dtype: torch.dtype = torch.float32) -> None:
    """Write ``critic``'s weights (floating tensors as ``dtype``) and its config to the safetensors file ``path``."""
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in critic.state_dict().items()}
    with atomic_output(Path(path)) as tmp:
        save_file(state, str(tmp), metadata={"format": "colorgan-critic", "config": json.dumps(critic.config)})


def load_critic(path: str | Path) -> PatchGAN:
    """The PatchGAN in a critic file; a file that is not one, or does not fit its config, is a :class:`UserError`."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
        config = json.loads(meta.get("config", "null"))
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read the critic {path}: {exc}") from None
    if meta.get("format") != "colorgan-critic" or not isinstance(config, dict):
        raise UserError(f"{path} is not a colorgan critic file")
    try:
        critic = PatchGAN(**config)
    except TypeError as exc:
        raise UserError(f"{path} has an invalid critic config: {exc}") from None
    own = critic.state_dict()
    if own.keys() != state.keys() or any(own[k].shape != state[k].shape for k in own):
        raise UserError(f"{path} does not fit its own critic config {config}")
    critic.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return critic
