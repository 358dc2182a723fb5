"""The :class:`Colorizer`: a trained generator applied to whole photos.

A photo's journey: :mod:`colorgan.photo` decodes it; :mod:`colorgan.render` makes the small L*
the model sees; the model (ONNX Runtime or PyTorch, chosen by :mod:`colorgan.model.backends`)
predicts ab there; :mod:`colorgan.render` joins that to the photo's own full-resolution L*, so
the output has the input's exact geometry and detail. Everything here is NumPy: the ONNX Runtime
backend needs no PyTorch, which only ``backend="torch"`` (the ``train`` extra) imports.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from colorgan import render
from colorgan.errors import UserError
from colorgan.hints import HINT_CHANNELS, Hint, HintError, check_hints, hint_channels
from colorgan.files.atomic import atomic_output
from colorgan.files.discovery import same_file
from colorgan.model.backends import Predictor, load_backend
from colorgan.model.files import ONNX_NAME, copy_model, read_model_json, resolve_model
from colorgan.photo import Photo, read_photo

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

# The largest render size: the network's activations grow with its square (4096 needs GBs), and
# colors over-saturate far above the training size (docs/RESULTS.md, "Render size").
MAX_RENDER_SIZE = 1024


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """Which model runs, where and how: the options shared by every job that colorizes
    (``colorize``, ``evaluate``, ``serve``), whose settings extend this class.

    ``model`` is a path or a bundled model's name (None: the bundled default); ``precision`` is
    :meth:`Colorizer.from_pretrained`'s.
    """

    model: str | None = None
    device: str = "auto"
    backend: str = "auto"
    precision: str = "auto"

    def load_colorizer(self) -> Colorizer:
        return Colorizer.from_pretrained(self.model, device=self.device, backend=self.backend, precision=self.precision)

    def model_options(self) -> ModelOptions:
        """Just these options (of a job's settings that extend them): what an engine's workers load."""
        return ModelOptions(model=self.model, device=self.device, backend=self.backend, precision=self.precision)


@dataclass(frozen=True, eq=False)
class PreparedPhoto:
    """A photo made ready to be colorized again and again (hint editing): decoded, with the
    model's input and the full-size L* computed once, so each colorization runs only the
    network and the recombination. Made by :meth:`Colorizer.prepare`."""

    photo: Photo  # what the result is drawn on: the photo, or its preview when one was asked for
    size: int
    model_l: np.ndarray  # (1, size, size), normalized, from the photo at full size
    luminance: np.ndarray  # (H, W) of ``photo``, L* in [0, 100]
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
        self._source: Path | None = None  # the model on disk it came from (set by from_pretrained)
        self._upsample = "bilinear"

    @property
    def upsample(self) -> str:
        """How the model's colors reach the full-size photo: ``"bilinear"`` (the default) or
        ``"guided"`` (a guided filter by the photo's own L*; see :mod:`colorgan.render`). Guided
        upsampling was measured against bilinear (docs/RESULTS.md, issue 26): it smooths the
        colors a little more than it sharpens their edges, and it dilutes small details such as a
        hint's color, so it is not the default."""
        return self._upsample

    @upsample.setter
    def upsample(self, value: str) -> None:
        if value not in render.UPSAMPLINGS:
            raise UserError(f"unknown upsampling {value!r}; choose one of: {', '.join(render.UPSAMPLINGS)}")
        self._upsample = value

    def recombine(self, photo: Photo, ab: np.ndarray, model_l: np.ndarray, **kwargs: Any) -> Image.Image | np.ndarray:
        """:func:`colorgan.render.recombine` of one photo with this colorizer's upsampling."""
        return render.recombine(photo, ab, guide=model_l if self._upsample == "guided" else None, **kwargs)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path | None = None, *, device: str = "auto", backend: str = "auto",
        precision: str = "auto",
    ) -> Colorizer:
        """Load a model: a model folder, its ``model.safetensors``, an exported ``.onnx`` file, or
        the name of a bundled model (``None``: the bundled default).

        ``backend="onnx"`` runs the model with ONNX Runtime on the CPU: the folder's
        ``model.onnx`` (see ``colorgan export``), else the weights exported in memory (needs
        PyTorch). ``backend="torch"`` runs the safetensors weights with PyTorch (the ``train``
        extra) on ``device``. ``"auto"`` takes ONNX Runtime where the model has an up-to-date
        ``model.onnx`` (the bundled default does) and ``device`` is the CPU or ``auto``, else PyTorch.

        ``precision`` chooses, on ONNX Runtime, between a folder's ``model.onnx`` (``"fp32"``) and
        its ``model.int8.onnx`` (``"int8"``, written by ``colorgan export int8``); ``"auto"`` takes
        the int8 one where there is one and this CPU has int8 dot-product instructions (where it
        was measured faster: benchmarks/RESULTS.md), else fp32.

        Example::

            colorizer = Colorizer.from_pretrained("model.onnx")
        """
        path = resolve_model(name_or_path)
        loaded = load_backend(path, device=device, backend=backend, precision=precision)
        colorizer = cls(predict=loaded.predict, size=loaded.meta["size"], size_multiple=loaded.size_multiple,
                        meta=loaded.meta, cond_channels=loaded.cond_channels, generator=loaded.generator)
        colorizer._source = path
        return colorizer

    @property
    def max_size(self) -> int:
        """The largest render size accepted: :data:`MAX_RENDER_SIZE`, or the model's own if larger."""
        return max(MAX_RENDER_SIZE, self.size)

    def check_size(self, size: int | None) -> int:
        """The render size to use: ``size`` if the model supports it, else the model's training size."""
        if size is None:
            return self.size
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0 or size % self.size_multiple:
            raise UserError(
                f"the render size must be a positive multiple of {self.size_multiple} for this "
                f"{self.meta['generator']} model, got {size!r}"
            )
        if size > self.max_size:
            raise UserError(f"the render size must be at most {self.max_size}, got {size}: the model's memory grows "
                            "with its square, and colors get worse far above the size it was trained at")
        return int(size)

    def predict_ab(self, l_norm: np.ndarray, cond: np.ndarray | None = None) -> np.ndarray:
        """The raw model: normalized L* (B, 1, S, S) -> normalized ab (B, 2, S, S), float32 NumPy arrays.

        ``cond`` (B, cond_channels, S, S) feeds a model's conditioning channels; None means none
        given (zeros), the only choice for a model without them.
        """
        if cond is not None:
            expected = (l_norm.shape[0], self.cond_channels, *l_norm.shape[2:])
            if self.cond_channels == 0:
                raise UserError("this model takes no conditioning channels")
            if tuple(cond.shape) != expected:
                raise UserError(f"conditioning must have shape {expected}, got {tuple(cond.shape)}")
        ab = self._predict(l_norm, cond)
        if not np.isfinite(ab).all():  # a damaged or diverged model: its colors would come out black
            raise UserError("the model answered NaN or infinite colors: its file is damaged or its training diverged")
        return ab

    @property
    def takes_hints(self) -> bool:
        """Whether this model has the hint channels of :mod:`colorgan.hints` (a hint-capable model)."""
        return self.cond_channels == HINT_CHANNELS

    def require_hints(self) -> None:
        """Refuse hints for a model without hint channels (a :class:`~colorgan.hints.HintError`)."""
        if not self.takes_hints:
            raise HintError("this model takes no color hints (it has no hint channels); use a hint-capable model such as the bundled default")

    def colorize(self, image: Any, *, size: int | None = None, hints: Iterable[Hint] | None = None,
                 bits: int = 8) -> Image.Image | np.ndarray:
        """Colorize one photo (a path, a PIL image or a NumPy array); returns RGB (RGBA if it had alpha).

        The output has the input's size and L*; ``size`` is the resolution the model sees
        (default, and usually best: its training size; larger sizes give finer color edges but can over-saturate).
        ``hints`` (:class:`~colorgan.hints.Hint`, for a model where :attr:`takes_hints`) pin colors
        to points; only their chroma is used, the photo keeps its own lightness. No hints is the
        automatic colorization. ``bits=16`` returns a uint16 array (H, W, 3 or 4) instead of a
        PIL image (which holds no 16-bit color), for 16-bit scans.

        Example::

            colorizer.colorize("scan.tif", size=512).save("scan_color.png")
        """
        return self.colorize_batch([image], size=size, hints=None if hints is None else [hints], bits=bits)[0]

    def colorize_batch(
        self, images: Iterable[Any], *, size: int | None = None, hints: Sequence[Iterable[Hint] | None] | None = None,
        bits: int = 8,
    ) -> list[Image.Image | np.ndarray]:
        """Colorize several photos, running the model on them as one batch; ``hints`` holds one
        list of hints (or None) per photo; ``bits`` as in :meth:`colorize`.

        Example::

            outputs = colorizer.colorize_batch(["a.jpg", "b.png"])
        """
        size = self.check_size(size)
        photos: list[Photo] = [read_photo(image) for image in images]
        if hints is not None and len(hints) != len(photos):
            raise HintError(f"hints must hold one list per photo: {len(photos)} photos, {len(hints)} hint lists")
        if not photos:
            return []
        l_norm = self.model_inputs(photos, size)
        ab = self.predict_ab(l_norm, self._hint_input([photo.image.size for photo in photos], hints, size))
        return [self.recombine(photo, ab_one, l_one, bits=bits) for photo, ab_one, l_one in zip(photos, ab, l_norm, strict=True)]

    def model_inputs(self, photos: Sequence[Photo], size: int) -> np.ndarray:
        """What the model sees of each photo: normalized L* (B, 1, size, size), from :func:`colorgan.render.model_input`."""
        return np.stack([render.model_input(photo, size) for photo in photos])

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
        ab = self.predict_ab(prepared.model_l[None], cond)
        return self.recombine(prepared.photo, ab[0], prepared.model_l, luminance=prepared.luminance)

    def _hint_input(self, sizes: Sequence[tuple[int, int]], hints: Sequence[Iterable[Hint] | None] | None,
                    size: int) -> np.ndarray | None:
        """The hint channels of a batch of photos of these (width, height), or None when no photo
        has hints (the automatic case)."""
        lists = [check_hints(h) for h in hints] if hints is not None else []
        if not any(lists):
            return None
        if framed := next((h for hint_list in lists for h in hint_list if h.frame), None):
            raise HintError(f"a hint for frame {framed.frame} is for a video; a photo takes hints without a frame")
        self.require_hints()
        return np.stack([
            hint_channels(hint_list, width=width, height=height, size=size)
            for (width, height), hint_list in zip(sizes, lists, strict=True)
        ])

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model into ``directory``; returns the weights' path. A model running on
        PyTorch is written from its weights as they are now (``model.safetensors`` +
        ``model.json``); one running on ONNX Runtime is copied from where it was loaded, with no
        PyTorch needed: its folder's files (``model.onnx`` included), or ``model.onnx`` alone
        for a model loaded from an .onnx file."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise UserError(f"{directory} is a file; save_pretrained writes a model folder")
        if self._generator is not None:
            from colorgan.model.artifact import save_pretrained

            return save_pretrained(self._generator, directory, size=self.size, training=self.meta.get("training"))
        source = self._source
        if source is None:
            raise UserError("this Colorizer has no model files or PyTorch weights to save")
        if source.is_dir() and same_file(source, directory):
            raise UserError(f"{directory} is where this model already is")
        if source.suffix == ".onnx":
            with atomic_output(directory / ONNX_NAME) as tmp:
                shutil.copyfile(source, tmp)
            return directory / ONNX_NAME
        weights, _ = read_model_json(source)
        return copy_model(weights, directory)
