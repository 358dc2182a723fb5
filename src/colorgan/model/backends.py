"""The runtimes a model runs on, behind one small factory: :func:`load_backend` picks ONNX Runtime
(no PyTorch needed; the bundled default ships its ``model.onnx``) or PyTorch (the ``train``
extra, any device), fp32 or int8 (a folder's ``model.int8.onnx``, where it pays), and recognizes
a stale ONNX file (exported from other weights).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from colorgan.errors import UserError, require_extra
from colorgan.model.files import INT8_NAME, ONNX_NAME, onnx_beside, read_model_json, weights_sha256
from colorgan.model.onnx import OnnxModel
from colorgan.model.session import cpu_flags

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "int8")
# The /proc/cpuinfo flags of int8 dot products (VNNI, AMX), on which ONNX Runtime's int8
# convolutions beat its fp32 ones (1.7x at 256 px, batch 1: benchmarks/RESULTS.md, issue 31).
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})

# Normalized L* (B, 1, S, S) and, for a model with conditioning channels, those channels
# (B, cond_channels, S, S) or None ("no conditioning"), float32 NumPy -> normalized ab
# (B, 2, S, S) float32 NumPy. The ONNX Runtime and PyTorch backends both have this shape.
Predictor = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def check_device_name(device: str) -> str:
    """The device kind (``auto``, ``cpu``, ``cuda``, ``mps``) of a name, ``cuda:N`` included; unknown names are a :class:`UserError`."""
    kind, colon, index = device.partition(":")
    if kind not in DEVICES or (colon and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)} or cuda:N")
    return kind


def resolve_device(device: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; ``cuda:N`` names one GPU. An unknown name or an
    accelerator this machine lacks is a :class:`UserError`. Needs PyTorch."""
    kind = check_device_name(device)
    require_extra("train", f"--device {device}")
    import torch

    index = device.partition(":")[2]
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if kind == "auto":
        kind = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available[kind] or (index and int(index) >= torch.cuda.device_count()):
        raise UserError(f"device {device} is not available on this machine")
    return torch.device(device if index else kind)



@dataclass(frozen=True)
class Backend:
    """A loaded model: its predictor, its model.json content, and what the Colorizer needs to know of it
    (``generator``: the PyTorch network where there is one, for saving)."""

    predict: Predictor
    meta: dict[str, Any]
    size_multiple: int
    cond_channels: int
    generator: nn.Module | None = None


def load_backend(path: Path, *, device: str = "auto", backend: str = "auto", precision: str = "auto") -> Backend:
    """The model at ``path`` (a folder, its weights or an .onnx file) on its runtime.

    ``"onnx"``: ONNX Runtime on the CPU, from the .onnx file, the folder's up-to-date ONNX file,
    or the weights exported in memory (needs PyTorch). ``"torch"``: the safetensors weights on
    ``device``. ``"auto"``: ONNX Runtime where there is an up-to-date ONNX file and the device
    is the CPU or ``auto``, else PyTorch. ``precision`` picks a folder's ONNX file:
    :func:`onnx_file_of`.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    kind = check_device_name(device)
    if precision == "int8" and (backend == "torch" or kind in ("cuda", "mps")):
        raise UserError("--precision int8 runs a model.int8.onnx on ONNX Runtime, on the CPU; "
                        f"it cannot go with --backend {backend} --device {device}")
    if backend == "auto" and kind in ("auto", "cpu"):
        model = _onnx_file(path, precision)
        if model is not None:
            return _onnx_backend(model)
    if backend == "onnx":
        if kind in ("cuda", "mps"):
            raise UserError(f"the onnx backend runs on the CPU; use --backend torch for --device {device}")
        return _onnx_of_weights(path, precision)
    if path.suffix == ".onnx":
        raise UserError(f"{path} is an ONNX model: run it with --backend onnx")
    if backend == "torch" or kind in ("cuda", "mps"):
        require_extra("train", "--backend torch" if backend == "torch" else f"--device {device}")
    else:
        require_extra("train", f"{path} has no up-to-date {ONNX_NAME}, so running it")
    from colorgan.model.artifact import load_pretrained

    torch_device = resolve_device(device)
    generator, meta = load_pretrained(path, map_location=torch_device)
    return Backend(torch_predictor(generator, torch_device), meta, generator.size_multiple, generator.cond_channels, generator)


def int8_pays() -> bool:
    """Whether this CPU has int8 dot-product instructions (:data:`INT8_FLAGS`), where an int8 model
    runs faster (on others, and where the flags cannot be read, it was not measured)."""
    return bool(cpu_flags() & INT8_FLAGS)


def _onnx_file(path: Path, precision: str) -> OnnxModel | None:
    """The ONNX model of ``path`` for ``precision``: an .onnx file itself (refused if it is not of
    an explicit ``precision``); else the folder's up-to-date ``model.int8.onnx`` for ``"int8"``,
    and for ``"auto"`` where :func:`int8_pays`; else its up-to-date ``model.onnx``, if any."""
    if path.suffix == ".onnx":
        model = OnnxModel.load(path)
        if precision != "auto" and model.precision != precision:
            raise UserError(f"{path} is a {model.precision} model, not {precision}: run it without --precision, "
                            "or give the model's folder")
        return model
    if precision == "int8" or (precision == "auto" and int8_pays()):
        model = _current_onnx(path, INT8_NAME)
        if model is not None:
            return model
        if precision == "int8":
            raise UserError(f"{path} has no up-to-date {INT8_NAME}; `colorgan export int8 --model {path}` writes one")
    return _current_onnx(path, ONNX_NAME)


def _onnx_backend(model: OnnxModel, generator: nn.Module | None = None) -> Backend:
    return Backend(model, model.meta, model.size_multiple, model.cond_channels, generator)


def _onnx_of_weights(path: Path, precision: str) -> Backend:
    """The onnx backend of a model: its ONNX file for ``precision`` (:func:`_onnx_file`), or its
    weights exported in memory (which needs PyTorch)."""
    model = _onnx_file(path, precision)
    if model is not None:
        return _onnx_backend(model)
    require_extra("train", f"{path} has no up-to-date {ONNX_NAME} (`colorgan export onnx` writes one), so exporting it")
    from colorgan.model.artifact import load_pretrained
    from colorgan.model.export import in_memory

    generator, meta = load_pretrained(path)
    return _onnx_backend(in_memory(generator, meta), generator)


def torch_predictor(generator: nn.Module, device: torch.device) -> Predictor:
    """The :data:`Predictor` of a PyTorch generator on ``device``."""
    import torch

    def predict(l_norm: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
        with torch.inference_mode():
            ab = generator(torch.from_numpy(l_norm).to(device), None if cond is None else torch.from_numpy(cond).to(device))
            return ab.float().cpu().numpy()

    return predict


def _current_onnx(path: Path, name: str) -> OnnxModel | None:
    """The model's ONNX file ``name``, loaded, if it was exported from the weights beside it (else
    None, with a warning for a stale one: the weights changed since)."""
    onnx = onnx_beside(path, name)
    if onnx is None:
        return None
    weights, _ = read_model_json(path)
    try:
        model = OnnxModel.load(onnx)
    except UserError as exc:
        log.warning("ignoring %s: %s", onnx, exc)
        return None
    if model.weights_sha256 != weights_sha256(weights):
        log.warning("%s was not exported from %s (the weights changed since); ignoring it. "
                    "`colorgan export %s --model %s` brings it up to date", onnx, weights,
                    "int8" if name == INT8_NAME else "onnx", path)
        return None
    return model
