"""Photos of any kind in: a file, a PIL image or an array decoded into one upright sRGB :class:`Photo`.

A photo is reduced to what colorization needs: an upright sRGB image (8-bit RGB, or 8/16-bit
gray kept as one channel, so a 108-megapixel scan stays 108 MB), with its alpha channel if it
has one. EXIF rotation is applied and embedded ICC profiles are converted to sRGB. Every way
Pillow or the OS can fail on a file becomes one :class:`PhotoError` with a readable reason,
here for every reader of photos (:func:`open_image`, :func:`pillow_errors`).

A photo then goes to :mod:`colorgan.render` (the model's input, the full-size result) and
:mod:`colorgan.files` (saving); its L* comes from :mod:`colorgan.color`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from colorgan.color import color_kind, luminance, to_8_bit
from colorgan.errors import PhotoError, PhotoTooLarge

if TYPE_CHECKING:
    from PIL import ImageCms

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded, upright photo in sRGB.

    ``image`` is in mode L, I;16 (16-bit gray, kept at full precision), RGB, LA or RGBA;
    ``source`` names the photo in messages.
    """

    image: Image.Image
    source: str

    @property
    def has_alpha(self) -> bool:
        return self.image.mode in ("LA", "RGBA")

    def pixels(self, top: int = 0, bottom: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``top:bottom`` as (color, alpha): color (h, W) gray or (h, W, 3) RGB, alpha (h, W, 1) or None."""
        width, height = self.image.size
        rows = np.asarray(self.image.crop((0, top, width, height if bottom is None else bottom)))
        if not self.has_alpha:
            return rows, None
        return (rows[..., 0] if rows.shape[-1] == 2 else rows[..., :3]), rows[..., -1:]

    def luminance(self) -> np.ndarray:
        """The full-resolution L* (H, W) float32 in [0, 100], as :func:`colorgan.color.rgb_to_lab` gives it."""
        return luminance(self.pixels()[0])

    def color_kind(self) -> str:
        """``"gray"``, ``"toned"`` (one hue, as a sepia print) or ``"color"``: :func:`colorgan.color.color_kind`
        on a thumbnail; a photo decoded to one channel is gray without looking."""
        if self.image.mode not in ("RGB", "RGBA"):
            return "gray"
        width, height = self.image.size
        scale = min(1.0, 256 / max(width, height))
        small = self.image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)
        return color_kind(np.asarray(small)[..., :3])


@contextlib.contextmanager
def pillow_errors(source: str, *, bomb_limit: Literal["error", "warning"] = "error") -> Iterator[None]:
    """Turn every way Pillow or the OS fails on ``source`` inside the block into a :class:`PhotoError`.

    For code that opens the file itself (or lets a library open it); else use :func:`open_image`.
    The reason leaves out the file's path (``source`` names the file), so a server can show it.
    ``bomb_limit`` names the Pillow threshold (``Image.MAX_IMAGE_PIXELS``: a warning above it,
    an error above twice it) beyond which a photo is refused as a possible decompression bomb,
    as :class:`PhotoTooLarge`. "error" by default: the warning threshold (89 MP) is below photos
    we promise to colorize (12,000×9,000), the error threshold still stops bombs. "warning" is
    for training, which has no use for such photos.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error" if bomb_limit == "warning" else "ignore", Image.DecompressionBombWarning)
        try:
            yield
        except FileNotFoundError:
            raise PhotoError(source, "no such file") from None
        except IsADirectoryError:
            raise PhotoError(source, "is a folder, not an image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoTooLarge(source, f"refused as a possible decompression bomb ({exc})") from None
        except UnidentifiedImageError:
            raise PhotoError(source, "empty file (0 bytes)" if _is_empty(source) else "not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as exc:
            damage = "truncated file" if "truncat" in str(exc).lower() else "cannot decode"
            detail = exc.strerror if isinstance(exc, OSError) and exc.filename else exc
            raise PhotoError(source, f"{damage} ({detail})") from None


def _is_empty(source: str) -> bool:
    """Whether ``source`` is a file of 0 bytes (false when it names no file, e.g. an upload's label)."""
    try:
        return os.stat(source).st_size == 0
    except OSError:
        return False


@contextlib.contextmanager
def open_image(source: str | os.PathLike, *, bomb_limit: Literal["error", "warning"] = "error") -> Iterator[Image.Image]:
    """``Image.open(source)`` under :func:`pillow_errors`: errors while opening it or decoding it in the
    block become :class:`PhotoError`; the file is closed after the block."""
    with pillow_errors(os.fspath(source), bomb_limit=bomb_limit), Image.open(source) as img:
        yield img


def read_photo(image: str | os.PathLike | Image.Image | np.ndarray | Photo) -> Photo:
    """Decode a path, a PIL image or a NumPy array into a :class:`Photo`.

    EXIF rotation is applied and embedded ICC profiles are converted to sRGB. Modes 1, L,
    I;16, I, F, LA, P, RGB, RGBA, CMYK (and anything Pillow converts to RGB) are accepted.
    NumPy arrays are (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16 (gray), or
    float in [0, 1]. Raises :class:`PhotoError` with a readable reason.
    """
    if isinstance(image, Photo):
        return image
    if isinstance(image, Image.Image):
        return _decode(image, "image")
    if isinstance(image, np.ndarray):
        return _decode(_from_array(image), "array")
    source = os.fspath(image)
    with open_image(source) as img:
        img.load()
        return _decode(img, source)


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise PhotoError("array", f"expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise PhotoError("array", "has NaN or infinite values")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise PhotoError("array", f"float pixels must be in [0, 1], got {array.min():g} to {array.max():g} "
                             "(divide 8-bit values by 255, or pass uint8)")
        gray = array.ndim == 2  # kept 16-bit, like a 16-bit scan
        array = (np.clip(array, 0.0, 1.0) * (65535.0 if gray else 255.0) + 0.5).astype(np.uint16 if gray else np.uint8)
    elif array.dtype == np.uint16 and array.ndim == 3:
        array = to_8_bit(array)
    elif array.dtype not in (np.uint8, np.uint16):
        raise PhotoError("array", f"expected uint8, uint16 or float pixels, got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def _decode(img: Image.Image, source: str) -> Photo:
    if 0 in img.size:
        raise PhotoError(source, f"has no pixels ({img.size[0]}×{img.size[1]})")
    icc = img.info.get("icc_profile")
    if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode in ("La", "RGBa"):
        img = img.convert(img.mode.upper())
    if icc and not _is_srgb(icc):
        img = _icc_to_srgb(img, icc, source)
    return Photo(image=_standard_mode(img, source), source=source)


def _standard_mode(img: Image.Image, source: str) -> Image.Image:
    """L, I;16, RGB, LA or RGBA: 16-bit and float gray stay 16-bit, everything else becomes RGB."""
    if img.mode in ("L", "I;16", "RGB", "LA", "RGBA"):
        return img
    if img.mode.startswith("I;16"):
        return Image.fromarray(np.asarray(img).astype(np.uint16))
    if img.mode in ("I", "F"):
        return Image.fromarray(_wide_gray(np.asarray(img), source))
    try:
        return img.convert("RGB")
    except ValueError:
        raise PhotoError(source, f"unsupported image mode {img.mode}") from None


def _wide_gray(values: np.ndarray, source: str) -> np.ndarray:
    """I and F images declare no range: read them as [0, 1], [0, 255] or [0, 65535], the first
    that holds nearly all of them (99 % of the pixels), else stretch to their 99th percentile
    (32-bit sensor data); negative values are clipped to black unless most of the photo is
    negative (signed data, stretched from its 1st percentile). A small block of outliers
    (a masked area at -5, a hot pixel) is clipped, never allowed to wash out the photo.

    NaN and infinite pixels (masked or failed measurements) count as black; they do not enter
    the range, so one of them cannot turn the rest of the photo black.
    """
    values = values.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        raise PhotoError(source, "no pixel has a finite value (all NaN or infinite)")
    sample = values[finite][:: max(1, int(finite.sum()) // 1_000_000)]  # percentiles of a 100 MP scan: a subsample
    low, median, top = (float(v) for v in np.percentile(sample, [1, 50, 99]))
    if median >= 0:
        low = 0.0
        scale = next((t for t in (1.0, 255.0, 65535.0) if top <= t), top)
    else:
        scale = max(top - low, 1e-12)
    unit = np.where(finite, (values - low) / np.float32(scale), 0.0)
    return (np.clip(unit, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def _is_srgb(icc: bytes) -> bool:
    from PIL import ImageCms  # here: only photos with a color profile need LittleCMS

    try:
        return "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
    except (ImageCms.PyCMSError, OSError):
        return False


def _icc_to_srgb(img: Image.Image, icc: bytes, source: str) -> Image.Image:
    """Convert the color channels to sRGB through the embedded profile; alpha is carried over."""
    from PIL import ImageCms

    alpha = img.getchannel("A") if img.mode in ("LA", "RGBA") else None
    color = img.convert(img.mode[:-1]) if alpha is not None else img
    try:
        rgb = ImageCms.profileToProfile(color, io.BytesIO(icc), _srgb_profile(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.warning("%s: ignoring its ICC profile (%s)", source, exc)
        return img
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
