"""The comparison grid of docs/RESULTS.md: the same photos through every model, one row each.

Usage: ``python docs/make_grid.py --data ../shared/data/val --count 8 --model stage1=runs/final_pretrain
--model stage2=runs/final_gan --out docs/grid.jpg``. Columns: gray input | each model | ground truth.
Photos are spread evenly over the sorted folder (the same ones every time) and shown at 192 px.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from colorgan.data import find_images
from colorgan.evaluate import color_pixels, gray_input
from colorgan.infer import Colorizer
from colorgan.photo import read_photo

TILE = 192


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH, in column order")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    paths = find_images(args.data)
    photos = []
    for path in paths[:: max(1, len(paths) // (args.count * 2))]:  # oversample: gray photos are dropped
        rgb = color_pixels(read_photo(path))
        if rgb is not None:
            photos.append(rgb)
    photos = photos[:: max(1, len(photos) // args.count)][: args.count]
    models = [Colorizer.from_pretrained(spec.split("=", 1)[1], backend="onnx") for spec in args.model]

    grid = Image.new("RGB", ((len(models) + 2) * TILE, len(photos) * TILE), "white")
    for row, rgb in enumerate(photos):
        gray = Image.fromarray(gray_input(rgb))
        tiles = [gray, *(m.colorize(gray) for m in models), Image.fromarray(rgb)]
        for col, tile in enumerate(tiles):
            grid.paste(tile.convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS), (col * TILE, row * TILE))
    grid.save(args.out, quality=85, optimize=True)
    print(f"columns: gray | {' | '.join(s.split('=', 1)[0] for s in args.model)} | ground truth -> {args.out}")


if __name__ == "__main__":
    main()
