"""How a run's networks start: the generator from ``--init-from`` (widened with hint channels or a
color head where the run adds them) or from its encoder's ImageNet weights, the critic from the
one saved beside that model, and, for an adapter run (``--freeze-base``), which layers train.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorgan.errors import UserError
from colorgan.model.artifact import load_state_dict_checked, read_weights
from colorgan.model.files import CRITIC_NAME, read_model_json, resolve_model
from colorgan.networks import Generator, PatchGAN, add_cond_channels, complete_spec, load_critic
from colorgan.training.config import TrainConfig

log = logging.getLogger(__name__)


def init_generator(generator: Generator, cfg: TrainConfig) -> str | None:
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

def init_critic(cfg: TrainConfig) -> PatchGAN:
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

def input_kernels(generator: Generator) -> list[nn.Parameter]:
    """The kernels that read the generator's stacked input (L* and the conditioning channels)."""
    return [p for name, p in generator.named_parameters()
            if name.endswith("weight") and p.dim() == 4 and p.shape[1] == generator.in_channels
            and name.split(".")[0] not in generator.cond_modules]

def freeze_all_but_new_layers(generator: Generator, *, hints: bool) -> None:
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
    for kernel in input_kernels(generator):
        kernel.requires_grad_(True)
        keep = torch.ones_like(kernel)
        keep[:, : generator.in_channels - generator.cond_channels] = 0
        kernel.register_hook(lambda grad, keep=keep: grad * keep)

def param_groups(generator: Generator, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The generator's trainable parameters for Adam: the conditioning-only modules (new,
    zero-initialized layers such as the hint paths; with ``freeze_base`` also the input kernels,
    of which only the zero-initialized hint slices move) learn ``cond_lr_scale`` times faster
    than the rest, the usual treatment of new layers fine-tuned on a pretrained network."""
    fresh = {id(p) for p in input_kernels(generator)} if cfg.freeze_base else set()
    new, rest = [], []
    for name, parameter in generator.named_parameters():
        if parameter.requires_grad:
            added = name.split(".")[0] in (*generator.cond_modules, *generator.head_modules)
            (new if added or id(parameter) in fresh else rest).append(parameter)
    groups: list[dict[str, Any]] = [{"params": rest}] if rest else []
    if new:
        groups.append({"params": new, "lr": cfg.learning_rate * cfg.cond_lr_scale})
    return groups
