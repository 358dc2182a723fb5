"""The light, instant colorizer (issue 15): today's code against a reference commit, in one run.

Every number is measured for both sides in the same run, each in its own process: the
reference ("before") runs from a git worktree of ``--before`` through ``PYTHONPATH``, the
current tree ("after") the same way, so both use this machine's Python and packages.

1. Cold start: ``colorgan colorize`` of the bundled 512 px sample as a whole process (median wall s).
2. 12 MP JPEG -> colorized JPEG (quality 95) with a loaded ``Colorizer``: decode to encoded file.
3. The same as a whole ``colorgan colorize`` process, with its peak RSS; and 12 MP -> PNG.
4. Model throughput at 256 px, batch 1: each side's default backend.
5. A folder of ``--photos`` 12 MP JPEGs: photos per minute of ``colorgan colorize DIR``
   (after: its default output format, JPEG for JPEG, and ``--format png`` as before's default).

Usage: ``python benchmarks/light_speed.py [--before c6604e6] [--photos 100] [--record]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import cpu_name, print_and_record

ROOT = Path(__file__).resolve().parent.parent
MEGAPIXELS = (4000, 3000)

_IN_PROCESS = r"""
import json, statistics, sys, time
import numpy as np
from colorgan import Colorizer
photo, out, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
colorizer = Colorizer.from_pretrained(device="cpu")
def once():
    start = time.perf_counter()
    colorizer.colorize(photo).save(out, quality=95)
    return time.perf_counter() - start
once()
seconds = [once() for _ in range(repeats)]
l = np.zeros((1, 1, 256, 256), np.float32)
l_t = l
try:  # before: the predictor takes torch tensors
    import torch
    colorizer.predict_ab(torch.from_numpy(l))
    l_t = torch.from_numpy(l)
except Exception:
    pass
for _ in range(3):
    colorizer.predict_ab(l_t)
start, n = time.perf_counter(), 0
while time.perf_counter() - start < 5:
    colorizer.predict_ab(l_t)
    n += 1
print(json.dumps({"jpeg_s": statistics.median(seconds), "model_ips": n / (time.perf_counter() - start)}))
"""


# ``colorgan ARGS`` that reports its own peak RSS on exit: VmHWM, the high-water mark of this
# process image's memory. (getrusage's ru_maxrss survives exec on Linux, so a child started by
# a large parent would report the parent's peak.)
_CLI = ("import atexit, re, sys; atexit.register(lambda: sys.stderr.write("
        "'\\nMAXRSS ' + re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1) + '\\n')); "
        "sys.argv = ['colorgan', *sys.argv[1:]]; from colorgan.cli import main; main()")


def run(side: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``colorgan ARGS`` run with ``side``'s sources."""
    env = dict(os.environ, PYTHONPATH=str(side / "src"))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CLI, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{side}: colorgan {' '.join(args)} failed: {done.stderr[-2000:]}")
    peak_kb = int(done.stderr.rsplit("MAXRSS ", 1)[1].split()[0])
    return seconds, peak_kb / 1024


def median_run(side: Path, args: list[str], cwd: Path, repeats: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        for leftover in cwd.glob("colorized*"):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        runs.append(run(side, args, cwd))
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def make_photos(folder: Path, n: int) -> list[Path]:
    """``n`` different 12 MP gray JPEGs: smooth shapes and gradients with sensor-like noise."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = MEGAPIXELS
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        small = rng.random((12, 16)) * 200 + 20
        base = np.asarray(Image.fromarray(small.astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))
        noise = rng.normal(0, 6, (h, w))
        path = folder / f"photo_{i:03d}.jpg"
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="c6604e6", help="the reference commit (today's code)")
    parser.add_argument("--photos", type=int, default=100, help="photos in the folder run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="colorgan-light-"))
    before = work / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before], check=True,
                   capture_output=True)
    try:
        results = measure({"before": before, "after": ROOT}, work, args)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    print_and_record(markdown(results, args), args.record)
    shutil.rmtree(work, ignore_errors=True)


def measure(sides: dict[str, Path], work: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    photos = make_photos(work / "photos", args.photos)
    big = photos[0]
    results: dict[str, dict[str, float]] = {}
    for name, side in sides.items():
        cwd = work / f"cwd_{name}"
        cwd.mkdir()
        r = results[name] = {}
        r["cold_s"], r["cold_mb"] = median_run(side, ["colorize", "-q"], cwd, args.repeats)
        r["big_jpeg_process_s"], r["big_jpeg_mb"] = median_run(
            side, ["colorize", str(big), "-o", "colorized.jpg", "-q"], cwd, args.repeats)
        r["big_png_process_s"], r["big_png_mb"] = median_run(
            side, ["colorize", str(big), "-o", "colorized.png", "-q"], cwd, args.repeats)
        env = dict(os.environ, PYTHONPATH=str(side / "src"))
        inproc = subprocess.run([sys.executable, "-c", _IN_PROCESS, str(big), str(cwd / "inproc.jpg"), str(args.repeats)],
                                env=env, capture_output=True, text=True, check=True)
        r |= json.loads(inproc.stdout.strip().splitlines()[-1])
        formats = [("default", [])] if name == "before" else [("default", []), ("png", ["--format", "png"])]
        for label, extra in formats:
            out = work / f"out_{name}_{label}"
            seconds, mb = run(side, ["colorize", str(work / "photos"), "-o", str(out), "-q", *extra], cwd)
            r[f"folder_{label}_ppm"], r[f"folder_{label}_mb"] = args.photos / seconds * 60, mb
            r[f"folder_{label}_format"] = next(out.iterdir()).suffix
            shutil.rmtree(out)
        print(name, json.dumps(r), flush=True)
    return results


def markdown(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    b, a = results["before"], results["after"]
    cpu = cpu_name()
    rows = [
        ("cold start: `colorgan colorize` (512 px sample), whole process", f"{b['cold_s']:.2f} s", f"{a['cold_s']:.2f} s", "≤ 1.0 s"),
        ("12 MP JPEG → JPEG, loaded `Colorizer` (decode to encoded file)", f"{b['jpeg_s']:.2f} s", f"{a['jpeg_s']:.2f} s", "≤ 0.5 s"),
        ("12 MP JPEG → JPEG, whole `colorgan colorize` process", f"{b['big_jpeg_process_s']:.2f} s", f"{a['big_jpeg_process_s']:.2f} s", "≤ 1.0 s"),
        ("  its peak RSS", f"{b['big_jpeg_mb']:.0f} MB", f"{a['big_jpeg_mb']:.0f} MB", "≤ 1 GB"),
        ("12 MP JPEG → PNG, whole process", f"{b['big_png_process_s']:.2f} s", f"{a['big_png_process_s']:.2f} s", "as fast as can be"),
        ("model at 256 px, batch 1 (each side's default backend)", f"{b['model_ips']:.0f} img/s", f"{a['model_ips']:.0f} img/s", "≥ 40 img/s"),
        (f"folder of {args.photos} × 12 MP JPEGs, default output ({b['folder_default_format']} before, {a['folder_default_format']} after)",
         f"{b['folder_default_ppm']:.1f} photos/min", f"{a['folder_default_ppm']:.1f} photos/min", "≥ 2× before"),
        (f"folder of {args.photos} × 12 MP JPEGs, PNG output", f"{b['folder_default_ppm']:.1f} photos/min", f"{a['folder_png_ppm']:.1f} photos/min", ""),
        ("  folder run peak RSS", f"{b['folder_default_mb']:.0f} MB", f"{a['folder_default_mb']:.0f} MB", ""),
    ]
    lines = [
        f"### Issue 15 speed: before ({args.before}) vs after, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Command: `python benchmarks/light_speed.py --before {args.before} --photos {args.photos} --repeats {args.repeats}`. "
        "Medians of the repeats; every run its own process.",
        "",
        "| measure | before | after | target |",
        "| --- | ---: | ---: | --- |",
        *(f"| {m} | {x} | {y} | {t} |" for m, x, y, t in rows),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
