"""The :class:`Colorizer`: a trained generator (PyTorch or ONNX Runtime) applied to whole photos.

The model sees the photo's L* resized to size×size and predicts ab there; the photo keeps
its own full-resolution L*, so the output has the input's exact geometry and detail (see
:mod:`colorgan.photo`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .errors import UserError
from .photo import Photo, read_photo

MODELS_DIR = Path(__file__).parent / "assets" / "models"
DEFAULT_MODEL = "default"
BACKENDS = ("torch", "onnx")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Normalized L* (B, 1, S, S) on the CPU -> normalized ab (B, 2, S, S) on the CPU.
Predictor = Callable[[torch.Tensor], torch.Tensor]


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package."""
    return sorted(p.parent.name for p in MODELS_DIR.glob("*/model.safetensors"))


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


def resolve_device(device: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; ``cuda:N`` names one GPU. An unknown name or an
    accelerator this machine lacks is a :class:`UserError`."""
    kind, colon, index = device.partition(":")
    if kind not in DEVICES or (colon and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)} or cuda:N")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if kind == "auto":
        kind = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available[kind] or (index and int(index) >= torch.cuda.device_count()):
        raise UserError(f"device {device} is not available on this machine")
    return torch.device(device if index else kind)


class Colorizer:
    """Colorize photos at full resolution with a trained generator.

    Example::

        from colorgan import Colorizer

        colorizer = Colorizer.from_pretrained("runs/final/model.safetensors")
        colorizer.colorize("grandma.jpg").save("grandma_color.png")
    """

    def __init__(
        self,
        *,
        predict: Predictor,
        size: int,
        size_multiple: int,
        meta: dict[str, Any],
        generator: nn.Module | None = None,
    ) -> None:
        """Prefer :meth:`from_pretrained`. ``generator`` (when known) is what :meth:`save_pretrained` writes."""
        self._predict = predict
        self.size = size
        self.size_multiple = size_multiple
        self.meta = meta
        self._generator = generator

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path | None = None, *, device: str = "auto", backend: str = "torch"
    ) -> Colorizer:
        """Load a model: a ``model.safetensors`` (with its ``model.json``), its folder, an exported
        ``.onnx`` file, or the name of a bundled model (``None``: the bundled default).

        ``backend="onnx"`` runs the model with ONNX Runtime on the CPU (a safetensors model is
        exported in memory first).

        Example::

            colorizer = Colorizer.from_pretrained("model.onnx", backend="onnx")
        """
        from .models import load_pretrained

        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        path = resolve_model(name_or_path)
        if backend == "onnx":
            if device in ("cuda", "mps"):
                raise UserError(f"the onnx backend runs on the CPU; use --backend torch for --device {device}")
            resolve_device(device)  # rejects unknown names
            from .export import OnnxModel

            if path.suffix == ".onnx":
                model = OnnxModel.load(path)
                return cls(predict=model, size=model.meta["size"], size_multiple=model.size_multiple, meta=model.meta)
            generator, meta = load_pretrained(path)
            model = OnnxModel.from_generator(generator, meta)
            return cls(predict=model, size=meta["size"], size_multiple=model.size_multiple, meta=meta, generator=generator)
        if path.suffix == ".onnx":
            raise UserError(f"{path} is an ONNX model: run it with --backend onnx")
        torch_device = resolve_device(device)
        generator, meta = load_pretrained(path, map_location=torch_device)
        return cls(
            predict=_torch_predictor(generator, torch_device),
            size=meta["size"],
            size_multiple=generator.size_multiple,
            meta=meta,
            generator=generator,
        )

    def check_size(self, size: int | None) -> int:
        """The render size to use: ``size`` if the model supports it, else the model's training size."""
        if size is None:
            return self.size
        if size <= 0 or size % self.size_multiple:
            raise UserError(
                f"--size must be a positive multiple of {self.size_multiple} for this "
                f"{self.meta['generator']} model, got {size}"
            )
        return size

    def predict_ab(self, l_norm: torch.Tensor) -> torch.Tensor:
        """The raw model: normalized L* (B, 1, S, S) -> normalized ab (B, 2, S, S), both on the CPU."""
        return self._predict(l_norm)

    def colorize(self, image: Any, *, size: int | None = None) -> Image.Image:
        """Colorize one photo (a path, a PIL image or a NumPy array); returns RGB (RGBA if it had alpha).

        The output has the input's size and L*; ``size`` is the resolution the model sees
        (default, and usually best: its training size; larger sizes give finer color edges but can over-saturate).

        Example::

            colorizer.colorize("scan.tif", size=512).save("scan_color.png")
        """
        return self.colorize_batch([image], size=size)[0]

    def colorize_batch(self, images: Iterable[Any], *, size: int | None = None) -> list[Image.Image]:
        """Colorize several photos, running the model on them as one batch.

        Example::

            outputs = colorizer.colorize_batch(["a.jpg", "b.png"])
        """
        size = self.check_size(size)
        photos: list[Photo] = [read_photo(image) for image in images]
        if not photos:
            return []
        with torch.inference_mode():
            ab = self.predict_ab(torch.stack([photo.model_input(size) for photo in photos]))
            return [photo.recombine(ab_one) for photo, ab_one in zip(photos, ab, strict=True)]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model as ``model.safetensors`` + ``model.json`` into ``directory``; returns the weights path."""
        from .models import save_pretrained

        if self._generator is None:
            raise UserError("this Colorizer was loaded from an .onnx file and has no PyTorch weights to save")
        return save_pretrained(self._generator, directory, size=self.size, training=self.meta.get("training"))


def _torch_predictor(generator: nn.Module, device: torch.device) -> Predictor:
    def predict(l_norm: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return generator(l_norm.to(device)).float().cpu()

    return predict
