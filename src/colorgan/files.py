"""Files on disk: which ones are images, and writing so that no reader ever sees half of one.

Every command picks images from a folder by one rule, :func:`is_image_file`, so ``train``,
``evaluate`` and ``colorize`` see the same photos. Everything colorgan writes for a user
(photos, models, reports, CSVs, grids, caches) goes through :func:`atomic_output`: a
temporary file beside its target, renamed over it only once complete, with the permissions a
plain ``open()`` would have given it. :func:`save_image` writes colorized photos that way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import PhotoError

log = logging.getLogger(__name__)

# What a folder contributes: files whose suffix Pillow can open.
IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
# Output formats by their CLI name: (Pillow format, file suffix).
FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
DEFAULT_QUALITY = {"jpg": 95, "webp": 90}
# Every colorized photo says in its EXIF Software tag that colorgan wrote it, so a folder job whose
# outputs sit among its inputs tells them apart from photos (see :func:`written_by_colorgan`).
SOFTWARE_TAG, SOFTWARE = 0x0131, "colorgan"
# zlib level 1: on photos about 3x faster than Pillow's default 6 for files ~10 % larger.
PNG_COMPRESS_LEVEL = 1


def is_image_name(path: Path, root: Path) -> bool:
    """Whether ``path``, found below the folder ``root``, is named like an image a command should pick up:
    a suffix Pillow can open, neither hidden itself nor inside a hidden folder below ``root``
    (macOS's ``._*.jpg`` resource forks are no images, nor is anything in ``.git``)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in path.relative_to(root).parts)


def is_image_file(path: Path, root: Path) -> bool:
    """:func:`is_image_name`, and a file (or a link to one)."""
    return is_image_name(path, root) and path.is_file()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_DEFAULT_MODE = 0o666 & ~_umask()


def publish(tmp: str | Path, path: str | Path) -> None:
    """Atomically rename ``tmp`` to ``path`` and give it the mode a plain ``open()`` would.

    Temporary files from ``mkstemp`` and from safetensors are private (0600); a user's
    colorized photo or shared model must not be.
    """
    os.chmod(tmp, _DEFAULT_MODE)
    os.replace(tmp, path)


# The name of a temporary :func:`atomic_output` makes for NAME (``mkstemp``: 8 random characters);
# a run killed with SIGKILL leaves it behind, and the next run can recognize it by this pattern.
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    An interrupted write never leaves a half-written ``path`` behind (at worst a hidden temp).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save_image(image: Image.Image, path: Path, *, fmt: str, quality: int | None = None) -> None:
    """Write ``image`` atomically as ``fmt`` (png, jpg or webp); raises :class:`PhotoError` if it cannot."""
    pil_format, _ = FORMATS[fmt]
    options: dict[str, Any] = {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "png" else {"quality": quality or DEFAULT_QUALITY[fmt]}
    exif = Image.Exif()
    exif[SOFTWARE_TAG] = SOFTWARE
    options["exif"] = exif.tobytes()
    if fmt == "jpg" and image.mode == "RGBA":
        log.warning("%s: JPEG has no alpha channel; transparency dropped", path)
        image = image.convert("RGB")
    try:
        with atomic_output(path) as tmp:
            image.save(tmp, format=pil_format, **options)
    except OSError as exc:
        raise PhotoError(str(path), f"cannot write ({exc})") from None


def written_by_colorgan(path: Path) -> bool:
    """Whether ``path`` is a photo :func:`save_image` wrote (it reads only the file's header)."""
    try:
        with Image.open(path) as image:
            return image.getexif().get(SOFTWARE_TAG) == SOFTWARE
    except Exception:  # noqa: BLE001 - whatever cannot be read is no output of ours
        return False


def write_report(path: Path, report: Any) -> None:
    """Write a JSON report atomically, indented, UTF-8 as is (photo names in any script stay readable)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
