"""Shrink a photo pool into a small folder of JPEGs that can travel to a GPU machine.

Every photo under SRC is center-cropped to an aspect ratio of at most --max-aspect,
resized so its short side is --short (never upscaled), and written as WebP (or JPEG)
under DST with the same relative path. ``colorgan train --data DST`` reads the result
like any photo folder. WebP is about a third smaller than JPEG at the same quality,
which is what lets the whole pool travel to a GPU machine. Example (the pack of the
GPU run in docs/RESULTS.md):

    python tools/pack_photos.py ../shared/data/train pack/train --short 128 --quality 70
    python tools/pack_photos.py ../shared/data/val pack/val --per-folder 8   # a small validation set
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

from colorgan.files.discovery import find_images


def pack_one(job: tuple[Path, Path, int, float, int]) -> int:
    src, dst, short, max_aspect, quality = job
    with Image.open(src) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    w, h = img.size
    if max(w, h) / min(w, h) > max_aspect:  # keep the middle of very wide or tall photos
        cw, ch = (round(h * max_aspect), h) if w > h else (w, round(w * max_aspect))
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
        w, h = img.size
    scale = min(1.0, short / min(w, h))
    if scale < 1.0:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".webp":
        img.save(dst, "WEBP", quality=quality, method=6)
    else:
        img.save(dst, "JPEG", quality=quality, optimize=True)
    return dst.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--short", type=int, default=128, help="short side in pixels (default 128)")
    parser.add_argument("--max-aspect", type=float, default=1.5, help="crop wider/taller photos to this ratio")
    parser.add_argument("--quality", type=int, default=70, help="encoder quality (default 70)")
    parser.add_argument("--format", choices=("webp", "jpg"), default="webp")
    parser.add_argument("--per-folder", type=int, help="only the first N photos of each top-level folder")
    args = parser.parse_args()
    paths = find_images(args.src)
    if args.per_folder:
        taken: dict[str, int] = {}
        kept = []
        for p in paths:
            top = p.relative_to(args.src).parts[0]
            taken[top] = taken.get(top, 0) + 1
            if taken[top] <= args.per_folder:
                kept.append(p)
        paths = kept
    jobs = [(p, (args.dst / p.relative_to(args.src)).with_suffix("." + args.format), args.short, args.max_aspect, args.quality)
            for p in paths]
    with ProcessPoolExecutor() as pool:
        total = sum(pool.map(pack_one, jobs, chunksize=64))
    print(f"{len(jobs)} photos, {total / 2**20:.1f} MiB in {args.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
