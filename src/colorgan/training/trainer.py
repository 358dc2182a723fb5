"""One run's networks around an accelerate ``Accelerator``.

Modeled on lucidrains' ``Trainer`` wrapped around ``Accelerator``: :class:`Trainer` holds the
generator, the PatchGAN (stage 2), their optimizers, the weight average and the accelerator
(how each network starts: :mod:`.start`; the step itself: :mod:`.step`), and offers
``train_step``, ``save``, ``load`` and ``publish``, so the loop in
:func:`colorgan.training.loop.run_training` never touches a network or a file format itself. Through
accelerate the same code trains on the CPU, one or several GPUs or nodes, with mixed
precision where the hardware computes it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from colorgan import __version__
from colorgan.errors import UserError
from colorgan.model.artifact import load_state_dict_checked, save_pretrained
from colorgan.model.files import CRITIC_NAME
from colorgan.networks import Generator, build_generator, save_critic
from colorgan.networks.color_classes import rebalancing_weights
from colorgan.training.checkpoint import Checkpoint, Checkpointer, RunState
from colorgan.training.config import TrainConfig
from colorgan.training.data import EpochSampler, PhotoDataset, collate, folder_balance_weights
from colorgan.training.losses import GANLoss, PerceptualLoss
from colorgan.training.start import freeze_all_but_new_layers, init_critic, init_generator, param_groups
from colorgan.training.step import Nets, train_step

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
        # a short last batch is kept on tiny sets, but never a batch of one photo (a BatchNorm over
        # 1×1 features fails on it)
        drop_last=len(paths) >= 2 * cfg.batch_size or len(paths) % cfg.batch_size == 1,
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
        self.encoder_origin = init_generator(generator, cfg)
        if cfg.freeze_base:  # an adapter: the model stays exactly --init-from, BatchNorm statistics included
            freeze_all_but_new_layers(generator, hints=cfg.hints and not cfg.color_head)
        discriminator = init_critic(cfg) if cfg.gan else None
        generator.to(memory_format=torch.channels_last)
        opt_g = torch.optim.Adam(param_groups(generator, cfg), lr=cfg.learning_rate, betas=cfg.betas)
        if discriminator is None:
            self.nets = Nets(*accelerator.prepare(generator, opt_g))
        else:
            opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.learning_rate, betas=cfg.betas)
            generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
            self.nets = Nets(generator, opt_g, discriminator, opt_d, GANLoss(mode=cfg.gan_mode))
        if cfg.lambda_perceptual:
            self.nets.perceptual = PerceptualLoss(weight=cfg.lambda_perceptual).to(accelerator.device, memory_format=torch.channels_last)
        if cfg.color_head:
            self.nets.lambda_color = cfg.lambda_color
        # the plain modules (no DDP wrapper): what checkpoints hold and the weight average follows
        self.generator: Generator = accelerator.unwrap_model(self.nets.generator)
        self.discriminator: nn.Module | None = None if discriminator is None else accelerator.unwrap_model(discriminator)
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
                    if cfg.ema else None)
        self.photos_per_step = cfg.batch_size * accelerator.num_processes

    def set_color_prior(self, prior: torch.Tensor) -> None:
        """The training photos' color distribution (:func:`~colorgan.networks.color_classes.color_prior`),
        which the color head's loss is rebalanced by."""
        self.nets.color_weights = rebalancing_weights(prior + 1.0).to(self.accelerator.device)  # +1: no bin weighs infinitely

    @property
    def published(self) -> Generator:
        """The generator that is validated and published: the weight average with ``--ema``."""
        return self.ema.module if self.ema is not None else self.generator

    def all_ranks_have_photos(self, photos: int) -> bool:
        """Whether every process has photos for this step: every rank must take the step, or none."""
        if self.accelerator.num_processes > 1:
            photos = int(self.accelerator.gather(torch.tensor([photos], device=self.accelerator.device)).min())
        return photos > 0

    def train_step(self, l: torch.Tensor, ab: torch.Tensor, cond: torch.Tensor | None = None, *,
                   step: int = 0) -> dict[str, float]:
        """Global step ``step`` on a batch (normalized L, ab and optional conditioning), then the weight
        average's update. The first ``--critic-warmup`` steps train only the critic."""
        warming = step < self.cfg.critic_warmup
        losses = train_step(l, ab, self.nets, lambda_l1=self.cfg.lambda_l1, accelerator=self.accelerator, cond=cond,
                            train_generator=not warming)
        if self.ema is not None and not warming:
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
        """Restore the networks, optimizers, weight average and RNG of ``checkpoint``; returns where the loop stood.

        A state that lacks what a resume needs, or holds it in the wrong shape (a hand-edited or
        foreign ``state.pt``), is a :class:`UserError`.
        """
        try:
            return self._load(checkpoint)
        except KeyError as exc:
            raise UserError(f"{checkpoint.folder} cannot be resumed: its state has no {exc}") from None
        except (TypeError, ValueError) as exc:
            raise UserError(f"{checkpoint.folder} cannot be resumed: its state is damaged ({str(exc).splitlines()[0]})") from None

    def _load(self, checkpoint: Checkpoint) -> RunState:
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
        """Write the inference artifact ``model.safetensors`` + ``model.json`` and, in stage 2, the
        critic beside it (``critic.safetensors``, for a later GAN run) (main process only)."""
        if self.accelerator.is_main_process:
            training = _provenance(self.cfg, state.epoch, self.encoder_origin) | {"photos_seen": state.global_step * self.photos_per_step}
            if self.discriminator is not None:
                save_critic(self.discriminator, self.cfg.out / CRITIC_NAME)
            save_pretrained(self.published, self.cfg.out, size=self.cfg.size, training=training)

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
