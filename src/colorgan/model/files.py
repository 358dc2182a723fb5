"""A model on disk, without PyTorch: where models live, which one ``--model`` names, and the
``model.json`` that describes each.

A model folder holds ``model.json`` (architecture, color normalization, provenance) beside
``model.safetensors`` (the weights, for PyTorch: training, fine-tuning, ``--backend torch``)
and, for inference without PyTorch, ``model.onnx`` (written from the weights by ``colorgan
export``, which records the weights' hash in it, so a stale ONNX file is recognized). A model
that a GAN run trained may also keep its critic, ``critic.safetensors``, for the next run.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from colorgan.color import AB_SCALE, L_SCALE
from colorgan.errors import UserError, parse_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "model.json"
ONNX_NAME = "model.onnx"
# The same network with int8 convolutions (``colorgan export int8``), for CPUs where that is faster.
INT8_NAME = "model.int8.onnx"
# The PatchGAN that trained the model, kept beside it so a later GAN run continues the
# adversarial game instead of facing a new critic (training only; not part of an installed package).
CRITIC_NAME = "critic.safetensors"
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


# Bounds that no real colorizer comes near; past them a number is a damaged or hostile file,
# which must get an error rather than an attempt to allocate terabytes.
MAX_TRAINING_SIZE = 8192
MAX_CONFIG_NUMBER = 4096


def model_json_problem(meta: dict[str, Any]) -> str | None:
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
        text = config.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {config}: {exc.strerror or exc}") from None
    meta = parse_json(text, source=str(config))
    if not isinstance(meta, dict) or meta.get("format") != "colorgan" or "generator" not in meta:
        raise UserError(f"{config} is not a colorgan model description")
    problem = model_json_problem(meta)
    if problem:
        raise UserError(f"{config}: {problem}")
    return weights, meta


def onnx_beside(path: Path, name: str = ONNX_NAME) -> Path | None:
    """The ONNX file ``name`` (``model.onnx``, or :data:`INT8_NAME`) of a model folder or of the
    weights file ``path``, if there is one."""
    folder = path if path.is_dir() else path.parent
    onnx = folder / name
    return onnx if path.suffix in ("", ".safetensors", ".json") and onnx.is_file() else None


@functools.cache
def _file_sha256(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(weights: Path) -> str:
    """The SHA-256 of a weights file (cached per file version): what ``model.onnx`` records of its source."""
    stat = weights.stat()
    return _file_sha256(weights.resolve(), stat.st_mtime_ns, stat.st_size)


def copy_model(weights: Path, folder: Path, *, with_onnx: bool = True) -> Path:
    """Copy a model's files (its weights, ``model.json``, and with ``with_onnx`` its ``model.onnx``
    and ``model.int8.onnx`` where they are beside them) into ``folder`` under the standard names,
    each atomically, the weights first (a ``model.json`` always has its weights); returns the new
    weights' path. No PyTorch needed: a model on disk is files."""
    import shutil

    from colorgan.files.atomic import atomic_output

    folder = Path(folder)
    copies = [(weights, WEIGHTS_NAME), (weights.with_name(CONFIG_NAME), CONFIG_NAME)]
    for name in (ONNX_NAME, INT8_NAME) if with_onnx else ():
        if (onnx := onnx_beside(weights, name)) is not None:
            copies.append((onnx, name))
    for source, name in copies:
        with atomic_output(folder / name) as tmp:
            shutil.copyfile(source, tmp)
    return folder / WEIGHTS_NAME
