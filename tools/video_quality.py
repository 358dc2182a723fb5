"""Temporal consistency of video colorization (issue 16): frame by frame vs stable colors vs the gray input.

Films a few photos per folder of PHOTOS with a moving virtual camera (colorgan.video.quality:
a pan and a zoom per shot, 24 fps, hard cuts between shots), makes the clip gray, colorizes it
three ways and scores each against the color truth: E_warp (Lai et al. 2018; flow and
occlusions from the true frames, pairs across cuts left out), per-frame PSNR and colorfulness,
and what happens at the cuts. Tune on training photos, report on validation photos:

    python tools/video_quality.py ../shared/data/train --strengths 0.5,0.7,0.85,0.9,0.95   # choosing
    python tools/video_quality.py ../shared/data/val --strip docs/video_strip.jpg           # reporting
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from colorgan import Colorizer
from colorgan.color import luminance
from colorgan.files.discovery import find_images, top_folder
from colorgan.evaluation.metrics import colorfulness, psnr
from colorgan.video.frames import FrameColorizer
from colorgan.video.quality import camera_clip, warping_error
from colorgan.video.settings import DEFAULT_STRENGTH


def pick_photos(root: Path, per_folder: int, seed: int) -> list[Image.Image]:
    """``per_folder`` photos of each top-level folder, drawn with ``seed``, in a shuffled order of shots."""
    by_folder: dict[str, list[Path]] = {}
    for path in find_images(root):
        by_folder.setdefault(top_folder(path.relative_to(root)), []).append(path)
    rng = np.random.default_rng(seed)
    chosen = [p for folder in sorted(by_folder) for p in rng.choice(by_folder[folder], min(per_folder, len(by_folder[folder])), replace=False)]
    rng.shuffle(chosen)
    return [Image.open(p).convert("RGB") for p in chosen]


def gray(frame: np.ndarray) -> np.ndarray:
    """The black-and-white version of a color frame: its L*, as an 8-bit gray level (colorgan's own rule)."""
    return np.repeat(np.clip(luminance(frame) * 2.55 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def score(name: str, frames: list[np.ndarray], truth: list[np.ndarray], starts: list[int]) -> dict[str, float | str]:
    batch, target = np.stack(frames), np.stack(truth)
    return {"method": name, "E_warp": warping_error(frames, truth, starts),
            "E_warp_ab": warping_error(frames, truth, starts, space="ab"), "PSNR": float(psnr(batch, target).mean()),
            "CF": float(colorfulness(batch).mean())}


def strip(rows: dict[str, list[np.ndarray]], indices: list[int], path: Path) -> None:
    """A grid: one row per method, one column per chosen frame."""
    height, width = rows["truth"][0].shape[:2]
    label = 110
    canvas = Image.new("RGB", (label + width * len(indices), height * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, frames) in enumerate(rows.items()):
        draw.text((6, r * height + height // 2 - 6), name, fill="black")
        for c, i in enumerate(indices):
            canvas.paste(Image.fromarray(frames[i]), (label + c * width, r * height))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("--per-folder", type=int, default=3, help="shots per top-level folder")
    parser.add_argument("--size", default="320x180", help="frame size WxH")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per shot")
    parser.add_argument("--strengths", default=str(DEFAULT_STRENGTH), help="comma-separated temporal strengths to compare")
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strip", type=Path, help="save a strip of frames (truth, gray, frame by frame, stable)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    photos = pick_photos(args.photos, args.per_folder, args.seed)
    truth, starts = camera_clip(photos, width=width, height=height, seconds_per_shot=args.seconds, seed=args.seed)
    gray_frames = [gray(f) for f in truth]
    colorizer = Colorizer.from_pretrained(args.model)
    print(f"{len(photos)} shots, {len(truth)} frames of {width}x{height} from {args.photos}; cuts at {len(starts) - 1} frames\n")
    start = time.perf_counter()
    alone = list(FrameColorizer(colorizer, temporal=False).colorize_all(gray_frames))
    print(f"frame by frame: {len(truth) / (time.perf_counter() - start):.0f} fps in memory")
    results = [score("gray input", gray_frames, truth, starts), score("frame by frame", alone, truth, starts)]
    rows = {"truth": truth, "gray": gray_frames, "frame by frame": alone}
    for strength in (float(s) for s in args.strengths.split(",")):
        stable = FrameColorizer(colorizer, strength=strength)
        colored = list(stable.colorize_all(gray_frames))
        found = set(stable.cuts)
        missed = [s for s in starts[1:] if s not in found]
        fresh = sum(np.array_equal(colored[s], alone[s]) for s in starts[1:] if s in found)
        result = score(f"stable, strength {strength}", colored, truth, starts)
        result["cuts"] = f"{len(found & set(starts[1:]))}/{len(starts) - 1} found, {len(found - set(starts))} false, {fresh} restart clean"
        results.append(result)
        rows[f"stable {strength}"] = colored
        if missed:
            print(f"strength {strength}: missed cuts at frames {missed}")
    base, base_ab = results[1]["E_warp"], results[1]["E_warp_ab"]
    print("\n| method | E_warp RGB (×10⁻³) | vs frame by frame | E_warp a*b* (ΔE²) | vs frame by frame | PSNR (dB) | CF | cuts |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        change = f"{100 * (r['E_warp'] / base - 1):+.0f} %" if base else ""
        change_ab = f"{100 * (r['E_warp_ab'] / base_ab - 1):+.0f} %" if base_ab else ""
        print(f"| {r['method']} | {1000 * r['E_warp']:.3f} | {change} | {r['E_warp_ab']:.2f} | {change_ab} | {r['PSNR']:.2f} | "
              f"{r['CF']:.2f} | {r.get('cuts', '')} |")
    if args.strip is not None:
        shot = 1 if len(starts) > 1 else 0
        first = starts[shot]
        picks = [first + k for k in (0, 6, 12, 18)] + [max(0, starts[shot + 1] - 1) if shot + 1 < len(starts) else len(truth) - 1]
        strip({k: v for k, v in rows.items() if k in ("truth", "gray", "frame by frame") or k == f"stable {DEFAULT_STRENGTH}"}
              | {k: v for k, v in rows.items() if k.startswith("stable")}, picks, args.strip)
        print(f"\nstrip of frames {picks}: {args.strip}")


if __name__ == "__main__":
    main()
