"""How long the server takes for one hint change in the editor (issue 14): target < 150 ms for 1 MP.

An update is what ``POST /api/photos/{id}/colorize`` computes (``colorgan.serve.guided.preview_jpeg``): the
network on the prepared photo's model input with the new hints, the recombination with its
cached L*, and the JPEG the page shows. The reference in the same run is what an update would
cost without that preparation: the whole ``colorize`` of the uploaded file (decode, model input,
L*, network, recombination) and the same JPEG. Photos are synthetic 8-bit gray JPEGs (gradients,
a disc, noise) at 1 MP (1155x866) and 12 MP (4000x3000); each update moves one of five hints, as
a drag does. Prints Markdown rows for ``benchmarks/RESULTS.md``.

    python benchmarks/hint_update.py [--model src/colorgan/assets/models/default] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorgan import Colorizer, Hint
from colorgan.serve.guided import PREVIEW_PIXELS, preview_jpeg


def synthetic_jpeg(path: Path, width: int, height: int) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    gray = 60 + 120 * x / width + 40 * np.sin(y / height * 6)
    gray[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 4) ** 2] += 50
    gray += rng.normal(0, 6, gray.shape)
    Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def hints_for(step: int) -> list[Hint]:
    """Five hints; the first moves a little each step, as while dragging."""
    moving = Hint(x=0.2 + 0.002 * (step % 100), y=0.3, color="#3070c0")
    return [moving, Hint(x=0.7, y=0.2, color="#c04020"), Hint(x=0.5, y=0.5, color="#f2efe9"),
            Hint(x=0.3, y=0.8, color="#40a040"), Hint(x=0.8, y=0.8, color="#806040")]


def timed(function, repeats: int) -> tuple[float, float]:
    """(median, best) milliseconds of ``function(step)`` over ``repeats`` calls after one warm-up."""
    function(-1)
    times = []
    for step in range(repeats):
        started = time.perf_counter()
        function(step)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a hint-capable model (default: the bundled default)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    colorizer = Colorizer.from_pretrained(args.model, device="cpu")
    if not colorizer.takes_hints:
        raise SystemExit(f"{args.model or 'the bundled default'} takes no hints")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
          f"load average before {os.getloadavg()[0]:.2f}; model size {colorizer.size}")
    print("| photo | what runs per hint change | median ms | best ms |")
    print("| --- | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as workdir:
        for name, (width, height) in (("1 MP (1155×866)", (1155, 866)), ("12 MP (4000×3000)", (4000, 3000))):
            path = synthetic_jpeg(Path(workdir) / "photo.jpg", width, height)
            started = time.perf_counter()
            prepared = colorizer.prepare(path, max_pixels=PREVIEW_PIXELS)
            prepare_ms = (time.perf_counter() - started) * 1000
            shown = "×".join(map(str, prepared.photo.image.size))
            update = timed(lambda step: preview_jpeg(colorizer, prepared, hints_for(step)), args.repeats)
            full = colorizer.prepare(path)
            full_update = timed(lambda step: preview_jpeg(colorizer, full, hints_for(step)), args.repeats)

            def from_file(step: int) -> None:
                preview_jpeg(colorizer, colorizer.prepare(path), hints_for(step))

            reference = timed(from_file, max(3, args.repeats // 4))
            print(f"| {name} | editor update: network + recombination on the {shown} preview + JPEG | {update[0]:.0f} | {update[1]:.0f} |")
            print(f"| {name} | the same at full size ({width}×{height}) | {full_update[0]:.0f} | {full_update[1]:.0f} |")
            print(f"| {name} | reference: colorize the uploaded file again (decode, L*, network, recombination) + JPEG | {reference[0]:.0f} | {reference[1]:.0f} |")
            print(f"| {name} | once per photo: prepare (decode, model input, preview, L*) | {prepare_ms:.0f} | |")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
