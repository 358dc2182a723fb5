"""Archive scale (issue 17): the plain folder job against ``--engine ray`` with 1 and 2 actors, one run.

A folder of ``--photos`` gray JPEGs (``--megapixels`` each) is colorized to JPEG by
``colorgan colorize`` as a whole process, three ways; each run starts from an empty output
folder. Ray's own cost per photo is the difference between the 1-actor run and the plain job
(one model, one stream of photos either way), divided by the photos; its fixed cost (starting a
local instance and the actors) is measured on a folder of one photo.

Usage: ``python benchmarks/cluster_speed.py [--photos 200] [--megapixels 1] [--record]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import cpu_name, print_and_record

ROOT = Path(__file__).resolve().parent.parent
CLI = "from colorgan.cli import main; main()"


def make_photos(folder: Path, n: int, megapixels: float) -> None:
    folder.mkdir(parents=True)
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    for i in range(n):
        rng = np.random.default_rng(i)
        base = Image.fromarray((rng.random((9, 12)) * 200 + 20).astype(np.float32)).resize((width, height), Image.Resampling.BICUBIC)
        noisy = np.asarray(base) + rng.normal(0, 6, (height, width))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"scan_{i:05d}.jpg", quality=90)


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CLI, "colorize", *args, "-q"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="colorgan-cluster-"))
    try:
        make_photos(work / "in", args.photos, args.megapixels)
        make_photos(work / "one", 1, args.megapixels)
        rows = {}
        for label, extra in (("plain folder job", []), ("--engine ray --actors 1", ["--engine", "ray", "--actors", "1"]),
                             ("--engine ray --actors 2", ["--engine", "ray", "--actors", "2"])):
            seconds = run([str(work / "in"), "-o", str(work / "out"), *extra])
            fixed = run([str(work / "one"), "-o", str(work / "out1"), *extra])
            shutil.rmtree(work / "out")
            shutil.rmtree(work / "out1")
            rows[label] = (seconds, fixed)
            print(label, f"{args.photos / seconds:.2f} photos/s, {seconds:.1f} s; one photo {fixed:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain, one = rows["plain folder job"], rows["--engine ray --actors 1"]
    per_photo = ((one[0] - one[1]) - (plain[0] - plain[1])) / max(1, args.photos - 1)
    cpu = cpu_name()
    lines = [
        f"### Issue 17 cluster speed, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}. Command: "
        f"`python benchmarks/cluster_speed.py --photos {args.photos} --megapixels {args.megapixels:g}`. "
        f"{args.photos} gray JPEGs of {args.megapixels:g} MP to JPEG, each run a whole `colorgan colorize` process "
        "(a local Ray instance started by the run itself).",
        "",
        "| engine | photos/s | wall s | of which fixed (a 1-photo folder) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, (seconds, fixed) in rows.items():
        lines.append(f"| {label} | {args.photos / seconds:.2f} | {seconds:.1f} | {fixed:.1f} |")
    lines += ["", f"Ray's own cost per photo (1 actor minus the plain job, fixed costs removed): {1000 * per_photo:.0f} ms."]
    report = "\n".join(lines) + "\n"
    print_and_record(report, args.record)


if __name__ == "__main__":
    main()
