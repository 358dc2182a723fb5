"""Stable colors over time: each frame's colors carried forward along the optical flow.

Colorizing frames one by one flickers, because nothing ties a frame's colors to the last
one's. The established remedy (Lai et al. 2018 measure it; Bonneel et al. 2015 and most video
colorizers since do it): warp the previous frame's output colors to the current frame along
the optical flow and blend them with the current prediction wherever the flow can be trusted
(forward and backward flows agree and the warped lightness matches), and start afresh at scene
cuts, so no color is carried from one shot into the next.

Everything here runs on the model's own grid (size × size L* and ab): the model predicts ab
there, the flow is computed there (OpenCV's DIS, a few milliseconds at 128 px), and only the
result is upsampled to the frame, as for photos. Hints follow the same flow, so hints given
for one frame carry through its shot.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from colorgan.hints import Hint
from colorgan.video.settings import DEFAULT_STRENGTH, check_strength

# Forward-backward consistency (Sundaram et al. 2010, as Ruder et al. 2016 and Lai et al. 2018 use
# it): a pixel's flow is trusted when going there and back lands within this many pixels of where
# it started, plus a share of the motion (fast motion is measured less precisely).
FB_TOLERANCE_PX = 0.5
FB_TOLERANCE_SHARE = 0.01
# The warped previous lightness may differ from the current one by at most this (L* units):
# a larger difference means occlusion, a flash or a flow gone wrong.
LIGHTNESS_TOLERANCE = 8.0
# A cut: fewer than this share of the grid has a trusted flow, or the lightness histograms of the
# two frames differ by more than this total variation (half the L1 distance, in [0, 1]).
CUT_RELIABLE_SHARE = 0.35
CUT_HISTOGRAM_DISTANCE = 0.45
HISTOGRAM_BINS = 32


@dataclass
class Motion:
    """How frame t relates to frame t - 1 on the model's grid."""

    backward: np.ndarray  # (S, S, 2): where each pixel of t was in t - 1 (x, y offsets)
    forward: np.ndarray  # (S, S, 2): where each pixel of t - 1 went in t
    reliable: np.ndarray  # (S, S) float32 in [0, 1]: how far the backward flow is trusted
    cut: bool


@dataclass
class TemporalState:
    """What carries from one frame to the next: saved with each finished segment of a video, so a
    resumed job continues exactly where the uninterrupted one would be."""

    lightness: np.ndarray | None = None  # (S, S) uint8, the last frame's L* on the grid (0-255 scale)
    ab: np.ndarray | None = None  # (2, S, S) float32, the last frame's output ab (normalized)
    hints: list[tuple[float, float, tuple[float, float]]] = field(default_factory=list)  # (x, y) in grid pixels, ab
    frame: int = 0  # index of the next frame

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"frame": np.array(self.frame)}
        if self.lightness is not None and self.ab is not None:
            arrays |= {"lightness": self.lightness, "ab": self.ab}
        arrays["hints"] = np.array([(x, y, a, b) for x, y, (a, b) in self.hints], np.float64).reshape(-1, 4)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TemporalState:
        hints = [(float(x), float(y), (float(a), float(b))) for x, y, a, b in arrays["hints"]]
        return cls(lightness=arrays.get("lightness"), ab=arrays.get("ab"), hints=hints, frame=int(arrays["frame"]))


class Stabilizer:
    """Flow, reliability and cut detection between consecutive frames, and the blend of colors.

    ``strength`` (0 to 1) is the weight of the carried colors where the flow is fully trusted:
    0 is frame-by-frame colorization, higher is steadier but slower to follow real color changes.
    """

    def __init__(self, *, strength: float = DEFAULT_STRENGTH) -> None:
        self.strength = check_strength(strength)
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    def motion(self, previous: np.ndarray, current: np.ndarray) -> Motion:
        """The flows between two grid lightness images (uint8 (S, S)), where they can be trusted, and whether a cut lies between."""
        backward = self._flow.calc(current, previous, None)
        forward = self._flow.calc(previous, current, None)
        consistent = round_trip_holds(backward, forward)
        previous_there = warp(previous.astype(np.float32), backward)
        # Grid lightness is stored on 0-255; L* tolerance scaled to it.
        matches = np.abs(previous_there - current.astype(np.float32)) <= LIGHTNESS_TOLERANCE * 2.55
        inside = _inside(backward)
        reliable = (consistent & matches & inside).astype(np.float32)
        cut = reliable.mean() < CUT_RELIABLE_SHARE or histogram_distance(previous, current) > CUT_HISTOGRAM_DISTANCE
        # Softened, so the blend has no hard seams where trust ends.
        reliable = cv2.blur(reliable, (3, 3)) * inside
        return Motion(backward=backward, forward=forward, reliable=reliable, cut=bool(cut))

    def blend(self, motion: Motion, previous_ab: np.ndarray, predicted_ab: np.ndarray) -> np.ndarray:
        """The frame's ab (2, S, S): its prediction, pulled towards the previous output warped along
        the flow where the flow is trusted. At a cut, the prediction alone."""
        if motion.cut or self.strength == 0.0:
            return predicted_ab
        carried = np.stack([warp(channel, motion.backward) for channel in previous_ab])
        weight = self.strength * motion.reliable
        return (predicted_ab + weight * (carried - predicted_ab)).astype(np.float32)


def round_trip_holds(there: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Where following ``there`` (from this frame to the other) and then ``back`` (from the other to
    this one) returns to the start, within tolerance: pixels seen in both frames (Sundaram et al. 2010)."""
    back_there = warp(back, there)
    round_trip = np.sum((there + back_there) ** 2, axis=-1)
    motion_size = np.sum(there**2, axis=-1) + np.sum(back_there**2, axis=-1)
    return round_trip <= FB_TOLERANCE_SHARE * motion_size + FB_TOLERANCE_PX


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at each pixel plus its flow (bilinear, edges clamped): the previous frame
    seen from the current one when ``flow`` is the backward flow."""
    grid_x, grid_y = _grid(*flow.shape[:2])
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _inside(flow: np.ndarray) -> np.ndarray:
    """Where following ``flow`` stays on the grid (content that came in from outside has no past)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = _grid(height, width)
    x, y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's own x and y (made once per grid size: every frame uses them several times)."""
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid_x.flags.writeable = grid_y.flags.writeable = False
    return grid_x, grid_y


def histogram_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Total variation between two lightness images' histograms: 0 for the same tones, 1 for disjoint ones."""
    bins = np.linspace(0, 256, HISTOGRAM_BINS + 1)
    h1, _ = np.histogram(first, bins)
    h2, _ = np.histogram(second, bins)
    return 0.5 * float(np.abs(h1 / h1.sum() - h2 / h2.sum()).sum())


def track_hints(hints: list[tuple[float, float, tuple[float, float]]], motion: Motion, size: int) -> list[tuple[float, float, tuple[float, float]]]:
    """Hints moved along the forward flow to the current frame; those that leave the frame or land
    where the flow is not trusted are dropped (their color is then carried by the blend alone)."""
    moved = []
    for x, y, ab in hints:
        col, row = min(size - 1, max(0, int(round(x)))), min(size - 1, max(0, int(round(y))))
        dx, dy = motion.forward[row, col]
        nx, ny = x + float(dx), y + float(dy)
        if 0 <= nx <= size - 1 and 0 <= ny <= size - 1 and motion.reliable[int(round(ny)), int(round(nx))] >= 0.5:
            moved.append((nx, ny, ab))
    return moved


def grid_hints(hints: list[Hint], *, width: int, height: int, size: int) -> list[tuple[float, float, tuple[float, float]]]:
    """User hints of a width × height frame as (x, y) grid positions with their ab, for tracking."""
    out = []
    for hint in hints:
        fx, fy = hint.position(width, height)
        out.append((fx * size - 0.5, fy * size - 0.5, hint.ab))
    return out
