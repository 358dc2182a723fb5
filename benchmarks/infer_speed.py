"""Inference speed and memory (issue 3); results go to ``benchmarks/RESULTS.md``.

1. Model throughput at 256 px, images/s: PyTorch eager vs ONNX Runtime, batch 1 and 8.
2. One 12-megapixel JPEG end to end (decode -> model -> full-resolution recombination ->
   PNG encode): seconds and the process's peak RSS, for ``Colorizer.colorize`` and for the
   same pipeline done the common way (scikit-image float64 L*a*b* of the full image, as in
   Zhang et al.'s demo and the tutorials). Each pipeline runs in its own process so that
   peak RSS is its own; both use the same model and the same PNG settings.

Usage: ``python benchmarks/infer_speed.py [--model model.safetensors] [--repeats 3]``.
Without ``--model``: the bundled default model if there is one, else a freshly built
``resunet`` (EfficientNet-Lite0) with random weights (speed does not depend on weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SIZE = 256
MEGAPIXELS = (4000, 3000)


def make_jpeg(path: Path) -> Path:
    """A 12-MP gray photo stand-in: smooth gradients and shapes plus sensor-like noise."""
    w, h = MEGAPIXELS
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 128 + 60 * np.sin(x / 420) * np.cos(y / 310) + 40 * ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (h / 3) ** 2)
    img += np.random.default_rng(0).normal(0, 6, (h, w)).astype(np.float32)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def default_model(folder: Path) -> Path:
    from colorgan.model.files import DEFAULT_MODEL, MODELS_DIR, bundled_models
    from colorgan.model.artifact import save_pretrained
    from colorgan.networks import build_generator

    if DEFAULT_MODEL in bundled_models():
        return MODELS_DIR / DEFAULT_MODEL / "model.safetensors"
    return save_pretrained(build_generator("resunet", encoder="efficientnet_lite0"), folder / "resunet", size=SIZE)


def throughput(predict, batch: int, seconds: float = 4.0) -> float:
    """Best images/s over a few timed rounds, after warm-up."""
    l_norm = (torch.rand(batch, 1, SIZE, SIZE) * 2 - 1).numpy()
    for _ in range(2):
        predict(l_norm)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        predict(l_norm)
        best = max(best, batch / (time.perf_counter() - start))
    return best


def colorgan_pipeline(model: str, jpeg: str, out: str):
    from colorgan import Colorizer
    from colorgan.files.images import save_image

    colorizer = Colorizer.from_pretrained(model, device="cpu")

    def run() -> None:
        save_image(colorizer.colorize(jpeg), Path(out), fmt="png")

    return run


def common_pipeline(model: str, jpeg: str, out: str):
    """Zhang et al.'s demo (colorization/demo_release.py + util.py), with our model and PNG settings."""
    import torch.nn.functional as F
    from skimage import color

    from colorgan.model.artifact import load_pretrained
    from colorgan.files.images import PNG_COMPRESS_LEVEL

    generator, _ = load_pretrained(model)

    def run() -> None:
        rgb = np.asarray(Image.open(jpeg).convert("RGB"))
        small = np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
        l_orig = color.rgb2lab(rgb)[..., :1]  # float64, full resolution
        l_small = torch.from_numpy(color.rgb2lab(small)[..., 0]).float()[None, None]
        with torch.inference_mode():
            ab = generator(l_small / 50 - 1) * 110
        ab_orig = F.interpolate(ab, size=rgb.shape[:2], mode="bilinear")[0].permute(1, 2, 0).double().numpy()
        out_rgb = color.lab2rgb(np.concatenate([l_orig, ab_orig], axis=-1))
        Image.fromarray((out_rgb * 255).round().astype(np.uint8)).save(out, compress_level=PNG_COMPRESS_LEVEL)

    return run


PIPELINES = {"colorgan": colorgan_pipeline, "common": common_pipeline}


def measure_pipeline(name: str, model: str, jpeg: str, out: str, repeats: int) -> None:
    """Child process: time the pipeline ``repeats`` times and print seconds and peak RSS as JSON."""
    run = PIPELINES[name](model, jpeg, out)
    seconds, cpu_seconds = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), _cpu_time()
        run()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(_cpu_time() - cpu_start)
    # VmHWM is this process's own peak; ru_maxrss would include the parent's RSS at fork.
    peak_mb = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb}))


def _cpu_time() -> float:
    """User + system CPU seconds of this process, all threads: less sensitive than wall time to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_child(name: str, model: Path, jpeg: Path, folder: Path, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--model", str(model), "--jpeg", str(jpeg),
           "--out", str(folder / f"{name}.png"), "--repeats", str(repeats)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=PIPELINES)
    parser.add_argument("--jpeg")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        measure_pipeline(args.child, str(args.model), args.jpeg, args.out, args.repeats)
        return

    from colorgan import Colorizer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = args.model or default_model(folder)
        eager = Colorizer.from_pretrained(model, device="cpu", backend="torch")
        runtime = Colorizer.from_pretrained(model, backend="onnx")
        jpeg = make_jpeg(folder / "12mp.jpg")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
              f"({torch.get_num_threads()} threads), load average before: {os.getloadavg()[0]:.1f}")
        print(f"model: {eager.meta['generator']} {eager.meta.get('config', {})}, {model}\n")
        print("| backend | batch | images/s at 256 px |\n| --- | --- | --- |")
        rates = {}
        for batch in (1, 8):
            for name, colorizer in (("torch eager", eager), ("onnxruntime", runtime)):
                rates[name, batch] = throughput(colorizer.predict_ab, batch)
                print(f"| {name} | {batch} | {rates[name, batch]:.1f} |")
        for batch in (1, 8):
            print(f"\nonnxruntime / eager at batch {batch}: {rates['onnxruntime', batch] / rates['torch eager', batch]:.2f}x")
        print(f"\n| 12-MP JPEG -> PNG ({MEGAPIXELS[0]}x{MEGAPIXELS[1]}) | best s | median s | median CPU s | peak RSS |")
        print("| --- | --- | --- | --- | --- |")
        results = {name: in_child(name, model, jpeg, folder, args.repeats) for name in PIPELINES}
        for name, r in results.items():
            print(f"| {name} | {min(r['seconds']):.2f} | {statistics.median(r['seconds']):.2f} | "
                  f"{statistics.median(r['cpu_seconds']):.2f} | {r['peak_rss_mb'] / 1024:.2f} GB |")
        speedup = min(results["common"]["seconds"]) / min(results["colorgan"]["seconds"])
        print(f"\ncolorgan vs common way: {speedup:.1f}x faster; load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
