"""Which files are photos and videos: one rule for every command, so ``train``, ``evaluate`` and
``colorize`` see the same photos (:func:`is_image_name`, :func:`find_images` for a data folder)."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

from PIL import Image

from colorgan.errors import UserError, check_range

# Videos a folder contributes (colorgan.video), and FFmpeg's muxer for each as an output suffix: the
# output keeps its input's container.
VIDEO_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".ts": "mpegts",
                ".webm": "webm", ".mpeg": "mpeg", ".mpg": "mpeg"}

VIDEO_SUFFIXES = frozenset(VIDEO_MUXERS)


def is_image_name(path: Path, root: Path) -> bool:
    """Whether ``path``, found below the folder ``root``, is named like an image a command should pick up:
    a suffix Pillow can open, neither hidden itself nor inside a hidden folder below ``root``
    (macOS's ``._*.jpg`` resource forks are no images, nor is anything in ``.git``)."""
    return is_image_suffix(path.suffix.lower()) and _visible(path, root)

def is_image_suffix(suffix: str) -> bool:
    """Whether Pillow opens files with this (lower-case) suffix. The common formats are known
    without importing all of Pillow's ~40 plugins (~30 ms, most of a photo job's own start)."""
    return pillow_format(suffix) in Image.OPEN

def pillow_format(suffix: str) -> str | None:
    """Pillow's format of files with this (lower-case) suffix (``".jpg"`` -> ``"JPEG"``), if any."""
    Image.preinit()  # BMP, GIF, JPEG, PPM and PNG
    return Image.EXTENSION.get(suffix) or _all_formats().get(suffix)

@functools.cache
def _all_formats() -> dict[str, str]:
    return Image.registered_extensions()  # imports every plugin

def is_video_name(path: Path, root: Path) -> bool:
    """:func:`is_image_name` for videos: a video suffix (:data:`VIDEO_SUFFIXES`), nothing hidden."""
    return path.suffix.lower() in VIDEO_SUFFIXES and _visible(path, root)

def _visible(path: Path, root: Path) -> bool:
    """Neither ``path`` nor a folder between it and ``root`` is hidden (a name starting with a dot)."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)

def is_image_file(path: Path, root: Path) -> bool:
    """:func:`is_image_name`, and a file (or a link to one)."""
    return is_image_name(path, root) and path.is_file()

def find_images(
    root: str | Path,
    *,
    first: int | None = None,
    last: int | None = None,
    file_list: str | Path | None = None,
) -> list[Path]:
    """Photos under ``root`` (recursive, sorted by path), optionally the first N / last M or a listed subset.

    Photos are what :func:`colorgan.files.discovery.is_image_file` accepts, as for ``colorize``.
    ``file_list`` is a text file with one path per line, absolute or relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"photo folder not found: {root}")
    if file_list is not None:
        paths = _read_file_list(Path(file_list), root)
    else:
        paths = sorted(p for p in root.rglob("*") if is_image_file(p, root))
    if first is not None and last is not None:
        raise UserError("--first and --last cannot be combined")
    if first is not None:
        paths = paths[: _positive(first, "--first")]
    if last is not None:
        paths = paths[-_positive(last, "--last") :]
    if not paths:
        raise UserError(f"no photos (files Pillow can open) found in {root}")
    return paths

def _positive(n: int, name: str) -> int:
    check_range(name, n, low=1)
    return n


def _read_file_list(file_list: Path, root: Path) -> list[Path]:
    try:
        lines = file_list.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read file list {file_list}: {exc}") from None
    paths = [Path(s.strip()) for s in lines if s.strip() and not s.lstrip().startswith("#")]
    paths = [p if p.is_absolute() else root / p for p in paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{file_list} lists {len(missing)} missing files, e.g. {missing[0]}")
    return paths

def same_file(a: Path, b: Path) -> bool:
    """Whether writing ``b`` would write over ``a``: the same path once links are followed, or
    (both existing) the same file on disk (a hard link)."""
    if a.resolve() == b.resolve():
        return True
    with contextlib.suppress(OSError):
        return a.exists() and b.exists() and os.path.samefile(a, b)
    return False

def top_folder(relative: Path) -> str:
    """The top-level folder of a photo's path relative to its data folder ("." if directly in it):
    the unit that training balances and evaluation reports on."""
    return relative.parts[0] if len(relative.parts) > 1 else "."
