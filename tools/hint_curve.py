"""How much hints help: PSNR against the number of true-color hints per photo (Zhang et al. 2017, Fig. 6).

Runs ``colorgan evaluate --hints N`` for each N (random places fixed per photo, so every model
gets the same hints), plus the gray baseline, and writes one JSON report per run, a Markdown
table, a plot (matplotlib, ``pip install -e ".[plots]"``) and a grid of a few photos
(gray | automatic | 5 hints | truth) into ``--out``:

    python tools/hint_curve.py --data ../shared/data/val --out docs/eval/issue14/curve
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from colorgan.files.discovery import find_images
from colorgan.evaluation.evaluate import EvalSettings, evaluate, save_grid, score_colorizer
from colorgan.files.atomic import write_report
from colorgan.colorizer import Colorizer

COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default=None, help="a hint-capable model (default: the bundled default)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--grid", type=Path, nargs="*", default=[], help="photos (under --data) for the grid")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)

    def run(name: str, **settings) -> dict:
        target = args.out / f"{name}.json"
        if not target.exists():  # a killed sweep resumes where it stopped
            write_report(target, evaluate(EvalSettings(data=args.data, limit=args.limit, **settings)).report)
        return json.loads(target.read_text())

    gray = run("gray", baseline="gray")["metrics"]
    rows = {n: run(f"hints_{n:03d}", model=args.model, hints=n)["metrics"] for n in args.counts}
    auto = rows.get(0)
    lines = ["| hints per photo | PSNR (dB) | gain over 0 hints (dB) | SSIM | AuC (%) | ΔCF |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines.append(f"| gray input | {gray['psnr']:.2f} | | {gray['ssim']:.4f} | {gray['auc']:.2f} | {gray['delta_cf']:.2f} |")
    for n, m in rows.items():
        gain = f"{m['psnr'] - auto['psnr']:+.2f}" if auto else ""
        lines.append(f"| {n} | {m['psnr']:.2f} | {gain} | {m['ssim']:.4f} | {m['auc']:.2f} | {m['delta_cf']:.2f} |")
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(rows, gray, args.out / "psnr_vs_hints.png")
    if args.grid:
        _grid(args, [args.data / p for p in args.grid])


GRID_HINTS = 5


def _grid(args: argparse.Namespace, paths: list[Path]) -> None:
    """gray | automatic | GRID_HINTS hints | truth for ``paths``, through evaluate's own scoring path."""
    colorizer = Colorizer.from_pretrained(args.model, device="cpu")
    found = set(find_images(args.data))
    missing = [p for p in paths if p not in found]
    if missing:
        raise SystemExit(f"not photos under {args.data}: {', '.join(map(str, missing))}")
    automatic = score_colorizer(colorizer, paths, data=args.data, grid_rows=len(paths))[0].grid
    guided = score_colorizer(colorizer, paths, data=args.data, grid_rows=len(paths), hints=GRID_HINTS)[0].grid
    rows = [(gray, auto, hinted, truth) for (gray, auto, truth), (_, hinted, _) in zip(automatic, guided, strict=True)]
    path = args.out / "grid_hints.png"
    save_grid(rows, path, columns=("gray input", "automatic", f"{GRID_HINTS} true-color hints", "ground truth"))
    print(f"wrote {path}")


def _plot(rows: dict[int, dict], gray: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = list(rows)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    # 0 hints cannot sit on a log axis: it is drawn at 0.5, labeled 0
    xs = [max(n, 0.5) for n in counts]
    axes.plot(xs, [rows[n]["psnr"] for n in counts], "o-", label="colorgan with true-color hints")
    axes.axhline(gray["psnr"], color="gray", linestyle=":", label="gray input")
    if 0 in rows:
        axes.axhline(rows[0]["psnr"], color="tab:orange", linestyle="--", label="automatic (no hints)")
    axes.set_xscale("log")
    axes.set_xticks(xs, [str(n) for n in counts])
    axes.set_xlabel("hints per photo (random places, true colors)")
    axes.set_ylabel("PSNR (dB, 256 px)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
