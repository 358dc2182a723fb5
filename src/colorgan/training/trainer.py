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
from ..model_files import CRITIC_NAME
from ..models.color_classes import color_loss, rebalancing_weights
from ..models import (
    Generator,
    PatchGAN,
    add_cond_channels,
    build_generator,
    complete_spec,
    load_critic,
    load_state_dict_checked,
    read_model_json,
    read_weights,
    resolve_model,
    save_critic,
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
        if cfg.freeze_base:  # an adapter: the model stays exactly --init-from, BatchNorm statistics included
            _freeze_all_but_new_layers(generator, hints=cfg.hints and not cfg.color_head)
        discriminator = _init_critic(cfg) if cfg.gan else None
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
        if cfg.color_head:
            self.nets.lambda_color = cfg.lambda_color
        # the plain modules (no DDP wrapper): what checkpoints hold and the weight average follows
        self.generator: Generator = accelerator.unwrap_model(self.nets.generator)
        self.discriminator: nn.Module | None = None if discriminator is None else accelerator.unwrap_model(discriminator)
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
                    if cfg.ema else None)
        self.photos_per_step = cfg.batch_size * accelerator.num_processes

    def set_color_prior(self, prior: torch.Tensor) -> None:
        """The training photos' color distribution (:func:`~colorgan.models.color_classes.color_prior`),
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


def _init_generator(generator: Generator, cfg: TrainConfig) -> str | None:
    """Load ``--init-from`` or the encoder's pretrained weights; returns where the encoder's
    weights ultimately came from (recorded in model.json so later users can tell)."""
    if cfg.init_from is not None:
        weights, meta = read_model_json(resolve_model(cfg.init_from))
        source = complete_spec(meta["generator"], meta.get("config", {}))["config"]
        own = generator.config
        # What a run may add to the model it starts from: hint channels (zero kernels) and a color
        # head (new layers); either way the run starts out computing exactly what the model computed.
        # How a color head shapes the answer is a setting of the published model, not of its weights.
        grown = ("cond_channels", "color_head", *generator.inference_options)
        if {k: v for k, v in source.items() if k not in grown} != {k: v for k, v in own.items() if k not in grown}:
            raise UserError(
                f"--init-from {cfg.init_from} is a {meta['generator']} {meta.get('config')} model, "
                f"but this run trains {generator.registry_name} {own}"
            )
        source_cond, widen = source.get("cond_channels", 0), source.get("cond_channels", 0) < generator.cond_channels
        if not widen and source_cond != generator.cond_channels:
            raise UserError(f"--init-from {cfg.init_from} is a hint-capable model ({source_cond} hint channels) and this run "
                            "trains one without hints: add --hints (a model cannot lose its hint channels)")
        if source.get("color_head") and not own.get("color_head"):
            raise UserError(f"--init-from {cfg.init_from} has a color head: add --color-head (a model cannot lose it)")
        state = read_weights(weights)
        if widen:
            state = add_cond_channels(state, generator, source=str(weights))
        fresh = {k: v for k, v in generator.state_dict().items() if k.split(".")[0] in generator.head_modules and k not in state}
        load_state_dict_checked(generator, state | fresh, source=str(weights))
        added = [what for what, new in (("hint channels, starting at zero", widen), ("a new color head", bool(fresh))) if new]
        log.info("generator initialized from %s%s", weights, f" ({'; '.join(added)})" if added else "")
        return meta.get("training", {}).get("encoder_weights")
    if generator.has_pretrained_encoder and cfg.encoder_weights:
        generator.load_encoder_weights(cfg.encoder_weights)
        return cfg.encoder_weights
    return None


def _init_critic(cfg: TrainConfig) -> PatchGAN:
    """Stage 2's PatchGAN: the critic that trained ``--init-from`` (its ``critic.safetensors``) where
    there is one of the asked-for kind, so the adversarial game goes on; else (or with
    ``--fresh-critic``) a new one."""
    critic_file = _critic_beside(cfg.init_from) if cfg.init_from is not None and not cfg.fresh_critic else None
    critic = None
    if critic_file is not None:
        critic = load_critic(critic_file)
        if critic.config["norm"] != cfg.d_norm:
            log.info("%s is a %s-norm critic and this run asks --d-norm %s: starting a new critic", critic_file,
                     critic.config["norm"], cfg.d_norm)
            critic = None
        else:
            log.info("critic continued from %s", critic_file)
    return (critic or PatchGAN(norm=cfg.d_norm)).to(memory_format=torch.channels_last)


def _critic_beside(model: Path) -> Path | None:
    weights, _ = read_model_json(resolve_model(model))
    critic = weights.with_name(CRITIC_NAME)
    return critic if critic.is_file() else None


def _input_kernels(generator: Generator) -> list[nn.Parameter]:
    """The kernels that read the generator's stacked input (L* and the conditioning channels)."""
    return [p for name, p in generator.named_parameters()
            if name.endswith("weight") and p.dim() == 4 and p.shape[1] == generator.in_channels
            and name.split(".")[0] not in generator.cond_modules]


def _freeze_all_but_new_layers(generator: Generator, *, hints: bool) -> None:
    """Train only the layers an adapter run trains on a model: its color head, or with ``hints``
    what hints flow through (the conditioning-only modules and the slices of the input kernels
    that read the conditioning channels). The rest gets no gradient (Adam then never moves it),
    so with no hints the network computes exactly what it did."""
    generator.requires_grad_(False).eval()
    for name in generator.head_modules:
        if getattr(generator, name, None) is not None:
            getattr(generator, name).requires_grad_(True)
    if not hints:
        return
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
            added = name.split(".")[0] in (*generator.cond_modules, *generator.head_modules)
            (new if added or id(parameter) in fresh else rest).append(parameter)
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
