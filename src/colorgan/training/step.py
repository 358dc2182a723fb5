"""One optimization step of a run: stage 1 (L1 alone) or stage 2 (the conditional GAN), on
batches already in the model's color space (:func:`to_model_input`), through accelerate.

The paper's loss values come back by name (:data:`colorgan.training.losses.LOSS_NAMES`), plus
the optional perceptual and color-head terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import nn

from colorgan.networks.color_classes import color_loss
from colorgan.training.lab import model_space_to_rgb, rgb_to_model_space, uint8_to_unit
from colorgan.training.losses import GANLoss, PerceptualLoss, l1_loss


@dataclass
class Nets:
    """The prepared networks and optimizers of a run (``discriminator`` is None in stage 1;
    ``perceptual`` is None unless the run weighs a perceptual loss)."""

    generator: nn.Module
    opt_g: torch.optim.Optimizer
    discriminator: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    criterion: GANLoss | None = None
    perceptual: PerceptualLoss | None = None
    color_weights: torch.Tensor | None = None  # with a color head: the rebalanced classes' weights (Q,)
    lambda_color: float = 1.0

def to_model_input(rgb: torch.Tensor, *, saturation: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 RGB batch (on the training device) -> normalized (L, ab), channels-last.

    The Lab conversion runs once per batch on the device; channels-last lets oneDNN (CPU)
    and cuDNN (GPU with mixed precision) pick their fastest convolution kernels.
    ``saturation`` scales the target chroma (``--target-saturation``: a model trained on
    slightly stronger colors than the photos' answers less cautiously), within the tanh's range.
    """
    l, ab = rgb_to_model_space(uint8_to_unit(rgb))
    if saturation != 1.0:
        ab = (ab * saturation).clamp(-1.0, 1.0)
    return l.contiguous(memory_format=torch.channels_last), ab.contiguous(memory_format=torch.channels_last)

def train_step(
    l: torch.Tensor,
    ab: torch.Tensor,
    nets: Nets,
    *,
    lambda_l1: float,
    accelerator: Accelerator,
    cond: torch.Tensor | None = None,
    train_generator: bool = True,
) -> dict[str, float]:
    """One optimization step of stage 1 (L1 only) or stage 2 (cGAN); returns the paper's loss values.

    ``cond`` (e.g. color hints) goes to the generator only; the PatchGAN judges (L, ab) pairs.
    ``train_generator=False`` (stage 2) trains the critic alone on the generator's outputs
    (DeOldify's critic pretraining): the generator's losses are reported, not followed.
    """
    generator, opt_g, discriminator, opt_d, criterion = nets.generator, nets.opt_g, nets.discriminator, nets.opt_d, nets.criterion
    with torch.set_grad_enabled(train_generator):
        if nets.color_weights is None:
            fake, logits = generator(l, cond), None
        else:
            fake, logits = generator(l, cond, with_logits=True)
    if discriminator is None:  # stage 1: the generator alone, L1 (and the perceptual term)
        reconstruction = _reconstruction_losses(l, fake, ab, nets, lambda_l1=lambda_l1, accelerator=accelerator, logits=logits)
        loss_g = sum(reconstruction.values())
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss_g)
        opt_g.step()
        return {k: v.item() for k, v in reconstruction.items()} | {"Loss_G": loss_g.item()}

    # Discriminator: real and fake pairs in separate forward passes (separate BatchNorm
    # statistics, as pix2pix does), loss = mean of the two terms.
    disc_plain = accelerator.unwrap_model(discriminator)
    disc_plain.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with accelerator.no_sync(discriminator):
        loss_d_fake = criterion(discriminator(l, fake.detach()).float(), real=False)
        accelerator.backward(0.5 * loss_d_fake)
    loss_d_real = criterion(discriminator(l, ab).float(), real=True)
    accelerator.backward(0.5 * loss_d_real)
    opt_d.step()

    # Generator: fool the discriminator and stay close to the truth. The unwrapped D with
    # frozen weights computes only the gradient G needs, outside DDP's gradient sync.
    disc_plain.requires_grad_(False)
    with torch.set_grad_enabled(train_generator):
        with accelerator.autocast():
            loss_g_gan = criterion(disc_plain(l, fake).float(), real=True)
        reconstruction = _reconstruction_losses(l, fake, ab, nets, lambda_l1=lambda_l1, accelerator=accelerator, logits=logits)
        loss_g = loss_g_gan + sum(reconstruction.values())
    if train_generator:
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss_g)
        opt_g.step()
    d_fake, d_real = loss_d_fake.item(), loss_d_real.item()
    return {
        "Loss_D_fake": d_fake, "Loss_D_real": d_real, "Loss_D": 0.5 * (d_fake + d_real),
        "Loss_G_GAN": loss_g_gan.item(), **{k: v.item() for k, v in reconstruction.items()}, "Loss_G": loss_g.item(),
    }

def _reconstruction_losses(
    l: torch.Tensor, fake: torch.Tensor, ab: torch.Tensor, nets: Nets, *, lambda_l1: float, accelerator: Accelerator,
    logits: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The generator's terms that compare with the truth: L1 on ab, the perceptual loss on sRGB and
    the color head's rebalanced cross-entropy, each if the run has it."""
    losses = {"Loss_G_L1": l1_loss(fake.float(), ab, weight=lambda_l1)}
    if nets.perceptual is not None:
        with accelerator.autocast():
            losses["Loss_G_perceptual"] = nets.perceptual(model_space_to_rgb(l, fake), model_space_to_rgb(l, ab))
    if logits is not None:
        losses["Loss_G_color"] = nets.lambda_color * color_loss(logits, ab, nets.color_weights)
    return losses
