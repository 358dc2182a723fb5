"""One run's networks and the step that trains them, around an accelerate ``Accelerator``.

Modeled on lucidrains' ``Trainer`` wrapped around ``Accelerator``: :class:`Trainer` holds the
generator, the PatchGAN (stage 2), their optimizers, the weight average and the accelerator,
and offers ``train_step``, ``save``, ``load`` and ``publish``, so the loop in
:func:`colorgan.train.run_training` never touches a network or a file format itself. Through
accelerate the same code trains on the CPU, one or several GPUs or nodes, with mixed
precision where the hardware computes it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from .. import __version__
from .lab import model_space_to_rgb, rgb_to_model_space, uint8_to_unit
from ..data import EpochSampler, PhotoDataset, collate, folder_balance_weights
from ..errors import UserError
from ..losses import GANLoss, PerceptualLoss, l1_loss
from ..models import (
    Generator,
    PatchGAN,
    add_cond_channels,
    build_generator,
    complete_spec,
    generator_spec,
    load_state_dict_checked,
    read_model_json,
    read_weights,
    save_pretrained,
)
from .checkpoint import Checkpoint, Checkpointer, RunState
from .config import TrainConfig

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where autocast roughly
    doubles the GAN step's speed; elsewhere bf16 is emulated and slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(choice: str, *, cpu: bool) -> str:
    """``auto`` -> bf16 (or fp16 where the GPU lacks bf16) on GPUs, bf16 on CPUs with native
    bf16, full precision elsewhere; any other choice is kept."""
    if choice != "auto":
        return choice
    if cpu:
        return "bf16" if cpu_has_native_bf16() else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def make_accelerator(precision: str) -> Accelerator:
    """The run's accelerator for ``--mixed-precision``.

    With no GPU at all it says so: accelerate then treats several launched processes as
    multi-CPU (gloo) training instead of independent single-process runs.
    """
    no_gpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    return Accelerator(mixed_precision=resolve_precision(precision, cpu=no_gpu), cpu=no_gpu)


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


def to_model_input(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 RGB batch (on the training device) -> normalized (L, ab), channels-last.

    The Lab conversion runs once per batch on the device; channels-last lets oneDNN (CPU)
    and cuDNN (GPU with mixed precision) pick their fastest convolution kernels.
    """
    l, ab = rgb_to_model_space(uint8_to_unit(rgb))
    return l.contiguous(memory_format=torch.channels_last), ab.contiguous(memory_format=torch.channels_last)


def train_step(
    l: torch.Tensor,
    ab: torch.Tensor,
    nets: Nets,
    *,
    lambda_l1: float,
    accelerator: Accelerator,
    cond: torch.Tensor | None = None,
) -> dict[str, float]:
    """One optimization step of stage 1 (L1 only) or stage 2 (cGAN); returns the paper's loss values.

    ``cond`` (e.g. color hints) goes to the generator only; the PatchGAN judges (L, ab) pairs.
    """
    generator, opt_g, discriminator, opt_d, criterion = nets.generator, nets.opt_g, nets.discriminator, nets.opt_d, nets.criterion
    fake = generator(l, cond)
    if discriminator is None:  # stage 1: the generator alone, L1 (and the perceptual term)
        reconstruction = _reconstruction_losses(l, fake, ab, nets, lambda_l1=lambda_l1, accelerator=accelerator)
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
    opt_g.zero_grad(set_to_none=True)
    with accelerator.autocast():
        loss_g_gan = criterion(disc_plain(l, fake).float(), real=True)
    reconstruction = _reconstruction_losses(l, fake, ab, nets, lambda_l1=lambda_l1, accelerator=accelerator)
    loss_g = loss_g_gan + sum(reconstruction.values())
    accelerator.backward(loss_g)
    opt_g.step()
    d_fake, d_real = loss_d_fake.item(), loss_d_real.item()
    return {
        "Loss_D_fake": d_fake, "Loss_D_real": d_real, "Loss_D": 0.5 * (d_fake + d_real),
        "Loss_G_GAN": loss_g_gan.item(), **{k: v.item() for k, v in reconstruction.items()}, "Loss_G": loss_g.item(),
    }


def _reconstruction_losses(
    l: torch.Tensor, fake: torch.Tensor, ab: torch.Tensor, nets: Nets, *, lambda_l1: float, accelerator: Accelerator,
) -> dict[str, torch.Tensor]:
    """The generator's terms that compare with the truth: L1 on ab, and the perceptual loss on sRGB if the run has one."""
    losses = {"Loss_G_L1": l1_loss(fake.float(), ab, weight=lambda_l1)}
    if nets.perceptual is not None:
        with accelerator.autocast():
            losses["Loss_G_perceptual"] = nets.perceptual(model_space_to_rgb(l, fake), model_space_to_rgb(l, ab))
    return losses


def photo_loader(cfg: TrainConfig, paths: list[Path]) -> tuple[DataLoader, EpochSampler]:
    """The training photos in batches, and the sampler that fixes each epoch's order, flips and crops."""
    weights = folder_balance_weights(paths, cfg.data, cfg.balance) if cfg.balance else None
    sampler = EpochSampler(len(paths), seed=cfg.seed, weights=weights)
    loader = DataLoader(
        PhotoDataset(paths, size=cfg.size, crop_scale=cfg.crop_scale),
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,  # no worker start-up cost at every epoch
        drop_last=len(paths) >= 2 * cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps worker seeding off the global RNG
    )
    return loader, sampler


class Trainer:
    """The networks, optimizers, weight average and accelerator of one run.

    Builds the generator ``cfg`` names (started from ``--init-from`` or its pretrained
    encoder) and, in stage 2, a PatchGAN; every process holds its own copy, kept in sync by
    accelerate. With ``--ema`` an exponential moving average of the generator's weights (and
    BatchNorm statistics) is what gets validated and published: it smooths the GAN's oscillations.
    """

    def __init__(self, *, cfg: TrainConfig, accelerator: Accelerator, checkpointer: Checkpointer) -> None:
        self.cfg, self.accelerator, self.checkpointer = cfg, accelerator, checkpointer
        generator = build_generator(cfg.generator, **cfg.generator_kwargs())
        if cfg.size % generator.size_multiple:
            raise UserError(f"--size {cfg.size} does not fit the {cfg.generator} generator: use a multiple of {generator.size_multiple}")
        self.encoder_origin = _init_generator(generator, cfg)
        if cfg.freeze_base:  # a hint adapter: the model stays exactly --init-from, BatchNorm statistics included
            _freeze_all_but_hint_paths(generator)
        discriminator = PatchGAN(norm=cfg.d_norm).to(memory_format=torch.channels_last) if cfg.gan else None
        generator.to(memory_format=torch.channels_last)
        opt_g = torch.optim.Adam(_param_groups(generator, cfg), lr=cfg.learning_rate, betas=cfg.betas)
        if discriminator is None:
            self.nets = Nets(*accelerator.prepare(generator, opt_g))
        else:
            opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.learning_rate, betas=cfg.betas)
            generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
            self.nets = Nets(generator, opt_g, discriminator, opt_d, GANLoss(mode=cfg.gan_mode))
        if cfg.lambda_perceptual:
            self.nets.perceptual = PerceptualLoss(weight=cfg.lambda_perceptual).to(accelerator.device, memory_format=torch.channels_last)
        # the plain modules (no DDP wrapper): what checkpoints hold and the weight average follows
        self.generator: Generator = accelerator.unwrap_model(self.nets.generator)
        self.discriminator: nn.Module | None = None if discriminator is None else accelerator.unwrap_model(discriminator)
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
                    if cfg.ema else None)
        self.photos_per_step = cfg.batch_size * accelerator.num_processes

    @property
    def published(self) -> Generator:
        """The generator that is validated and published: the weight average with ``--ema``."""
        return self.ema.module if self.ema is not None else self.generator

    def all_ranks_have_photos(self, photos: int) -> bool:
        """Whether every process has photos for this step: every rank must take the step, or none."""
        if self.accelerator.num_processes > 1:
            photos = int(self.accelerator.gather(torch.tensor([photos], device=self.accelerator.device)).min())
        return photos > 0

    def train_step(self, l: torch.Tensor, ab: torch.Tensor, cond: torch.Tensor | None = None) -> dict[str, float]:
        """One step on a batch (normalized L, ab and optional conditioning), then the weight average's update."""
        losses = train_step(l, ab, self.nets, lambda_l1=self.cfg.lambda_l1, accelerator=self.accelerator, cond=cond)
        if self.ema is not None:
            self.ema.update_parameters(self.generator)
        return losses

    def time_is_up(self, deadline: float) -> bool:
        """Whether the time budget is spent; every process stops at the same step."""
        up = time.monotonic() > deadline
        if self.accelerator.num_processes == 1:
            return up
        votes = self.accelerator.reduce(torch.tensor([float(up)], device=self.accelerator.device), reduction="sum")
        return bool(votes.item() > 0)

    def save(self, state: RunState) -> None:
        """Checkpoint everything a bit-exact resume needs (main process only)."""
        if not self.accelerator.is_main_process:
            return
        modules = {"generator": self.generator, "discriminator": self.discriminator, "ema": self.ema}
        scaler = self.accelerator.scaler
        self.checkpointer.save(
            state.global_step,
            modules={k: m for k, m in modules.items() if m is not None},
            state=state.to_dict() | {
                "rng": _rng_state(), "config": self.cfg.to_dict(),
                "opt_g": self.nets.opt_g.state_dict(), "opt_d": self.nets.opt_d.state_dict() if self.nets.opt_d is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
            },
        )

    def load(self, checkpoint: Checkpoint) -> RunState:
        """Restore the networks, optimizers, weight average and RNG of ``checkpoint``; returns where the loop stood."""
        folder, state = checkpoint.folder, checkpoint.state
        load_state_dict_checked(self.generator, checkpoint.weights("generator"), source=str(folder))
        if self.discriminator is not None:
            if not checkpoint.has("discriminator"):
                raise UserError(f"{folder} is a checkpoint of a pretrain run; it cannot resume --stage gan")
            load_state_dict_checked(self.discriminator, checkpoint.weights("discriminator"), source=str(folder))
            self.nets.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            if checkpoint.has("ema"):
                load_state_dict_checked(self.ema, checkpoint.weights("ema"), source=str(folder))
            else:
                log.warning("%s has no weight average; --ema starts averaging from the resumed weights", folder.name)
        self.nets.opt_g.load_state_dict(state["opt_g"])
        if self.accelerator.scaler is not None and state.get("scaler"):
            self.accelerator.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        run_state = RunState.from_dict(state)
        log.info("resuming %s from %s (epoch %d, step %d)", self.cfg.out, folder.name, run_state.epoch + 1, run_state.step_in_epoch)
        return run_state

    def publish(self, state: RunState) -> None:
        """Write the inference artifact ``model.safetensors`` + ``model.json`` (main process only)."""
        if self.accelerator.is_main_process:
            training = _provenance(self.cfg, state.epoch, self.encoder_origin) | {"photos_seen": state.global_step * self.photos_per_step}
            save_pretrained(self.published, self.cfg.out, size=self.cfg.size, training=training)


def _init_generator(generator: Generator, cfg: TrainConfig) -> str | None:
    """Load ``--init-from`` or the encoder's pretrained weights; returns where the encoder's
    weights ultimately came from (recorded in model.json so later users can tell)."""
    if cfg.init_from is not None:
        weights, meta = read_model_json(cfg.init_from)
        spec = generator_spec(generator)
        source_spec = complete_spec(meta["generator"], meta.get("config", {}))
        source_cond = source_spec["config"].get("cond_channels", 0)
        # A model without (or with fewer) conditioning channels is widened with zero kernels:
        # the run starts out computing exactly what it computed.
        widen = source_cond < generator.cond_channels
        if source_spec | {"config": source_spec["config"] | {"cond_channels": generator.cond_channels}} != spec:
            raise UserError(
                f"--init-from {cfg.init_from} is a {meta['generator']} {meta.get('config')} model, "
                f"but this run trains {spec['generator']} {spec['config']}"
            )
        if not widen and source_cond != generator.cond_channels:
            raise UserError(f"--init-from {cfg.init_from} takes {source_cond} conditioning channels; this run trains {generator.cond_channels}")
        state = read_weights(weights)
        if widen:
            state = add_cond_channels(state, generator, source=str(weights))
        load_state_dict_checked(generator, state, source=str(weights))
        log.info("generator initialized from %s%s", weights, " (hint channels added, starting at zero)" if widen else "")
        return meta.get("training", {}).get("encoder_weights")
    if generator.has_pretrained_encoder and cfg.encoder_weights:
        generator.load_encoder_weights(cfg.encoder_weights)
        return cfg.encoder_weights
    return None


def _input_kernels(generator: Generator) -> list[nn.Parameter]:
    """The kernels that read the generator's stacked input (L* and the conditioning channels)."""
    return [p for name, p in generator.named_parameters()
            if name.endswith("weight") and p.dim() == 4 and p.shape[1] == generator.in_channels
            and name.split(".")[0] not in generator.cond_modules]


def _freeze_all_but_hint_paths(generator: Generator) -> None:
    """Train only what hints flow through: the conditioning-only modules and the slices of the
    input kernels that read the conditioning channels. The L* slice gets no gradient (Adam then
    never moves it), so with no hints the network computes exactly what it did."""
    generator.requires_grad_(False).eval()
    for name in generator.cond_modules:
        getattr(generator, name).requires_grad_(True)
    for kernel in _input_kernels(generator):
        kernel.requires_grad_(True)
        keep = torch.ones_like(kernel)
        keep[:, : generator.in_channels - generator.cond_channels] = 0
        kernel.register_hook(lambda grad, keep=keep: grad * keep)


def _param_groups(generator: Generator, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The generator's trainable parameters for Adam: the conditioning-only modules (new,
    zero-initialized layers such as the hint paths; with ``freeze_base`` also the input kernels,
    of which only the zero-initialized hint slices move) learn ``cond_lr_scale`` times faster
    than the rest, the usual treatment of new layers fine-tuned on a pretrained network."""
    fresh = {id(p) for p in _input_kernels(generator)} if cfg.freeze_base else set()
    new, rest = [], []
    for name, parameter in generator.named_parameters():
        if parameter.requires_grad:
            (new if name.split(".")[0] in generator.cond_modules or id(parameter) in fresh else rest).append(parameter)
    groups: list[dict[str, Any]] = [{"params": rest}] if rest else []
    if new:
        groups.append({"params": new, "lr": cfg.learning_rate * cfg.cond_lr_scale})
    return groups


def _provenance(cfg: TrainConfig, epochs: int, encoder_origin: str | None) -> dict[str, Any]:
    return {
        "stage": cfg.stage,
        "epochs": epochs,
        "size": cfg.size,
        "data": str(cfg.data),
        "encoder_weights": encoder_origin,
        "init_from": str(cfg.init_from) if cfg.init_from else None,
        "colorgan_version": __version__,
    }


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
