"""Photos of any kind in, colorized photos out: decoding, full-resolution L*, recombination, saving.

A photo is reduced to what colorization needs: an upright sRGB image (8-bit RGB, or 8/16-bit
gray kept as one channel, so a 108-megapixel scan stays 108 MB), with its alpha channel if
it has one; its own L* is computed from it stripe by stripe. The model only sees a size×size thumbnail;
its ab is upsampled and joined to the photo's full-resolution L* in horizontal stripes, so
the memory used beyond the input and output pixels is bounded by the stripe, not the photo.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import linear_rgb_to_rgb
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from .color import denormalize_ab, normalize_l, rgb_to_lab
from .errors import UserError
from .files import atomic_output

log = logging.getLogger(__name__)

# Output formats by their CLI name: (Pillow format, file suffix).
FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
DEFAULT_QUALITY = {"jpg": 95, "webp": 90}
# zlib level 1: on photos about 3x faster than Pillow's default 6 for files ~10 % larger.
PNG_COMPRESS_LEVEL = 1
# Pixels per stripe of the full-resolution pass, one stripe per thread at a time: 64 K pixels
# keep its float temporaries (~1 MB each) in cache, which is ~2x faster than 1 M-pixel stripes.
STRIPE_PIXELS = 1 << 16
# XYZ relative to the D65 white -> linear sRGB: kornia's matrix (as colorgan.color uses) times the white.
_XYZ_TO_RGB = torch.tensor(
    [
        [3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
        [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
        [0.0556466391351772, -0.2040413383665112, 1.0573110696453443],
    ]
) * torch.tensor([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0
# A photo counts as genuinely colored when this share of its pixels lies this far (in a*b*)
# off the hue of its mean color.
_COLOR_DISTANCE = 12.0
_COLOR_SHARE = 0.05


class PhotoError(UserError):
    """One photo cannot be read or written; ``source`` names it and ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


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

    def luminance(self) -> torch.Tensor:
        """The full-resolution L* (H, W) in [0, 100], as :func:`colorgan.color.rgb_to_lab` gives it."""
        return luminance(self.pixels()[0])

    def model_input(self, size: int) -> torch.Tensor:
        """Normalized L* (1, size, size) of the photo resized as training resizes (bicubic, in sRGB)."""
        color = self.image.convert(self.image.mode[:-1]) if self.has_alpha else self.image
        small = color.resize((size, size), Image.Resampling.BICUBIC)
        return normalize_l(luminance(np.asarray(small)))[None]

    def looks_colored(self) -> bool:
        """True for a photo in genuine color; false for gray and toned (sepia, cyanotype) ones.

        A toned photo's a*b* lie on one ray from gray (one hue, any chroma); a colored one
        has many pixels off the ray through its mean color.
        """
        if self.image.mode not in ("RGB", "RGBA"):
            return False
        width, height = self.image.size
        scale = min(1.0, 256 / max(width, height))
        small = self.image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)
        ab = rgb_to_lab(_unit_rgb(np.asarray(small)[..., :3]))[1:].flatten(1)
        hue = ab.mean(dim=1)
        hue = hue / hue.norm().clamp(min=1e-6)
        along = hue @ ab
        off_ray = torch.where(along > 0, (ab - hue[:, None] * along).norm(dim=0), ab.norm(dim=0))
        return bool((off_ray > _COLOR_DISTANCE).float().mean() > _COLOR_SHARE)

    def recombine(self, ab_norm: torch.Tensor) -> Image.Image:
        """Join predicted normalized ab (2, S, S) to the photo's own L*: RGB (RGBA with alpha) at full size.

        ab is upsampled bilinearly (as ``F.interpolate`` with ``align_corners=False``): to the
        photo's width once, then to its height stripe by stripe, so no full-size float array exists.
        """
        width, height = self.image.size
        ab = denormalize_ab(ab_norm.float().cpu())
        ab = F.interpolate(ab[None], size=(ab.shape[-2], width), mode="bilinear", align_corners=False)[0]
        rows = max(1, STRIPE_PIXELS // width)
        tops = range(0, height, rows)

        def stripe(top: int) -> Image.Image:
            bottom = min(height, top + rows)
            color, alpha = self.pixels(top, bottom)
            rgb = lab_to_srgb8(luminance(color), _rows(ab, top, bottom, height))
            return Image.fromarray(rgb if alpha is None else np.concatenate([rgb, alpha], axis=-1))

        out = Image.new("RGBA" if self.has_alpha else "RGB", (width, height))
        with _one_thread_per_op() as workers, ThreadPoolExecutor(workers) as pool:
            for top, done in zip(tops, pool.map(stripe, tops), strict=True):
                out.paste(done, (0, top))
        return out


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
    with contextlib.ExitStack() as stack:
        # Pillow's warning threshold (89 MP) is below photos we promise to handle (12,000×9,000);
        # its error threshold (twice that) still stops decompression bombs.
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = stack.enter_context(Image.open(source))
            img.load()
            return _decode(img, source)
        except FileNotFoundError:
            raise PhotoError(source, "no such file") from None
        except IsADirectoryError:
            raise PhotoError(source, "is a folder, not an image") from None
        except Image.DecompressionBombError as exc:
            raise PhotoError(source, f"refused as a possible decompression bomb ({exc})") from None
        except UnidentifiedImageError:
            empty = Path(source).stat().st_size == 0
            raise PhotoError(source, "empty file (0 bytes)" if empty else "not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as exc:
            damage = "truncated file" if "truncat" in str(exc).lower() else "cannot decode"
            raise PhotoError(source, f"{damage} ({exc})") from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise PhotoError("array", f"expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype.kind == "f":
        gray = array.ndim == 2  # kept 16-bit, like a 16-bit scan
        array = (np.clip(array, 0.0, 1.0) * (65535.0 if gray else 255.0) + 0.5).astype(np.uint16 if gray else np.uint8)
    elif array.dtype == np.uint16 and array.ndim == 3:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype not in (np.uint8, np.uint16):
        raise PhotoError("array", f"expected uint8, uint16 or float pixels, got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def _decode(img: Image.Image, source: str) -> Photo:
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
        return Image.fromarray(_wide_gray(np.asarray(img)))
    try:
        return img.convert("RGB")
    except ValueError:
        raise PhotoError(source, f"unsupported image mode {img.mode}") from None


def _wide_gray(values: np.ndarray) -> np.ndarray:
    """I and F images declare no range: read them as [0, 1], [0, 255] or [0, 65535], the first that holds them."""
    top = max(values.max(initial=0), 0)
    scale = next((t for t in (1.0, 255.0) if top <= t), 65535.0)
    return (np.clip(values / scale, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def _is_srgb(icc: bytes) -> bool:
    try:
        return "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
    except (ImageCms.PyCMSError, OSError):
        return False


def _icc_to_srgb(img: Image.Image, icc: bytes, source: str) -> Image.Image:
    """Convert the color channels to sRGB through the embedded profile; alpha is carried over."""
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


@contextlib.contextmanager
def _one_thread_per_op() -> Iterator[int]:
    """Make torch ops single-threaded for the block and yield the thread count it had.

    The stripes are spread over that many Python threads instead (torch releases the GIL):
    it scales the same on an idle machine, and avoids OpenMP's barrier after every small op,
    which stalls for whole scheduler slices when other processes share the cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _gray_luminance_table(levels: int) -> np.ndarray:
    """L* of every gray level, computed by :func:`rgb_to_lab` itself so gray photos match it exactly."""
    ramp = torch.linspace(0.0, 1.0, levels).expand(3, 1, levels)
    return rgb_to_lab(ramp)[0, 0].numpy()


def luminance(pixels: np.ndarray) -> torch.Tensor:
    """L* (H, W) of gray (uint8/uint16) or RGB (uint8) pixels; gray goes through a lookup table."""
    if pixels.ndim == 2:
        return torch.from_numpy(np.take(_gray_luminance_table(256 if pixels.dtype == np.uint8 else 65536), pixels))
    return rgb_to_lab(_unit_rgb(pixels))[0]


def _unit_rgb(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1).div_(255.0)


def _rows(ab: torch.Tensor, top: int, bottom: int, height: int) -> torch.Tensor:
    """Rows ``top:bottom`` of ``ab`` (C, S, W) resized bilinearly to ``height`` rows (align_corners=False)."""
    src = ab.shape[1]
    pos = ((torch.arange(top, bottom, dtype=torch.float32) + 0.5) * (src / height) - 0.5).clamp_(min=0.0)
    i0 = pos.long().clamp_(max=src - 1)
    i1 = (i0 + 1).clamp_(max=src - 1)
    return torch.lerp(ab.index_select(1, i0), ab.index_select(1, i1), (pos - i0)[:, None])


def _lab_f_inverse(f: torch.Tensor) -> torch.Tensor:
    """CIE's f⁻¹ with its linear toe, branch-free: max(f, δ)³ + 3δ²·min(f − δ, 0). Consumes ``f``."""
    toe = (f - _DELTA).clamp_(max=0.0).mul_(3 * _DELTA**2)
    top = f.clamp_(min=_DELTA)
    return top.square().mul_(top).add_(toe)


@functools.cache
def _srgb8_table() -> torch.Tensor:
    """Linear light in 65,536 steps -> sRGB uint8 (a lookup is ~4x faster than the power law)."""
    steps = ((torch.arange(65536) + 0.5) / 65535).clamp_(max=1.0)
    return linear_rgb_to_rgb(steps.expand(3, 1, -1))[0, 0].mul_(255.0).round_().to(torch.uint8)


def lab_to_srgb8(l: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """L* (H, W) and a*b* (2, H, W) -> sRGB uint8 (H, W, 3) whose L* is ``l``.

    Colors outside sRGB are pulled toward the gray of the same luminance in linear RGB, which
    keeps luminance exactly (plain clipping changes L*, i.e. the photo's detail). Written as
    few in-place passes over the stripe: this is the full-resolution inner loop.
    """
    height, width = l.shape
    f = torch.empty(3, height, width)
    torch.add(l, 16.0, out=f[1]).div_(116.0)
    torch.add(f[1], ab[0], alpha=1 / 500, out=f[0])
    torch.add(f[1], ab[1], alpha=-1 / 200, out=f[2])
    xyz = _lab_f_inverse(f)  # X/Xn, Y, Z/Zn
    y = xyz[1]
    rgb = (_XYZ_TO_RGB @ xyz.view(3, -1)).view(3, height, width)
    room_up = (1.0 - y).div_((rgb.amax(dim=0) - y).clamp_(min=1e-12))
    room_down = y.div((y - rgb.amin(dim=0)).clamp_(min=1e-12))
    saturation = torch.minimum(room_up, room_down).clamp_(max=1.0)
    rgb.sub_(y).mul_(saturation).add_(y)
    steps = rgb.mul_(65535.0).clamp_(0.0, 65535.0).long()
    return torch.take(_srgb8_table(), steps).permute(1, 2, 0).numpy()


def save_image(image: Image.Image, path: Path, *, fmt: str, quality: int | None = None) -> None:
    """Write ``image`` atomically as ``fmt`` (png, jpg or webp)."""
    pil_format, _ = FORMATS[fmt]
    options: dict[str, int] = {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "png" else {"quality": quality or DEFAULT_QUALITY[fmt]}
    if fmt == "jpg" and image.mode == "RGBA":
        log.warning("%s: JPEG has no alpha channel; transparency dropped", path)
        image = image.convert("RGB")
    try:
        with atomic_output(path) as tmp:
            image.save(tmp, format=pil_format, **options)
    except OSError as exc:
        raise PhotoError(str(path), f"cannot write ({exc})") from None
