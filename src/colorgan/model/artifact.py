"""The model artifact in PyTorch: writing ``model.safetensors`` + ``model.json`` and building a generator from them.

The artifact is what ``colorgan colorize`` and :class:`colorgan.Colorizer` load: the
generator's weights in safetensors and, beside them, a JSON file with the architecture
(the generator's captured keyword arguments), the color normalization and the training
provenance. No training code and no pickle is needed to load it, and ``model.json`` is
checked before anything is built from it. Where models live and which one ``--model`` names
is :mod:`colorgan.model.files` (no PyTorch needed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from colorgan.errors import UserError
from colorgan.files.atomic import atomic_output, write_report
from colorgan.model.files import COLOR_SPEC, CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, read_model_json
from colorgan.networks.registry import Generator, build_generator, generator_spec

log = logging.getLogger(__name__)


def save_pretrained(
    generator: Generator,
    directory: str | Path,
    *,
    size: int,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory``; returns the weights path.

    ``size`` is the resolution the model was trained at (the default render size).
    Files are written under temporary names and renamed, so readers never see half a file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in generator.state_dict().items()}
    meta = {
        "format": "colorgan",
        "format_version": FORMAT_VERSION,
        **generator_spec(generator),
        "size": size,
        "color": COLOR_SPEC,
        "training": training or {},
    }
    weights = directory / WEIGHTS_NAME
    with atomic_output(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_report(directory / CONFIG_NAME, meta)  # after the weights: a model.json always has its weights
    return weights


def load_pretrained(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Rebuild a generator from its artifact; returns ``(generator in eval mode, model.json content)``."""
    weights, meta = read_model_json(path)
    try:
        generator = build_generator(meta["generator"], **meta.get("config", {}))
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        # The config is data from a file: whatever a constructor raises on it means the file is wrong.
        raise UserError(f"{weights.with_name(CONFIG_NAME)} has an invalid generator config: {exc}") from None
    state = read_weights(weights, device=map_location)
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # a diverged training run: it would paint every photo one undefined color
        raise UserError(f"{weights} holds NaN or infinite weights ({len(broken)} tensors, e.g. {broken[0]})")
    load_state_dict_checked(generator, state, source=str(weights))
    log.debug("loaded %s generator from %s", meta["generator"], weights)
    return generator.eval(), meta


def read_weights(path: str | Path, *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; an unreadable or corrupt file is a :class:`UserError`."""
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def load_state_dict_checked(module: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """``load_state_dict`` that turns an architecture mismatch into one readable :class:`UserError`."""
    own = module.state_dict()
    missing = own.keys() - state.keys()
    unexpected = state.keys() - own.keys()
    wrong = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        raise UserError(
            f"{source} does not fit this {getattr(module, 'registry_name', type(module).__name__)} architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped tensors)"
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
