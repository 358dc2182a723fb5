"""Colorized photos written in their formats: PNG, JPEG, WebP and TIFF, 16 bits where the format
keeps them (a 16-bit scan's PNG or TIFF), each atomically and tagged as colorgan's (:mod:`.provenance`)."""

from __future__ import annotations

import errno
import os
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorgan.color import to_8_bit
from colorgan.errors import OutputBlocked, PhotoError
from colorgan.files.atomic import atomic_output
from colorgan.files.discovery import pillow_format
from colorgan.files.provenance import SOFTWARE, SOFTWARE_TAG

log = logging.getLogger(__name__)

# Output formats by their CLI name: (Pillow format, file suffix).
FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp"), "tif": ("TIFF", ".tif")}

# Other names of those formats (``--format jpeg`` as ``-o photo.jpeg`` is taken).
FORMAT_ALIASES = {"jpeg": "jpg", "tiff": "tif"}

# The formats whose outputs keep a 16-bit scan's 16 bits.
SIXTEEN_BIT_FORMATS = frozenset({"png", "tif"})

# The output file suffixes colorgan writes (``-o photo.jpeg``), and the format each one means.
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tif", ".tiff": "tif"}

# Pillow's format of an input -> the output format it gets by default (:func:`default_format`);
# any other input (BMP, GIF, PPM, ...) becomes PNG, lossless and read everywhere.
_OWN_FORMAT = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "WEBP": "webp"}

DEFAULT_QUALITY = {"jpg": 95, "webp": 90}

# zlib level 1: on photos about 3x faster than Pillow's default 6 for files ~10 % larger.
PNG_COMPRESS_LEVEL = 1

# TIFFs are written by tifffile (Pillow cannot write 16-bit RGB) as Deflate (zlib level 1) with the
# horizontal predictor: lossless, read by every TIFF reader, and needing no codec package (tifffile
# uses Python's zlib). On a 12 MP RGB photo (CPU seconds, file size): this 0.41 s, 12.0 MB; Pillow's
# tiff_lzw 0.56 s, 16.5 MB; Pillow's tiff_adobe_deflate (zlib level 6) 2.5 s, 12.3 MB; no compression
# 0.05 s, 36 MB (PNG at level 1: 0.95 s, 11.9 MB). 16-bit photos compress poorly, their low bits
# being noise: with a scanner's (a quarter of an 8-bit level) 2.0 s, 62 MB against 72 MB uncompressed.
TIFF_COMPRESSION = {"compression": "zlib", "compressionargs": {"level": 1}, "predictor": True}

# A lossless WebP input gets a lossless WebP output, encoded at the fastest effort (12 MP: ~1.1 s,
# 9.5 MB; Pillow's default effort takes ~8 s for 6.4 MB).
WEBP_LOSSLESS = {"lossless": True, "quality": 0, "method": 0}


def default_format(source: Path) -> str:
    """The output format a photo gets when none is asked for: its own (by its suffix), so JPEG stays
    JPEG (at quality 95), TIFF stays TIFF (16-bit for a 16-bit scan), PNG and WebP stay themselves;
    any other (BMP, GIF, PPM, ...) becomes PNG."""
    return _OWN_FORMAT.get(pillow_format(source.suffix.lower()) or "", "png")

def output_suffix(source: Path, fmt: str) -> str:
    """The suffix of ``source``'s output in ``fmt``: the source's own when it names that format
    (``IMG_1.JPG`` stays ``.JPG``, ``scan.tiff`` stays ``.tiff``), else the format's (``.png``)."""
    return source.suffix if SUFFIX_FORMATS.get(source.suffix.lower()) == fmt else FORMATS[fmt][1]

def is_lossless_webp(path: Path) -> bool:
    """Whether ``path`` is a WebP file whose image is stored losslessly (a ``VP8L`` bitstream, not
    ``VP8``); reads only its chunk headers. False for anything else, unreadable files included."""
    try:
        with open(path, "rb") as file:
            if file.read(12)[8:] != b"WEBP":
                return False
            while len(header := file.read(8)) == 8:
                chunk, size = header[:4], int.from_bytes(header[4:], "little")
                if chunk in (b"VP8 ", b"VP8L"):
                    return chunk == b"VP8L"
                if chunk == b"ANMF":  # an animation frame: its own chunks follow its 16-byte header
                    file.seek(16, os.SEEK_CUR)
                    continue
                file.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        pass
    return False

def save_image(image: Image.Image | np.ndarray, path: Path, *, fmt: str, quality: int | None = None,
               lossless: bool = False) -> None:
    """Write ``image`` atomically as ``fmt`` (png, jpg, webp or tif); raises :class:`PhotoError` if it cannot.

    ``image`` is a PIL image or a uint8/uint16 array (H, W, 3 or 4), as
    :meth:`~colorgan.colorizer.Colorizer.colorize` returns with ``bits=16``. A tif keeps 16 bits; the
    other formats get 8 (PNG could hold 16-bit RGB, but Pillow cannot write it). ``quality`` is
    JPEG's or lossy WebP's (default :data:`DEFAULT_QUALITY`); ``lossless`` makes a WebP lossless.
    """
    try:
        _save_image(image, path, fmt=fmt, quality=quality, lossless=lossless)
    except OSError as exc:
        reason = exc.strerror or str(exc)  # strerror: no temporary file's name in the message
        if exc.errno in _BLOCKED_ERRNOS:
            raise OutputBlocked(f"cannot write to {path.parent}: {reason}; stopped, no file half-written") from None
        raise PhotoError(str(path), f"cannot write ({reason})") from None

# Errors of the place rather than the file: every later output there would fail the same way.
_BLOCKED_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

def _save_image(image: Image.Image | np.ndarray, path: Path, *, fmt: str, quality: int | None, lossless: bool) -> None:
    if fmt == "tif":
        _save_tiff(_tiff_pixels(image), path)
        return
    if fmt == "png" and isinstance(image, np.ndarray) and image.dtype == np.uint16:
        _save_png16(_tiff_pixels(image), path)
        return
    if isinstance(image, np.ndarray) or (image.mode == "I;16" and fmt != "png"):
        image = Image.fromarray(to_8_bit(np.asarray(image)))
    pil_format, _ = FORMATS[fmt]
    if fmt == "png":
        options: dict[str, Any] = {"compress_level": PNG_COMPRESS_LEVEL}
    elif fmt == "webp" and lossless:
        options = dict(WEBP_LOSSLESS)
    else:
        options = {"quality": quality or DEFAULT_QUALITY[fmt]}
    exif = Image.Exif()
    exif[SOFTWARE_TAG] = SOFTWARE
    options["exif"] = exif.tobytes()
    if fmt == "jpg" and image.mode in ("RGBA", "LA"):
        log.warning("%s: JPEG has no alpha channel; transparency dropped", path)
        image = image.convert(image.mode[:-1])
    with atomic_output(path) as tmp:
        image.save(tmp, format=pil_format, **options)

def _tiff_pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    """The pixels of ``image`` as tifffile writes them: uint8 or uint16, (H, W) gray or (H, W, C)."""
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16) or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))):
            raise ValueError(f"expected uint8 or uint16 pixels (H, W[, C]), got {image.dtype} {image.shape}")
        return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return np.asarray(image)

def _save_tiff(pixels: np.ndarray, path: Path) -> None:
    """Write ``pixels`` atomically as a lossless TIFF (:data:`TIFF_COMPRESSION`) tagged as colorgan's."""
    import tifffile  # only here: ~0.2 s to import, and only TIFF outputs need it

    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    photometric = "rgb" if channels >= 3 else "minisblack"
    extra: dict[str, Any] = {"planarconfig": "contig"} if pixels.ndim == 3 else {}
    if channels in (2, 4):
        extra["extrasamples"] = [2]  # unassociated alpha: the alpha channel as Pillow and PNG mean it
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, pixels, photometric=photometric, software=SOFTWARE, **extra, **TIFF_COMPRESSION)

# Rows per zlib call of a 16-bit PNG: bounded memory on any photo, large enough to compress well.
_PNG_STRIPE_ROWS = 256

def _save_png16(pixels: np.ndarray, path: Path) -> None:
    """Write uint16 ``pixels`` (H, W) gray or (H, W, 2/3/4) atomically as a 16-bit PNG, which Pillow
    cannot write for color: PNG's chunks written directly (zlib, the Sub filter on every row, an
    eXIf chunk with colorgan's Software tag, as :func:`save_image`'s other PNGs carry)."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    step = 2 * channels  # bytes per pixel: the Sub filter's distance
    exif = Image.Exif()
    exif[SOFTWARE_TAG] = SOFTWARE
    compressor = zlib.compressobj(PNG_COMPRESS_LEVEL)
    with atomic_output(path) as tmp, tmp.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)))
        out.write(_png_chunk(b"eXIf", exif.tobytes(8).removeprefix(b"Exif\x00\x00")))
        for top in range(0, height, _PNG_STRIPE_ROWS):
            rows = pixels[top : top + _PNG_STRIPE_ROWS].astype(">u2").reshape(-1, width * channels).view(np.uint8)
            filtered = np.empty((len(rows), rows.shape[1] + 1), np.uint8)
            filtered[:, 0] = 1  # Sub: each byte minus the same byte of the pixel to its left
            filtered[:, 1 : step + 1] = rows[:, :step]
            np.subtract(rows[:, step:], rows[:, :-step], out=filtered[:, step + 1 :])
            out.write(_png_chunk(b"IDAT", compressor.compress(filtered.tobytes())))
        out.write(_png_chunk(b"IDAT", compressor.flush()))
        out.write(_png_chunk(b"IEND", b""))

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
