"""The :class:`Colorizer`: a trained generator (PyTorch or ONNX Runtime) applied to whole photos.

The model sees the photo's L* resized to size×size and predicts ab there; the photo keeps
its own full-resolution L*, so the output has the input's exact geometry and detail (see
:mod:`colorgan.render`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from . import render
from .errors import UserError
from .hints import HINT_CHANNELS, Hint, HintError, check_hints, hint_channels
from .photo import Photo, read_photo

BACKENDS = ("torch", "onnx")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Normalized L* (B, 1, S, S) and, for a model with conditioning channels, those channels
# (B, cond_channels, S, S) or None ("no conditioning"), on the CPU -> normalized ab (B, 2, S, S)
# on the CPU. The PyTorch and ONNX Runtime backends both have this shape.
Predictor = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


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


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """Which model runs, where and how: the options shared by every job that colorizes
    (``colorize``, ``evaluate``, ``serve``), whose settings extend this class.

    ``model`` is a path or a bundled model's name (None: the bundled default).
    """

    model: str | None = None
    device: str = "auto"
    backend: str = "torch"

    def load_colorizer(self) -> Colorizer:
        return Colorizer.from_pretrained(self.model, device=self.device, backend=self.backend)


@dataclass(frozen=True, eq=False)
class PreparedPhoto:
    """A photo made ready to be colorized again and again (hint editing): decoded, with the
    model's input and the full-size L* computed once, so each colorization runs only the
    network and the recombination. Made by :meth:`Colorizer.prepare`."""

    photo: Photo  # what the result is drawn on: the photo, or its preview when one was asked for
    size: int
    model_l: torch.Tensor  # (1, size, size), normalized, from the photo at full size
    luminance: torch.Tensor  # (H, W) of ``photo``, L* in [0, 100]
    width: int  # the photo's own size, which pixel-coordinate hints refer to
    height: int


class Colorizer:
    """Colorize photos at full resolution with a trained generator, optionally guided by color hints.

    Example::

        from colorgan import Colorizer, Hint

        colorizer = Colorizer.from_pretrained("runs/final/model.safetensors")
        colorizer.colorize("grandma.jpg").save("grandma_color.png")
        colorizer.colorize("cup.jpg", hints=[Hint(x=0.41, y=0.62, color="#f2efe9")])  # the cup is white
    """

    def __init__(
        self,
        *,
        predict: Predictor,
        size: int,
        size_multiple: int,
        meta: dict[str, Any],
        cond_channels: int = 0,
        generator: nn.Module | None = None,
    ) -> None:
        """Prefer :meth:`from_pretrained`. ``generator`` (when known) is what :meth:`save_pretrained` writes."""
        self._predict = predict
        self.size = size
        self.size_multiple = size_multiple
        self.cond_channels = cond_channels
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
        from .models import load_pretrained, resolve_model

        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        path = resolve_model(name_or_path)
        if backend == "onnx":
            if device in ("cuda", "mps"):
                raise UserError(f"the onnx backend runs on the CPU; use --backend torch for --device {device}")
            resolve_device(device)  # rejects unknown names
            from .export import OnnxModel

            generator = None
            if path.suffix == ".onnx":
                model = OnnxModel.load(path)
            else:
                generator, meta = load_pretrained(path)
                model = OnnxModel.from_generator(generator, meta)
            return cls(predict=model, size=model.meta["size"], size_multiple=model.size_multiple, meta=model.meta,
                       cond_channels=model.cond_channels, generator=generator)
        if path.suffix == ".onnx":
            raise UserError(f"{path} is an ONNX model: run it with --backend onnx")
        torch_device = resolve_device(device)
        generator, meta = load_pretrained(path, map_location=torch_device)
        return cls(
            predict=torch_predictor(generator, torch_device),
            size=meta["size"],
            size_multiple=generator.size_multiple,
            meta=meta,
            cond_channels=generator.cond_channels,
            generator=generator,
        )

    def check_size(self, size: int | None) -> int:
        """The render size to use: ``size`` if the model supports it, else the model's training size."""
        if size is None:
            return self.size
        if size <= 0 or size % self.size_multiple:
            raise UserError(
                f"the render size must be a positive multiple of {self.size_multiple} for this "
                f"{self.meta['generator']} model, got {size}"
            )
        return size

    def predict_ab(self, l_norm: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The raw model: normalized L* (B, 1, S, S) -> normalized ab (B, 2, S, S), both on the CPU.

        ``cond`` (B, cond_channels, S, S) feeds a model's conditioning channels; None means none
        given (zeros), the only choice for a model without them.
        """
        if cond is not None:
            expected = (l_norm.shape[0], self.cond_channels, *l_norm.shape[2:])
            if self.cond_channels == 0:
                raise UserError("this model takes no conditioning channels")
            if tuple(cond.shape) != expected:
                raise UserError(f"conditioning must have shape {expected}, got {tuple(cond.shape)}")
        return self._predict(l_norm, cond)

    @property
    def takes_hints(self) -> bool:
        """Whether this model has the hint channels of :mod:`colorgan.hints` (a hint-capable model)."""
        return self.cond_channels == HINT_CHANNELS

    def require_hints(self) -> None:
        """Refuse hints for a model without hint channels (a :class:`~colorgan.hints.HintError`)."""
        if not self.takes_hints:
            raise HintError("this model takes no color hints (it has no hint channels); use a hint-capable model such as the bundled default")

    def colorize(self, image: Any, *, size: int | None = None, hints: Iterable[Hint] | None = None) -> Image.Image:
        """Colorize one photo (a path, a PIL image or a NumPy array); returns RGB (RGBA if it had alpha).

        The output has the input's size and L*; ``size`` is the resolution the model sees
        (default, and usually best: its training size; larger sizes give finer color edges but can over-saturate).
        ``hints`` (:class:`~colorgan.hints.Hint`, for a model where :attr:`takes_hints`) pin colors
        to points; only their chroma is used, the photo keeps its own lightness. No hints is the
        automatic colorization.

        Example::

            colorizer.colorize("scan.tif", size=512).save("scan_color.png")
        """
        return self.colorize_batch([image], size=size, hints=None if hints is None else [hints])[0]

    def colorize_batch(
        self, images: Iterable[Any], *, size: int | None = None, hints: Sequence[Iterable[Hint] | None] | None = None
    ) -> list[Image.Image]:
        """Colorize several photos, running the model on them as one batch; ``hints`` holds one
        list of hints (or None) per photo.

        Example::

            outputs = colorizer.colorize_batch(["a.jpg", "b.png"])
        """
        size = self.check_size(size)
        photos: list[Photo] = [read_photo(image) for image in images]
        if hints is not None and len(hints) != len(photos):
            raise HintError(f"hints must hold one list per photo: {len(photos)} photos, {len(hints)} hint lists")
        if not photos:
            return []
        with torch.inference_mode():
            l_norm = torch.stack([render.model_input(photo, size) for photo in photos])
            ab = self.predict_ab(l_norm, self._hint_input([photo.image.size for photo in photos], hints, size))
            return [render.recombine(photo, ab_one) for photo, ab_one in zip(photos, ab, strict=True)]

    def prepare(self, image: Any, *, size: int | None = None, max_pixels: int | None = None) -> PreparedPhoto:
        """Decode ``image`` and compute what every colorization of it shares, for
        :meth:`colorize_prepared` (a hint editor colorizes one photo after each click).

        With ``max_pixels``, results are drawn on a preview of at most that many pixels (the
        model still sees the whole photo, so the colors are those of the full-size result).
        """
        size = self.check_size(size)
        photo = read_photo(image)
        width, height = photo.image.size
        model_l = render.model_input(photo, size)
        if max_pixels is not None and width * height > max_pixels:
            scale = (max_pixels / (width * height)) ** 0.5
            preview = (max(1, int(width * scale)), max(1, int(height * scale)))
            photo = Photo(photo.image.resize(preview, Image.Resampling.BICUBIC), photo.source)
        return PreparedPhoto(photo=photo, size=size, model_l=model_l, luminance=photo.luminance(), width=width, height=height)

    def colorize_prepared(self, prepared: PreparedPhoto, *, hints: Iterable[Hint] | None = None) -> Image.Image:
        """:meth:`colorize` of a photo from :meth:`prepare`: only the network and the recombination run."""
        cond = self._hint_input([(prepared.width, prepared.height)], [hints], prepared.size)
        with torch.inference_mode():
            ab = self.predict_ab(prepared.model_l[None], cond)
            return render.recombine(prepared.photo, ab[0], luminance=prepared.luminance)

    def _hint_input(self, sizes: Sequence[tuple[int, int]], hints: Sequence[Iterable[Hint] | None] | None,
                    size: int) -> torch.Tensor | None:
        """The hint channels of a batch of photos of these (width, height), or None when no photo
        has hints (the automatic case)."""
        lists = [check_hints(h) for h in hints] if hints is not None else []
        if not any(lists):
            return None
        self.require_hints()
        return torch.stack([
            hint_channels(hint_list, width=width, height=height, size=size)
            for (width, height), hint_list in zip(sizes, lists, strict=True)
        ])

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model as ``model.safetensors`` + ``model.json`` into ``directory``; returns the weights path."""
        from .models import save_pretrained

        if self._generator is None:
            raise UserError("this Colorizer was loaded from an .onnx file and has no PyTorch weights to save")
        return save_pretrained(self._generator, directory, size=self.size, training=self.meta.get("training"))


def torch_predictor(generator: nn.Module, device: torch.device) -> Predictor:
    def predict(l_norm: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        with torch.inference_mode():
            return generator(l_norm.to(device), None if cond is None else cond.to(device)).float().cpu()

    return predict
