"""Shot memory: the colors of everything a shot has shown, so content that comes back gets them again.

The optical flow carries colors only while a point stays in view: background that a passing
object uncovers, or a view the camera pans away from and back to, would be colorized afresh,
in whatever colors the model now prefers. So each shot also keeps a canvas of its colors laid
out as the camera saw them (a mosaic, as video panoramas are built: Szeliski 2006): each frame's
camera motion is fitted to the flow as one affine map, the frame's colors are written onto the
canvas where the pixels move with the camera (not a passing object), and a pixel the flow cannot
follow takes the color remembered at its place on the canvas when the lightness remembered
there matches its own (so a wrong placement, parallax, or a real change falls back to the
frame's prediction).

Everything is on the model's grid; the canvas is :data:`CANVAS_SCALE` grids wide, the shot's first
frame at its center. A memory is never changed in place: a finished video segment saves the
state it ends with while the next is being colorized.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

CANVAS_SCALE = 3
# A remembered color is taken where the L* remembered at that place is within this of the pixel's own.
LIGHTNESS_TOLERANCE = 8.0
# The camera fit uses every FIT_STEP-th grid pixel in each direction where the flow is trusted, and
# the pixels within FIT_TOLERANCE grid pixels of it move with the camera.
FIT_STEP = 4
FIT_TOLERANCE = 1.0


@dataclass(frozen=True)
class ShotMemory:
    """The shot's canvas and where the current frame lies on it."""

    canvas: np.ndarray  # (4, C, C) float32: a, b (normalized), L*, age; age 0 where nothing was seen
    placement: np.ndarray  # (2, 3) float64: a grid pixel (x, y, 1) of the current frame -> its canvas pixel

    @classmethod
    def start(cls, ab: np.ndarray, lightness: np.ndarray, age: np.ndarray) -> ShotMemory:
        """A shot's memory holding its first frame (ab (2, S, S), L* (S, S), age (S, S)) at the canvas center."""
        size = lightness.shape[0]
        border = (CANVAS_SCALE - 1) * size / 2
        empty = cls(np.zeros((4, CANVAS_SCALE * size, CANVAS_SCALE * size), np.float32), np.array([[1, 0, border], [0, 1, border]], np.float64))
        return empty.remember(ab, lightness, age, np.ones(lightness.shape, bool))

    def follow(self, backward: np.ndarray, reliable: np.ndarray) -> tuple[ShotMemory, np.ndarray] | None:
        """The memory placed at the next frame, given its backward flow and where that is trusted, and
        which of its pixels move with the camera; None when too little of the flow is trusted to tell."""
        camera = _fit_camera(backward, reliable)
        if camera is None:
            return None
        x, y = _pixels(reliable.shape[0])
        (ax, ay, ac), (bx, by, bc) = camera
        off = np.hypot(ax * x + ay * y + ac - x - backward[..., 0], bx * x + by * y + bc - y - backward[..., 1])
        with_camera = (off <= FIT_TOLERANCE) & (reliable >= 0.5)
        return ShotMemory(self.canvas, self.placement @ np.vstack([camera, [0, 0, 1]])), with_camera

    def recall(self, lightness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The colors (2, S, S) and their ages (S, S) remembered at each pixel of the current frame; age 0
        where nothing was, or where the L* remembered there differs from ``lightness`` (S, S)."""
        x, y = _pixels(lightness.shape[0])
        (ax, ay, ac), (bx, by, bc) = self.placement
        map_x, map_y = (ax * x + ay * y + ac).astype(np.float32), (bx * x + by * y + bc).astype(np.float32)
        seen = np.stack([cv2.remap(channel, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                         for channel in self.canvas])
        age = seen[3] * (np.abs(seen[2] - lightness) <= LIGHTNESS_TOLERANCE)
        return seen[:2], age

    def remember(self, ab: np.ndarray, lightness: np.ndarray, age: np.ndarray, where: np.ndarray) -> ShotMemory:
        """A memory that also holds the current frame's colors where ``where`` (S, S bool) says."""
        size, side = lightness.shape[0], self.canvas.shape[1]
        corners = self.placement @ np.array([[-1, -1, size, size], [-1, size, -1, size], [1, 1, 1, 1]], np.float64)
        (x0, y0), (x1, y1) = np.clip(np.floor(corners.min(1)), 0, side).astype(int), np.clip(np.ceil(corners.max(1)) + 1, 0, side).astype(int)
        canvas = self.canvas.copy()
        if x1 <= x0 or y1 <= y0:  # the frame lies off the canvas: nothing to keep
            return ShotMemory(canvas, self.placement)
        to_box = self.placement - np.array([[0, 0, x0], [0, 0, y0]])  # only the canvas box the frame covers
        layers = np.concatenate([ab, lightness[None], age[None], where[None].astype(np.float32)])
        placed = np.stack([cv2.warpAffine(layer, to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0) for layer in layers])
        # inside what ``where`` marks, not at its blurred rim
        np.copyto(canvas[:, y0:y1, x0:x1], placed[:4], where=placed[4] > 0.99)
        return ShotMemory(canvas, self.placement)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"memory": self.canvas, "placement": self.placement}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ShotMemory | None:
        """The memory saved by :meth:`to_arrays`, or None when there is none (a state saved without)."""
        if "memory" not in arrays:
            return None
        return cls(np.asarray(arrays["memory"], np.float32), np.asarray(arrays["placement"], np.float64))


@functools.lru_cache(maxsize=4)
def _pixels(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each grid pixel's x and y, float64 (made once per size)."""
    x, y = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _fit_camera(backward: np.ndarray, reliable: np.ndarray) -> np.ndarray | None:
    """The affine map (2, 3) from a frame's grid pixels to where they were in the previous frame that
    best fits the trusted flow (least squares, refitted without the pixels that move otherwise)."""
    size = reliable.shape[0]
    picked = (slice(FIT_STEP // 2, None, FIT_STEP),) * 2
    y, x = np.mgrid[0:size, 0:size][(slice(None), *picked)].astype(np.float64)
    trusted = reliable[picked] >= 0.99
    if trusted.sum() < 0.1 * trusted.size:
        return None
    source = np.column_stack([x[trusted], y[trusted], np.ones(trusted.sum())])
    target = source[:, :2] + backward[picked][trusted]
    fit, *_ = np.linalg.lstsq(source, target, rcond=None)
    keep = np.linalg.norm(source @ fit - target, axis=1) <= FIT_TOLERANCE
    if keep.sum() >= 0.5 * len(keep):  # the camera's motion is most of what moves
        fit, *_ = np.linalg.lstsq(source[keep], target[keep], rcond=None)
    return fit.T
