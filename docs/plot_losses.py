"""Plot training curves from runs' ``losses.csv`` files for docs/RESULTS.md.

Usage: ``python docs/plot_losses.py runs/final_pretrain runs/final_gan --out docs/curves.png``
(needs matplotlib, which colorgan itself does not depend on).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = [
    ("training losses (×λ for L1)", ["Loss_G_L1", "Loss_G", "val_Loss_G_L1"]),
    ("adversarial terms", ["Loss_D_fake", "Loss_D_real", "Loss_D", "Loss_G_GAN"]),
    ("validation PSNR (dB)", ["val_psnr"]),
    ("validation colorfulness / ΔCF", ["val_cf", "val_delta_cf"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
    epoch_offset = 0
    for run in args.runs:
        rows = list(csv.DictReader((run / "losses.csv").open()))
        epochs = [epoch_offset + int(r["epoch"]) for r in rows]
        for ax, (title, columns) in zip(axes, PANELS):
            for col in columns:
                points = [(e, float(r[col])) for e, r in zip(epochs, rows) if r.get(col)]
                if points:
                    ax.plot(*zip(*points), marker="o", ms=3, label=f"{run.name}: {col}")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epoch (stages back to back)", fontsize=8)
        epoch_offset = epochs[-1] if epochs else epoch_offset
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
