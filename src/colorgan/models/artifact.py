"""The model artifact: ``model.safetensors`` + ``model.json``, where models live, and how they load.

The artifact is what ``colorgan colorize`` and :class:`colorgan.Colorizer` load: the
generator's weights in safetensors and, beside them, a JSON file with the architecture
(the generator's captured keyword arguments), the color normalization and the training
provenance. No training code and no pickle is needed to load it, and ``model.json`` is
checked before anything is built from it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..color import AB_SCALE, L_SCALE
from ..errors import UserError
from ..files import atomic_output, write_report
from .registry import Generator, build_generator, generator_spec

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "model.json"
FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).parent.parent / "assets" / "models"
DEFAULT_MODEL = "default"

COLOR_SPEC = {"space": "CIELAB D65", "input": f"L/{L_SCALE:g}-1", "output": f"ab/{AB_SCALE:g}", "activation": "tanh"}


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package."""
    return sorted(p.parent.name for p in MODELS_DIR.glob(f"*/{WEIGHTS_NAME}"))


def resolve_model(name_or_path: str | Path | None) -> Path:
    """A model file or folder on disk, or a bundled model's folder; ``None`` means the bundled default."""
    name = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    if name_or_path is not None and Path(name).exists():
        return Path(name)
    if name in bundled_models():
        return MODELS_DIR / name
    if Path(name).suffix or "/" in name or "\\" in name:
        raise UserError(f"no model file at {name}")
    if name_or_path is None:
        raise UserError(
            "no model given and none is bundled yet: train one with `colorgan train` and pass its "
            "model.safetensors with --model PATH"
        )
    bundled = ", ".join(bundled_models()) or "none"
    raise UserError(f"no model file or bundled model named {name!r} (bundled: {bundled})")


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


def read_model_json(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Locate an artifact (its folder, its ``.safetensors`` or its ``model.json``) and read its JSON."""
    path = Path(path)
    weights = path / WEIGHTS_NAME if path.is_dir() else path.with_suffix(".safetensors")
    config = weights.with_name(CONFIG_NAME)
    if not weights.is_file():
        raise UserError(f"no model weights at {weights}")
    if not config.is_file():
        raise UserError(f"{weights} has no {CONFIG_NAME} beside it describing its architecture")
    try:
        meta = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {config}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != "colorgan" or "generator" not in meta:
        raise UserError(f"{config} is not a colorgan model description")
    problem = _model_json_problem(meta)
    if problem:
        raise UserError(f"{config}: {problem}")
    return weights, meta


# Bounds that no real colorizer comes near; past them a number is a damaged or hostile file,
# which must get an error rather than an attempt to allocate terabytes.
MAX_TRAINING_SIZE = 8192
MAX_CONFIG_NUMBER = 4096


def _model_json_problem(meta: dict[str, Any]) -> str | None:
    """What makes a parsed model.json unusable, or None: the format version, the color
    normalization the code implements, a sane training size and sane architecture numbers."""
    version = meta.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        return f"format_version {version!r} is not one this colorgan reads (1 to {FORMAT_VERSION}); upgrade colorgan"
    if meta.get("color") != COLOR_SPEC:
        return f"its color normalization {meta.get('color')!r} is not the one colorgan implements ({COLOR_SPEC})"
    size = meta.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_TRAINING_SIZE:
        return f"size must be the training resolution, a whole number from 1 to {MAX_TRAINING_SIZE}, got {size!r}"
    if not isinstance(meta.get("training", {}), dict):
        return "training must be a mapping (the run's provenance)"
    config = meta.get("config", {})
    if not isinstance(config, dict):
        return "config must be a mapping of the generator's keyword arguments"
    for key, value in config.items():
        numbers = value if isinstance(value, list) else [value]
        if any(isinstance(n, int | float) and not isinstance(n, bool) and not 0 <= n <= MAX_CONFIG_NUMBER for n in numbers):
            return f"config value {key}={value!r} is out of range (numbers from 0 to {MAX_CONFIG_NUMBER})"
    return None


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
