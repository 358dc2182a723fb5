"""Scoring a colorizer on a folder of color photos: the loop behind ``colorgan evaluate``.

Each photo is turned into its gray version (its own L* with a* = b* = 0), colorized
through :class:`colorgan.colorizer.Colorizer` exactly as ``colorgan colorize`` does, and
compared with the original by :mod:`colorgan.evaluation.metrics`. Following the field's protocol,
prediction and ground truth are both stretched to 256×256 before scoring, unless
``native`` asks for each photo's own resolution. ``baseline="gray"`` scores the gray
input itself, the trivial answer every report should be read against.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import logging
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from colorgan import __version__
from colorgan.color import gray_level_luminance, is_gray, luminance
from colorgan.files.discovery import find_images, top_folder
from colorgan.errors import PhotoError, UserError, check_range, require_extra
from colorgan.files.atomic import atomic_output
from colorgan.hints import MAX_HINTS, truth_hints
from colorgan.colorizer import Colorizer, ModelOptions
from colorgan.model.backends import resolve_device
from colorgan.evaluation.metrics import BLOTCHED_SHARE, EDGE_RADIUS, METRIC_KEYS, PSNR_CAP_DB, score_batch, summarize
from colorgan.photo import Photo, read_photo
from colorgan.render import UPSAMPLINGS

if TYPE_CHECKING:
    from colorgan.evaluation.fid import FID

log = logging.getLogger(__name__)

# Below this many photos an FID is mostly the bias of estimating 2048x2048 covariances from a handful of samples.
FID_MIN_PHOTOS = 50

BASELINES = ("gray",)
EVAL_SIZE = 256
GRID_ROWS = 4
BATCH_SIZE = 16
PROGRESS_EVERY = 200


@dataclass(frozen=True, kw_only=True)
class EvalSettings(ModelOptions):
    """What to score and how; ``model=None`` means the bundled default model."""

    data: Path
    precision: str = "fp32"  # the model as trained, on every CPU, unless asked (ModelOptions' default is "auto")
    baseline: str | None = None
    size: int | None = None
    limit: int | None = None
    native: bool = False
    fid: bool = False
    batch_size: int = BATCH_SIZE
    hints: int = 0
    min_side: int | None = None
    upsample: str | None = None

    def validate(self) -> None:
        """Reject contradictory or out-of-range settings before any work is done."""
        if self.baseline is not None and self.baseline not in BASELINES:
            raise UserError(f"unknown baseline {self.baseline!r}; choose one of: {', '.join(BASELINES)}")
        if self.baseline is not None and self.model is not None:
            raise UserError("--baseline scores the gray input itself; it cannot be combined with --model")
        if self.hints and self.baseline is not None:
            raise UserError("--hints guides a model; the gray baseline takes none")
        if self.upsample is not None and self.upsample not in UPSAMPLINGS:
            raise UserError(f"--upsample must be one of {', '.join(UPSAMPLINGS)}, got {self.upsample!r}")
        if self.upsample is not None and self.baseline is not None:
            raise UserError("--upsample chooses how a model's colors are joined to the photo; the gray baseline has none")
        check_range("--hints", self.hints, low=0, high=MAX_HINTS)
        for name, value in (("--limit", self.limit), ("--batch-size", self.batch_size), ("--min-side", self.min_side)):
            if value is not None:
                check_range(name, value, low=1)


@dataclass
class Scored:
    """One scored photo: its path (relative to the data folder) and its metric values."""

    path: str
    scores: dict[str, float]


@dataclass
class EvalResult:
    """The JSON-ready report, one row per photo, and the first few (gray, prediction, truth) triples."""

    report: dict[str, Any]
    per_image: list[Scored] = field(default_factory=list)
    grid: list[tuple[Image.Image, Image.Image, Image.Image]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The metrics of the whole set of scored photos (:func:`colorgan.evaluation.metrics.summarize`)."""
        return _summary(self.per_image)


@dataclass
class Skipped:
    """Files under the data folder that were not scored, by reason."""

    unreadable: int = 0
    grayscale: int = 0
    small: int = 0  # below --min-side


def color_pixels(photo: Photo) -> np.ndarray | None:
    """The photo's (H, W, 3) uint8 sRGB, or None when it is gray, by the training data's rule
    (:func:`colorgan.color.is_gray`).

    Not :func:`colorgan.color.color_kind`: toned photos (one hue) are still photos with colors to
    compare with.
    """
    rgb, _ = photo.pixels()
    return None if is_gray(rgb) else rgb


def gray_input(rgb: np.ndarray) -> np.ndarray:
    """The photo made gray: an (H, W) uint8 image whose L* is the photo's own (nearest 8-bit level).

    A one-channel gray image, as a user's scanned photo would be: exactly neutral, so the
    gray baseline has no color at all, and its L* is the original's to within half a gray step (< 0.3).
    """
    levels = gray_level_luminance(256)  # L* of each 8-bit gray level, as the colorizer computes it
    l = luminance(rgb)
    upper = np.clip(np.searchsorted(levels, l), 1, 255)
    lower = upper - 1
    nearer_lower = (l - levels[lower]) < (levels[upper] - l)
    return np.where(nearer_lower, lower, upper).astype(np.uint8)


def _to_eval_size(image: Image.Image) -> Image.Image:
    if image.size == (EVAL_SIZE, EVAL_SIZE):
        return image
    return image.resize((EVAL_SIZE, EVAL_SIZE), Image.Resampling.BICUBIC)  # antialiased when shrinking


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _same_size_runs(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive photos of one size stacked into uint8 (B, H, W, 3) batches (all of them at 256×256)."""
    pairs = zip(preds, truths, strict=True)
    for _, run in itertools.groupby(pairs, key=lambda pair: pair[1].shape):
        p, t = zip(*run, strict=True)
        yield np.stack(p), np.stack(t)


def _read_batch(paths: Sequence[Path], skipped: Skipped, *, min_side: int | None = None) -> list[tuple[Path, np.ndarray]]:
    """The color photos among ``paths`` as RGB arrays; unreadable files, gray photos and photos
    whose short side is under ``min_side`` are counted and left out."""
    photos = []
    for path in paths:
        try:
            photo = read_photo(path)
            if min_side is not None and min(photo.image.size) < min_side:
                skipped.small += 1
                continue
            rgb = color_pixels(photo)
        except PhotoError as exc:
            skipped.unreadable += 1
            log.warning("skipping unreadable %s", exc)
            continue
        if rgb is None:
            skipped.grayscale += 1
            log.debug("skipping %s: a gray photo has no colors to compare with", path)
        else:
            photos.append((path, rgb))
    return photos


def evaluate(settings: EvalSettings) -> EvalResult:
    """Colorize and score every color photo under ``settings.data``; see the module docstring."""
    settings.validate()
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    paths = find_images(settings.data, first=settings.limit)
    colorizer = None
    if settings.baseline is None:
        colorizer = settings.load_colorizer()
        if settings.upsample is not None:
            colorizer.upsample = settings.upsample
    fid, reference_file = None, None
    if settings.fid:
        require_extra("eval", "--fid")
        from colorgan.evaluation.fid import FID, FeatureStats

        reference_file = _fid_reference_file(paths, settings)
        fid = FID(resolve_device(settings.device), reference=FeatureStats.load(reference_file))
    if settings.hints:
        colorizer.require_hints()
    result, skipped = score_colorizer(colorizer, paths, data=settings.data, size=settings.size,
                                      batch_size=settings.batch_size, native=settings.native, fid=fid, hints=settings.hints,
                                      min_side=settings.min_side)
    metrics = result.summary()
    psnr_capped = int(metrics.pop("psnr_capped"))
    if fid is not None:
        metrics["fid"] = fid.compute()
        if not fid.has_reference:
            fid.true_stats.save(reference_file)
        if len(result.per_image) < FID_MIN_PHOTOS:
            log.warning("FID %.1f on only %d photos is not meaningful: FID is strongly biased upward on small sets "
                        "(use at least %d photos, thousands for published numbers, and compare FIDs only at equal n)",
                        metrics["fid"], len(result.per_image), FID_MIN_PHOTOS)
    seconds = time.perf_counter() - t0
    result.report = {
        "metrics": metrics,
        "n": len(result.per_image),
        "skipped": asdict(skipped),
        "psnr_cap_db": PSNR_CAP_DB,
        "psnr_capped": psnr_capped,
        "folders": _folder_summaries(result.per_image),
        "model": f"baseline: {settings.baseline}" if colorizer is None else settings.model or "default",
        "settings": {**asdict(settings), "data": str(settings.data), "eval_size": "native" if settings.native else EVAL_SIZE},
        "time": {"started": started.isoformat(timespec="seconds"), "seconds": round(seconds, 2)},
        "colorgan_version": __version__,
    }
    log.info("scored %d photos in %.1f s", len(result.per_image), seconds)
    return result


def _fid_reference_file(paths: Sequence[Path], settings: EvalSettings) -> Path:
    """Where the ground truth's Inception statistics of exactly these files (names, sizes and
    modification times) at this scoring size are cached, so a second model on the same set
    costs half: ``$XDG_CACHE_HOME/colorgan/fid`` (default ``~/.cache``)."""
    key = hashlib.sha256(f"{settings.native}|{EVAL_SIZE}".encode())
    for path in paths:
        stat = path.stat()
        key.update(f"|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorgan" / "fid"
    return cache / f"{key.hexdigest()[:24]}.safetensors"


def _summary(rows: Sequence[Scored]) -> dict[str, float]:
    return summarize({k: [row.scores[k] for row in rows] for k in METRIC_KEYS})


def _folder_summaries(rows: Sequence[Scored]) -> dict[str, dict[str, Any]]:
    """The metrics of each top-level folder of the data (photos directly in it: "."), when
    there are several: one number per kind of photo shows where a model wins and where it loses."""
    groups: dict[str, list[Scored]] = {}
    for row in rows:
        groups.setdefault(top_folder(Path(row.path)), []).append(row)
    if len(groups) < 2:
        return {}
    return {name: {"n": len(group), **_summary(group)} for name, group in sorted(groups.items())}


def score_colorizer(
    colorizer: Colorizer | None,
    paths: Sequence[Path],
    *,
    data: Path,
    size: int | None = None,
    batch_size: int = BATCH_SIZE,
    native: bool = False,
    fid: FID | None = None,
    grid_rows: int = GRID_ROWS,
    hints: int = 0,
    min_side: int | None = None,
) -> tuple[EvalResult, Skipped]:
    """Colorize and score the color photos among ``paths`` (files under ``data``); see the module docstring.

    The one scoring path of ``colorgan evaluate`` and of validation during training, so their
    numbers agree. ``colorizer=None`` scores the gray input itself (the baseline); ``size`` is
    the render size (None: the model's). Returns the per-photo rows and the first ``grid_rows``
    (gray, prediction, truth) triples, with ``report`` left to the caller, and what was skipped;
    no color photo at all is a :class:`UserError`. ``hints`` > 0 guides the colorizer with that
    many hints of the true colors per photo (:func:`colorgan.hints.truth_hints`, at places fixed
    by the photo's path), the field's measure of how much hints help. ``min_side`` scores only
    photos whose short side is at least that many pixels (big photos, where colors can bleed).
    """
    skipped, result = Skipped(), EvalResult(report={})
    next_progress = PROGRESS_EVERY
    for start in range(0, len(paths), batch_size):
        photos = _read_batch(paths[start : start + batch_size], skipped, min_side=min_side)
        if photos:
            _score_photos(photos, colorizer, result, data=data, size=size, native=native, fid=fid, grid_rows=grid_rows, hints=hints)
        if len(result.per_image) >= next_progress:
            log.info("scored %d photos (%d of %d files read)", len(result.per_image), start + len(photos), len(paths))
            next_progress += PROGRESS_EVERY
    if not result.per_image:
        small = f", {skipped.small} smaller than --min-side {min_side}" if skipped.small else ""
        raise UserError(f"no color photos to score in {data} ({skipped.unreadable} unreadable, {skipped.grayscale} grayscale{small})")
    return result, skipped


def _score_photos(
    photos: Sequence[tuple[Path, np.ndarray]],
    colorizer: Colorizer | None,
    result: EvalResult,
    *,
    data: Path,
    size: int | None,
    native: bool,
    fid: FID | None,
    grid_rows: int,
    hints: int = 0,
) -> None:
    """Colorize one batch of photos, score it, and add its rows (and grid triples) to ``result``."""
    grays = [gray_input(rgb) for _, rgb in photos]
    if colorizer is None:
        preds = [Image.fromarray(g) for g in grays]
    else:
        guides = [truth_hints(rgb, hints, seed=_photo_seed(path, data)) for path, rgb in photos] if hints else None
        preds = colorizer.colorize_batch(grays, size=size, hints=guides)
    truths = [Image.fromarray(rgb) for _, rgb in photos]
    for gray, pred, truth in itertools.islice(zip(grays, preds, truths), max(grid_rows - len(result.grid), 0)):
        result.grid.append((_to_eval_size(Image.fromarray(gray)), _to_eval_size(pred), _to_eval_size(truth)))
    if not native:
        preds, truths = [_to_eval_size(p) for p in preds], [_to_eval_size(t) for t in truths]
    runs = list(_same_size_runs([_pixels(p) for p in preds], [_pixels(t) for t in truths]))
    parts = [score_batch(p, t) for p, t in runs]
    scores = {k: np.concatenate([part[k] for part in parts]).tolist() for k in METRIC_KEYS}
    if fid is not None:
        for p, t in runs:
            fid.update(p, t)
    for i, (path, _) in enumerate(photos):
        result.per_image.append(Scored(path.relative_to(data).as_posix(), {k: scores[k][i] for k in METRIC_KEYS}))


def _photo_seed(path: Path, data: Path) -> int:
    """A seed fixed by the photo's place in the data folder: every model gets the same hints on it."""
    return zlib.crc32(path.relative_to(data).as_posix().encode())


# --- outputs ----------------------------------------------------------------------------

def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (arrows say which way is better) and a line of notes."""
    m = report["metrics"]
    smaller = report["skipped"].get("small", 0)
    small = f", {smaller} under --min-side {report['settings'].get('min_side')} px" if smaller else ""

    def row(name: str, n: int, m: dict[str, float]) -> str:
        fid = f"{m['fid']:.2f}" if "fid" in m else "–"
        edge = f"{m['edge_ab']:.2f}" if "edge_ab" in m else "–"
        return (f"| {name} | {n} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['cf_pred']:.2f} | {m['delta_cf']:.2f} "
                f"| {m['auc']:.2f} | {m['spurious']:.3f} | {m['blotched']:.2f} | {edge} | {fid} |")

    lines = [
        "| model | n | PSNR ↑ | SSIM ↑ | CF ↑ | ΔCF ↓ | AuC ↑ | spurious % ↓ | blotched % ↓ | edge Δab ↓ | FID ↓ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row(report["model"], report["n"], m),
        *(row(f"  {folder}/", f["n"], f) for folder, f in report.get("folders", {}).items()),
        "",
        f"CF of the ground truth: {m['cf_true']:.2f}. Spurious color: share of pixels neutral in the ground truth "
        f"(C*ab < 5) but clearly colored in the prediction (C*ab > 20); blotched: share of photos with more than "
        f"{BLOTCHED_SHARE:g} % of their pixels spurious; edge Δab: mean a*b* error within {EDGE_RADIUS} px of strong "
        f"L* edges (color bleeding). Evaluated at "
        f"{report['settings']['eval_size']} px. Skipped: {report['skipped']['unreadable']} unreadable, "
        f"{report['skipped']['grayscale']} grayscale{small}. PSNR capped at {report['psnr_cap_db']:g} dB "
        f"(identical to the ground truth): {report['psnr_capped']} photos.",
    ]
    return "\n".join(lines)


def write_per_image_csv(rows: Sequence[Scored], path: Path) -> None:
    """One row per photo: its path relative to the data folder, then each metric."""
    with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", *METRIC_KEYS])
        writer.writerows([row.path, *(f"{row.scores[k]:.6g}" for k in METRIC_KEYS)] for row in rows)


GRID_COLUMNS = ("gray input", "prediction", "ground truth")
GRID_HEADER = 24  # px: a label row above the tiles


def save_grid(triples: Sequence[Sequence[Image.Image]], path: Path, *, columns: Sequence[str] = GRID_COLUMNS) -> None:
    """A PNG with one row per photo (default: gray input | prediction | ground truth), 256 px tiles
    under a row of ``columns`` labels."""
    grid = Image.new("RGB", (len(columns) * EVAL_SIZE, GRID_HEADER + len(triples) * EVAL_SIZE), "white")
    draw = ImageDraw.Draw(grid)
    for col, label in enumerate(columns):
        draw.text((col * EVAL_SIZE + EVAL_SIZE // 2, GRID_HEADER // 2), label, fill="black", anchor="mm",
                  font=ImageFont.load_default(size=14))
    for row, triple in enumerate(triples):
        for col, tile in enumerate(triple):
            grid.paste(tile.convert("RGB"), (col * EVAL_SIZE, GRID_HEADER + row * EVAL_SIZE))
    with atomic_output(path) as tmp:
        grid.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
