"""Training throughput (issue 2): colorgan's loop vs the common tutorial loop, in one run.

Both loops run the same GAN step (``colorgan.training.loop.train_step``: PatchGAN + BCE + 100·L1,
Adam) on the same photos at 256 px. They differ only in how they are fed, which is what
this measures:

- colorgan: workers decode and resize to uint8 (JPEG draft decoding), the L*a*b*
  conversion runs once per batch in float32 (kornia), the nets are channels-last and run
  under ``colorgan train``'s default precision (``--mixed-precision auto``: bf16 autocast
  on CPUs that compute bf16 natively, fp32 elsewhere);
- tutorial: each photo is converted with scikit-image's float64 ``rgb2lab`` inside the
  dataset, as the widely copied pix2pix-colorization tutorials and Zhang et al.'s demo
  scripts do, fed to fp32 nets in PyTorch's default memory layout.

Usage: ``python benchmarks/train_speed.py [--data DIR] [--steps 6] [--batch-size 8]``.
Prints a Markdown table; paste it into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from PIL import Image
from skimage.color import rgb2lab
from torch.utils.data import DataLoader, Dataset

from colorgan.training.data import EpochSampler, PhotoDataset, collate
from colorgan.files.discovery import find_images
from colorgan.training.losses import GANLoss
from colorgan.networks import PatchGAN, build_generator
from colorgan.training.step import Nets, to_model_input, train_step
from colorgan.training.trainer import resolve_precision


class TutorialDataset(Dataset):
    """Per-photo float64 Lab conversion in the dataset, the way the tutorials do it."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = Image.open(self.paths[i]).convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        if np.random.rand() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        lab = torch.from_numpy(rgb2lab(np.array(img)).astype("float32")).permute(2, 0, 1)
        return lab[[0]] / 50.0 - 1.0, lab[[1, 2]] / 110.0


def _accelerator(precision: str) -> Accelerator:
    # accelerate keeps one process-wide state; the two loops need different precisions.
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=True, mixed_precision=precision)


def _nets(name: str, channels_last: bool, accelerator: Accelerator) -> Nets:
    """Generator + PatchGAN + Adam as ``colorgan train`` builds them, prepared by ``accelerator``."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = build_generator(name).to(memory_format=fmt)
    d = PatchGAN().to(memory_format=fmt)
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    g, d, opt_g, opt_d = accelerator.prepare(g, d, torch.optim.Adam(g.parameters(), **adam), torch.optim.Adam(d.parameters(), **adam))
    return Nets(g, opt_g, d, opt_d, GANLoss())


def _time(batches, feed, nets: Nets, steps: int, accelerator: Accelerator) -> float:
    """Photos per second over ``steps`` steps, after one warm-up step; data loading included."""
    it = iter(batches)
    l, ab = feed(next(it))
    train_step(l, ab, nets, lambda_l1=100.0, accelerator=accelerator)
    photos, tic = 0, time.perf_counter()
    for _ in range(steps):
        l, ab = feed(next(it))
        train_step(l, ab, nets, lambda_l1=100.0, accelerator=accelerator)
        photos += len(l)
    return photos / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train/bsds500"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--generators", nargs="+", default=["unet", "resunet"])
    parser.add_argument("--mixed-precision", default="auto", help="colorgan's loop: as `colorgan train --mixed-precision`")
    args = parser.parse_args()

    paths = find_images(args.data)[: args.batch_size * (args.steps + 1)]
    precision = resolve_precision(args.mixed_precision, cpu=True)
    loader_args = dict(batch_size=args.batch_size, num_workers=args.workers, drop_last=True)
    ours = DataLoader(PhotoDataset(paths, size=args.size), sampler=EpochSampler(len(paths), seed=0), collate_fn=collate, **loader_args)
    tutorial = DataLoader(TutorialDataset(paths, args.size), shuffle=True, **loader_args)

    rows = []
    for name in args.generators:
        fast_acc = _accelerator(precision)
        fast = _time(ours, lambda b: to_model_input(b["rgb"]), _nets(name, True, fast_acc), args.steps, fast_acc)
        slow_acc = _accelerator("no")
        slow = _time(tutorial, lambda b: b, _nets(name, False, slow_acc), args.steps, slow_acc)
        rows.append(f"| {name} | {args.size} | {args.batch_size} | {fast:.2f} | {slow:.2f} | {fast / slow:.2f}× |")

    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"command: python benchmarks/train_speed.py --data {args.data} --steps {args.steps} --batch-size {args.batch_size}"
          f" --mixed-precision {args.mixed_precision} (colorgan's loop ran with precision {precision!r})\n")
    print("| generator | px | batch | colorgan photos/s | tutorial photos/s | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
