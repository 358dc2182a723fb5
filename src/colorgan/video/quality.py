"""Measuring video colorization: footage with a known truth, and the temporal warping error.

Real color film made gray would be the ideal test, but the package registries carry no clearly
licensed clips; :func:`camera_clip` instead films still color photos with a moving virtual camera
(a pan and a zoom per shot, eased, at 24 fps, a hard cut between shots), so every frame has its
truth and the motion is that of real footage of a still scene.

:func:`warping_error` is E_warp of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"):
the mean squared RGB difference (0-1 scale) between each frame and the next one warped back onto
it, along the optical flow of the *true* frames, counting only pixels visible in both
(forward-backward check) and no pair that straddles a cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from colorgan.color import rgb_to_lab
from colorgan.video.temporal import round_trip_holds, warp

FPS = 24


@dataclass(frozen=True)
class Shot:
    """One photo filmed by the virtual camera: a crop window moving from ``start`` to ``end``
    (left, top, width, height as fractions of the photo) over ``frames`` frames."""

    photo: Image.Image
    start: tuple[float, float, float, float]
    end: tuple[float, float, float, float]
    frames: int


def random_shot(photo: Image.Image, *, width: int, height: int, frames: int, rng: np.random.Generator) -> Shot:
    """A pan and a zoom across ``photo`` with windows of the output's aspect ratio: the window's
    size changes by up to 25 % and its center travels up to a third of the photo."""
    aspect = (width / height) / (photo.width / photo.height)  # the window's width/height in photo fractions

    def window() -> tuple[float, float, float, float]:
        scale = rng.uniform(0.6, 0.85)
        w, h = (scale, scale / aspect) if aspect <= 1 else (scale * aspect, scale)
        w, h = min(w, 1.0), min(h, 1.0)
        return float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h)), w, h

    start = window()
    zoom = rng.uniform(0.8, 1.25)
    w, h = min(start[2] * zoom, 1.0), min(start[3] * zoom, 1.0)
    cx = np.clip(start[0] + start[2] / 2 + rng.uniform(-1, 1) / 6, w / 2, 1 - w / 2)
    cy = np.clip(start[1] + start[3] / 2 + rng.uniform(-1, 1) / 6, h / 2, 1 - h / 2)
    return Shot(photo, start, (float(cx - w / 2), float(cy - h / 2), w, h), frames)


def shot_frames(shot: Shot, *, width: int, height: int) -> Iterator[np.ndarray]:
    """The shot's RGB frames (height, width, 3) uint8: the window eased in and out, resampled bicubically."""
    pw, ph = shot.photo.size
    for i in range(shot.frames):
        t = i / max(1, shot.frames - 1)
        t = t * t * (3 - 2 * t)  # smoothstep: a camera starts and stops gently
        left, top, w, h = (a + (b - a) * t for a, b in zip(shot.start, shot.end, strict=True))
        box = (left * pw, top * ph, (left + w) * pw, (top + h) * ph)
        yield np.asarray(shot.photo.resize((width, height), Image.Resampling.BICUBIC, box=box))


def camera_clip(photos: Sequence[Image.Image], *, width: int, height: int, seconds_per_shot: float = 2.0,
                seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """A clip of one shot per photo, hard cuts between them: (RGB frames, index of each shot's first frame)."""
    rng = np.random.default_rng(seed)
    frames: list[np.ndarray] = []
    starts = []
    for photo in photos:
        starts.append(len(frames))
        shot = random_shot(photo.convert("RGB"), width=width, height=height, frames=round(seconds_per_shot * FPS), rng=rng)
        frames.extend(shot_frames(shot, width=width, height=height))
    return frames, starts


def warping_error(frames: Sequence[np.ndarray], truth: Sequence[np.ndarray], shot_starts: Sequence[int], *,
                  space: str = "rgb") -> float:
    """E_warp of ``frames`` (RGB uint8), with the flow and occlusions taken from ``truth``; pairs of
    frames across a cut (a frame in ``shot_starts``) are left out.

    ``space="rgb"`` compares RGB on 0-1, as Lai et al.; ``"ab"`` compares only the chroma (a*, b*
    in CIELAB units, so squared ΔE): a colorizer keeps the input's lightness, so RGB's error has a
    floor (the flow's own errors on the lightness, the same for every method) that chroma has not.
    """
    if len(frames) != len(truth):
        raise ValueError(f"{len(frames)} frames but {len(truth)} true frames")
    if space not in ("rgb", "ab"):
        raise ValueError(f"space must be rgb or ab, got {space!r}")

    def values(frame: np.ndarray) -> np.ndarray:
        if space == "ab":
            return np.ascontiguousarray(rgb_to_lab(frame.astype(np.float32) / 255.0)[..., 1:], dtype=np.float32)
        return frame.astype(np.float32) / 255.0

    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    cuts = set(shot_starts)
    errors = []
    for t in range(len(frames) - 1):
        if t + 1 in cuts:
            continue
        gray_now = cv2.cvtColor(truth[t], cv2.COLOR_RGB2GRAY)
        gray_next = cv2.cvtColor(truth[t + 1], cv2.COLOR_RGB2GRAY)
        ahead = flow.calc(gray_now, gray_next, None)  # where each pixel of t is in t + 1
        back = flow.calc(gray_next, gray_now, None)
        visible = round_trip_holds(ahead, back)
        next_here = warp(values(frames[t + 1]), ahead)
        squared = np.sum((values(frames[t]) - next_here) ** 2, axis=-1)
        if visible.any():
            errors.append(float(squared[visible].mean()))
    return float(np.mean(errors)) if errors else 0.0
