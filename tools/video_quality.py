"""Temporal consistency of video colorization (issues 16 and 30): flicker, drift, cuts.

Films photos of each folder of PHOTOS with a moving virtual camera (colorgan.video.quality, 24
fps, hard cuts between shots), makes the clip gray, colorizes it several ways and scores each
against the color truth: E_warp (Lai et al. 2018; flow and occlusions from the true frames,
pairs across cuts left out), per-frame PSNR and colorfulness, drift (how far the colors of
scene points seen for 2 s or more wander between their first and last frame, beyond the truth's
own change) and what happens at the cuts. The ways: the gray input, frame by frame, the fixed
blend of issue 16 (every carried color at one weight) and long-term colors (the default).

By default, short shots (a pan and a zoom, 2 s); with --long, 10 s shots of the kinds that
expose drift (a pan revealing new content, zoom in, zoom out, an object crossing, a lighting
change, a pan away and back), with a table of drift per kind. Tune on training photos, report
on validation photos:

    python tools/video_quality.py ../shared/data/train --long --per-folder 1                # choosing
    python tools/video_quality.py ../shared/data/val --long --per-folder 1 --strip docs/video_drift_strip.jpg
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from colorgan import Colorizer
from colorgan.color import luminance
from colorgan.evaluation.metrics import colorfulness, psnr
from colorgan.files.discovery import find_images, top_folder
from colorgan.video.frames import FrameColorizer
from colorgan.video.quality import FPS, LONG_KINDS, Clip, drift, drift_by_shot, long_clip, random_clip, warping_errors
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


class Remembering:
    """A colorizer that runs the model once per distinct batch: every method colorizes the same
    gray frames (no hints), so the model's answers are the same for all of them."""

    def __init__(self, colorizer: Colorizer) -> None:
        self._colorizer, self._answers = colorizer, {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._colorizer, name)

    def predict_ab(self, l_norm: np.ndarray, cond: np.ndarray | None = None) -> np.ndarray:
        key = hashlib.sha1(l_norm.tobytes()).hexdigest()
        if cond is not None or key not in self._answers:
            self._answers[key] = self._colorizer.predict_ab(l_norm, cond)
        return self._answers[key]


def strip(rows: dict[str, list[np.ndarray]], indices: list[int], path: Path) -> None:
    """A grid: one row per method, one column per chosen frame."""
    height, width = next(iter(rows.values()))[0].shape[:2]
    label = 110
    canvas = Image.new("RGB", (label + width * len(indices), height * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, frames) in enumerate(rows.items()):
        draw.text((6, r * height + height // 2 - 6), name, fill="black")
        for c, i in enumerate(indices):
            canvas.paste(Image.fromarray(frames[i]), (label + c * width, r * height))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=90)


def colorize(colorizer: Any, clip: Clip, gray_frames: list[np.ndarray],
             args: argparse.Namespace) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Every method's frames, and how the temporal methods' cuts compare with the clip's."""
    start = time.perf_counter()
    outputs = {"gray input": gray_frames, "frame by frame": list(FrameColorizer(colorizer, temporal=False).colorize_all(gray_frames))}
    print(f"frame by frame: {len(gray_frames) / (time.perf_counter() - start):.0f} fps in memory")
    cuts = {}
    for strength in (float(s) for s in args.strengths.split(",")):
        for long_term, name in ((False, "fixed blend"), (True, "long-term")):
            stable = FrameColorizer(colorizer, strength=strength, long_term=long_term)
            start = time.perf_counter()
            outputs[f"{name} {strength}"] = colored = list(stable.colorize_all(gray_frames))
            found, true = set(stable.cuts), set(clip.starts[1:])
            fresh = sum(np.array_equal(colored[s], outputs["frame by frame"][s]) for s in true & found)
            cuts[f"{name} {strength}"] = f"{len(found & true)}/{len(true)} found, {len(found - true)} false, {fresh} restart clean"
            print(f"{name} {strength}: {len(gray_frames) / (time.perf_counter() - start):.0f} fps in memory")
    return outputs, cuts


def report(outputs: dict[str, list[np.ndarray]], cuts: dict[str, str], clip: Clip, kinds: list[str] | None, span: int) -> None:
    """The table of every method (and with ``kinds``, the drift of each kind of shot), drift over points seen ``span`` frames."""
    names = list(outputs)
    errors = warping_errors([outputs[n] for n in names], clip.frames, clip.starts)
    truth = np.stack(clip.frames)
    rows = [{"method": n, "E_warp": e[0], "E_warp_ab": e[1], "PSNR": float(psnr(np.stack(outputs[n]), truth).mean()),
             "CF": float(colorfulness(np.stack(outputs[n])).mean()), "drift": drift(outputs[n], clip, min_frames=span)} for n, e in zip(names, errors, strict=True)]
    base = rows[1]

    def versus(r: dict, key: str) -> str:
        return f"{100 * (r[key] / base[key] - 1):+.0f} %" if base[key] else ""

    print("\n| method | E_warp RGB (×10⁻³) | vs frame by frame | E_warp a\\*b\\* (ΔE²) | vs frame by frame | PSNR (dB) | CF "
          "| drift (ΔE) | vs frame by frame | cuts |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['method']} | {1000 * r['E_warp']:.3f} | {versus(r, 'E_warp')} | {r['E_warp_ab']:.2f} | {versus(r, 'E_warp_ab')} | "
              f"{r['PSNR']:.2f} | {r['CF']:.2f} | {r['drift']:.2f} | {versus(r, 'drift')} | {cuts.get(r['method'], '')} |")
    if kinds:
        per_shot = {n: drift_by_shot(outputs[n], clip, min_frames=span) for n in names}
        counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
        print("\ndrift (ΔE) by kind of shot:\n\n| method | " + " | ".join(f"{k} ({n})" for k, n in counts.items())
              + " |\n| --- |" + " ---: |" * len(counts))
        for n in names:
            means = {k: np.nanmean([d for d, kind in zip(per_shot[n], kinds, strict=True) if kind == k]) for k in dict.fromkeys(kinds)}
            print(f"| {n} | " + " | ".join(f"{m:.2f}" for m in means.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("--per-folder", type=int, default=3, help="shots per top-level folder")
    parser.add_argument("--size", default="320x180", help="frame size WxH")
    parser.add_argument("--long", action="store_true", help="10 s shots of the kinds in colorgan.video.quality.LONG_KINDS")
    parser.add_argument("--seconds", type=float, help="seconds per shot (default 2, or 10 with --long)")
    parser.add_argument("--strengths", default=str(DEFAULT_STRENGTH), help="comma-separated temporal strengths to compare")
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strip", type=Path, help="save a strip of frames: the first, middle and last of a pan (--long) or of a shot")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    photos = pick_photos(args.photos, args.per_folder, args.seed)
    seconds = args.seconds or (10.0 if args.long else 2.0)
    make = long_clip if args.long else random_clip
    clip = make(photos, width=width, height=height, seed=args.seed, **{"seconds" if args.long else "seconds_per_shot": seconds})
    gray_frames = [gray(f) for f in clip.frames]
    span = min(2 * FPS, round(seconds * FPS) // 2)  # drift: of points seen 2 s or more (half a shot, if shorter)
    print(f"{len(photos)} shots of {seconds:g} s, {len(clip.frames)} frames of {width}x{height} from {args.photos}; "
          f"cuts at {len(clip.starts) - 1} frames; drift over points seen {span} frames or more\n")
    outputs, cuts = colorize(Remembering(Colorizer.from_pretrained(args.model)), clip, gray_frames, args)
    if args.strip is not None:
        shot = 0 if args.long else min(1, len(clip.starts) - 1)  # long_clip's first shot is a pan
        first, last = clip.starts[shot], (clip.starts[shot + 1:] or [len(clip.frames)])[0] - 1
        rows = {"truth": clip.frames} | {k: v for k, v in outputs.items() if k in ("frame by frame", f"fixed blend {DEFAULT_STRENGTH}", f"long-term {DEFAULT_STRENGTH}")}
        strip(rows, [first, (first + last) // 2, last], args.strip)
        print(f"strip of frames {first}, {(first + last) // 2}, {last}: {args.strip}")
    kinds = [LONG_KINDS[i % len(LONG_KINDS)] for i in range(len(clip.starts))] if args.long else None
    report(outputs, cuts, clip, kinds, span)


if __name__ == "__main__":
    main()
