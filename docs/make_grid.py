"""The comparison grids of docs/RESULTS.md: the same photos through every model, one row each.

Columns: gray input | each model | ground truth (blank for photos that were gray to begin with).
Val photos are spread evenly over each top-level folder of ``--data`` (the same ones every
time); ``--photo`` adds named files, such as scikit-image's sample photos. Tiles are ``--tile`` px
(192 by default; larger to look at the colors at full size).

    python docs/make_grid.py --data ../shared/data/val --per-folder 2 \\
        --model old=old_default/model.safetensors --model new=default --out docs/grid.jpg
    python docs/make_grid.py --photo coffee.png --photo coins.png \\
        --model old=old_default/model.safetensors --model new=default --out docs/grid_photos.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from colorgan.files.discovery import find_images
from colorgan.evaluation.evaluate import color_pixels, gray_input
from colorgan.colorizer import Colorizer
from colorgan.photo import read_photo

TILE = 192  # px, the default tile


def spread(paths: list[Path], count: int) -> list[np.ndarray]:
    """``count`` color photos spread evenly over ``paths`` (gray ones are passed over)."""
    photos = []
    for path in paths[:: max(1, len(paths) // (count * 3))]:
        rgb = color_pixels(read_photo(path))
        if rgb is not None:
            photos.append(rgb)
    return photos[:: max(1, len(photos) // count)][:count]


def rows_from_folders(data: Path, per_folder: int) -> list[tuple[Image.Image, Image.Image | None]]:
    rows = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        rows += [(Image.fromarray(gray_input(rgb)), Image.fromarray(rgb)) for rgb in spread(find_images(folder), per_folder)]
    return rows


def row_from_photo(path: Path) -> tuple[Image.Image, Image.Image | None]:
    rgb = color_pixels(read_photo(path))
    if rgb is None:  # a gray original: nothing to compare with
        return Image.open(path).convert("L"), None
    return Image.fromarray(gray_input(rgb)), Image.fromarray(rgb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="val folder: rows from each of its top-level folders")
    parser.add_argument("--per-folder", type=int, default=2)
    parser.add_argument("--photo", type=Path, action="append", default=[], help="a named photo (repeatable)")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH, in column order")
    parser.add_argument("--size", type=int, help="render size (default: each model's own)")
    parser.add_argument("--tile", type=int, default=TILE, help="tile size in px")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    tile = args.tile

    rows = (rows_from_folders(args.data, args.per_folder) if args.data else []) + [row_from_photo(p) for p in args.photo]
    models = [Colorizer.from_pretrained(spec.split("=", 1)[1]) for spec in args.model]
    grid = Image.new("RGB", ((len(models) + 2) * tile, len(rows) * tile), "white")
    for r, (gray, truth) in enumerate(rows):
        tiles = [gray, *(m.colorize(gray, size=args.size) for m in models), truth]
        for c, image in enumerate(tiles):
            if image is not None:
                grid.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (c * tile, r * tile))
    grid.save(args.out, quality=85, optimize=True)
    print(f"columns: gray | {' | '.join(s.split('=', 1)[0] for s in args.model)} | ground truth -> {args.out}")


if __name__ == "__main__":
    main()
