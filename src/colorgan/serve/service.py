"""The core every front end calls: check a photo, then colorize it to a PNG under the limiter.

:class:`ColorizeService` owns the one shared :class:`~colorgan.colorizer.Colorizer`, the
:class:`~colorgan.serve.limiter.Limiter` and the API's private temporary folder; the page
and the API only move files in and out and turn :class:`RequestError` into their own answers.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio.to_thread
import numpy as np
from PIL import Image

from colorgan.color import to_8_bit
from colorgan.errors import PhotoError, PhotoTooLarge, UserError
from colorgan.files.images import PNG_COMPRESS_LEVEL
from colorgan.hints import Hint, HintError
from colorgan.colorizer import Colorizer
from colorgan.photo import open_image, read_photo
from colorgan.serve.limiter import Limiter
from colorgan.serve.settings import RequestError, ServeSettings
from colorgan.serve.workdir import make_workdir, remove_stale_workdirs

log = logging.getLogger(__name__)

# The largest render size offered: the model's activations grow with its square, and it is
# colorize's only cost that does not depend on the photo.
MAX_RENDER_SIZE = 1024


class ColorizeService:
    """The work the page and the API share: one model, one limiter, the photo checks."""

    def __init__(self, colorizer: Colorizer, settings: ServeSettings) -> None:
        self.colorizer = colorizer
        self.settings = settings
        self.limiter = Limiter(settings.concurrency, settings.max_queue)
        remove_stale_workdirs()  # the uploads in flight when an earlier server was killed
        self.workdir = make_workdir()

    def close(self) -> None:
        """Remove the API's temporary folder (anything a crashed request left behind)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def temp_path(self, suffix: str) -> Path:
        """A fresh file name in the private folder; names never come from a request."""
        return self.workdir / f"{uuid.uuid4().hex}{suffix}"

    @property
    def max_render_size(self) -> int:
        """The largest render size accepted (the model's own size is always allowed)."""
        return max(MAX_RENDER_SIZE, self.colorizer.size)

    def render_size(self, size: int | None) -> int:
        """The model input size for ``size`` (``None``: the model's own), or a 400."""
        if size is not None and size > self.max_render_size:
            raise RequestError(400, f"size must be at most {self.max_render_size}, got {size}")
        try:
            return self.colorizer.check_size(size)
        except UserError as exc:
            raise RequestError(400, str(exc)) from None

    @contextlib.contextmanager
    def photo_errors(self) -> Iterator[None]:
        """Answer a :class:`~colorgan.errors.PhotoError` from the block as a :class:`RequestError`.

        The one wording for a photo we cannot read, whoever read it (the header check, the
        decoder, Gradio's preprocessing): 413 for too many pixels, else 400 with the reason.
        """
        try:
            yield
        except PhotoTooLarge:
            raise RequestError(413, self._too_many_pixels_message()) from None
        except PhotoError as exc:
            raise RequestError(400, f"cannot read this photo: {exc.reason}") from None
        except HintError as exc:  # e.g. a hint off the photo, or hints for a model without hint channels
            raise RequestError(400, str(exc)) from None

    def inspect(self, path: Path) -> tuple[int, int, str]:
        """(width, height, format) from the file's header, refusing non-images and oversized photos.

        Only the header is read: a small file that decodes to billions of pixels is refused here,
        before it can take any memory.
        """
        with self.photo_errors(), open_image(path) as img:
            width, height, fmt = img.width, img.height, img.format or ""
        if width * height > self.settings.max_pixels:
            raise RequestError(413, self._too_many_pixels_message(width, height))
        return width, height, fmt

    def _too_many_pixels_message(self, width: int = 0, height: int = 0) -> str:
        found = f" ({width}×{height} = {width * height / 1e6:.1f} MP)" if width else ""
        return f"photo too large{found}; this server accepts at most {self.settings.max_megapixels:g} megapixels"

    def colorize_to_png(self, source: Path, size: int, out: Path, preview: Path | None = None,
                        hints: Sequence[Hint] = ()) -> tuple[int, int]:
        """Colorize ``source`` (guided by ``hints``) and write it to ``out`` as PNG; returns its (width, height).

        ``preview`` also gets the photo itself as a PNG, for uploads a browser cannot show (TIFF, BMP...).
        Runs in a worker thread while the caller holds a limiter slot.
        """
        started = time.perf_counter()
        with self.photo_errors():
            photo = read_photo(source)
            image = self.colorizer.colorize(photo, size=size, hints=hints)
        image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        if preview is not None:
            _browser_image(photo.image).save(preview, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        log.info("colorized %d×%d at size %d in %.2f s", image.width, image.height, size, time.perf_counter() - started)
        return image.size

    async def colorize(self, source: Path, size: int, out: Path, preview: Path | None = None,
                       hints: Sequence[Hint] = ()) -> tuple[int, int]:
        """:meth:`colorize_to_png` in a worker thread, once a slot is free.

        The thread is not abandoned when the client goes away, so the slot is held until
        the work really stops and ``concurrency`` is never exceeded.
        """
        async with self.limiter.slot():
            return await anyio.to_thread.run_sync(self.colorize_to_png, source, size, out, preview, hints)


def _browser_image(image: Image.Image) -> Image.Image:
    """A decoded photo in a mode PNG viewers agree on: 16-bit gray becomes 8-bit."""
    if image.mode.startswith("I;16"):
        return Image.fromarray(to_8_bit(np.asarray(image)))
    return image
