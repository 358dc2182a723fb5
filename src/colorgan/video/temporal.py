"""Stable colors over time: each frame's colors carried forward along the optical flow.

Colorizing frames one by one flickers, because nothing ties a frame's colors to the last
one's. The established remedy (Lai et al. 2018 measure it; Bonneel et al. 2015 and most video
colorizers since do it): warp the previous frame's output colors to the current frame along
the optical flow and blend them with the current prediction wherever the flow can be trusted
(forward and backward flows agree and the warped lightness matches), and start afresh at scene
cuts, so no color is carried from one shot into the next.

A blend at a fixed weight is an exponential average with a memory of a few frames: over a long
shot, colors drift wherever the model changes its mind as the framing changes (a canyon wall
brown at the start of a pan, teal at its end). So each pixel also carries the *age* of its
color, for how many frames the flow has followed it, and the longer a color has been followed
the more it weighs (:data:`MAX_ORDER`), until it is all but locked; new content is shifted
towards the colors already around it (:data:`SPREAD_SIGMA`), and content seen earlier in the
shot, background a passing object uncovers or a view the camera returns to, gets back the
colors it had (:mod:`colorgan.video.memory`). Colors then change where the scene does.

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
from colorgan.video.memory import ShotMemory
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
# Long-term colors: the colors carried along a track the flow has followed for ``age`` frames
# weigh 1 - (1 - strength) ** min(age, MAX_ORDER): ``strength`` itself one frame after the track
# began (the fixed blend of issue 16 gives every carried color that weight), then what the fixed
# blend would have left of a color seen ``age`` times, so a point tracked a few frames is all but
# locked (0.9987 at strength 0.85), yet never quite (colors can still follow a slow real change).
# The largest order that keeps PSNR within 0.2 dB of frame by frame on long_clip shots of training
# photos (tools/video_quality.py --long): a higher one holds colors longer and costs PSNR where
# the model's first guess was its worst (drift 2.01 ΔE at 3.25, 1.85 at 3.5, 1.77 at 3.75).
MAX_ORDER = 3.5
# New content (revealed by a pan, uncovered by a moving object) starts from its own prediction
# shifted by how the prediction differs from the carried colors around it: a Gaussian-weighted
# mean (normalized convolution, Knutsson & Westin 1993) of that difference over the carried
# pixels, SPREAD_SIGMA of the grid wide; so when the model changes its mind about a wall,
# the newly seen part of the wall follows the part already on screen.
SPREAD_SIGMA = 0.25
# Carried colors follow the frame's overall lightness change (see _relight) by at most this factor a frame.
# Measured on lighting-change shots of training photos, it lets their colors drift 3.96 rather than 6.26 ΔE.
RELIGHT_LIMITS = (0.8, 1.25)
# Hints given for a frame override the carried colors within this share of the grid of them.
HINT_RADIUS = 0.06


@dataclass
class Motion:
    """How frame t relates to frame t - 1 on the model's grid."""

    backward: np.ndarray  # (S, S, 2): where each pixel of t was in t - 1 (x, y offsets)
    forward: np.ndarray  # (S, S, 2): where each pixel of t - 1 went in t
    reliable: np.ndarray  # (S, S) float32 in [0, 1]: how far the backward flow is trusted
    cut: bool
    lightness: np.ndarray  # (S, S) float32: frame t's L*
    previous_lightness: np.ndarray  # (S, S) float32: frame t - 1's L*


@dataclass(frozen=True)
class Colors:
    """A frame's output colors on the grid, and what they hand on to the next frame."""

    ab: np.ndarray  # (2, S, S) float32, normalized
    age: np.ndarray | None = None  # (S, S) float32: for how many frames each color has been followed; None: 1 everywhere
    memory: ShotMemory | None = None  # the shot's colors so far (long-term colors only)


@dataclass
class TemporalState:
    """What carries from one frame to the next: saved with each finished segment of a video, so a
    resumed job continues exactly where the uninterrupted one would be."""

    lightness: np.ndarray | None = None  # (S, S) uint8, the last frame's L* on the grid (0-255 scale)
    ab: np.ndarray | None = None  # (2, S, S) float32, the last frame's output ab (normalized)
    hints: list[tuple[float, float, tuple[float, float]]] = field(default_factory=list)  # (x, y) in grid pixels, ab
    frame: int = 0  # index of the next frame
    age: np.ndarray | None = None  # (S, S) float32: for how many frames each pixel's colors have been followed
    memory: ShotMemory | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"frame": np.array(self.frame)}
        if self.lightness is not None and self.ab is not None:
            arrays |= {"lightness": self.lightness, "ab": self.ab}
        if self.age is not None:
            arrays["age"] = self.age
        if self.memory is not None:
            arrays |= self.memory.to_arrays()
        arrays["hints"] = np.array([(x, y, a, b) for x, y, (a, b) in self.hints], np.float64).reshape(-1, 4)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TemporalState:
        """A saved state; one saved before ages and memories were kept continues as if every carried
        color were one frame old, its shot's memory starting from there."""
        hints = [(float(x), float(y), (float(a), float(b))) for x, y, a, b in arrays["hints"]]
        return cls(lightness=arrays.get("lightness"), ab=arrays.get("ab"), hints=hints, frame=int(arrays["frame"]),
                   age=arrays.get("age"), memory=ShotMemory.from_arrays(arrays))

    def colors(self) -> Colors | None:
        """What the last frame hands on (None before the first frame)."""
        return None if self.ab is None else Colors(self.ab, self.age, self.memory)


class Stabilizer:
    """Flow, reliability and cut detection between consecutive frames, and the blend of colors.

    ``strength`` (0 to 1) is the weight of colors carried one frame where the flow is fully
    trusted: 0 is frame-by-frame colorization, higher is steadier. With ``long_term`` (the
    default), colors followed longer weigh more (see :data:`MAX_ORDER`), new content is
    shifted towards the colors around it (see :data:`SPREAD_SIGMA`) and a shot remembers what
    it has shown (:class:`~colorgan.video.memory.ShotMemory`); without, every carried color
    weighs ``strength`` (the fixed blend of issue 16, an exponential average with a memory of
    about 1 / (1 - strength) frames, whose colors drift with the model's mind over a long shot).
    """

    def __init__(self, *, strength: float = DEFAULT_STRENGTH, long_term: bool = True) -> None:
        self.strength = check_strength(strength)
        self.long_term = long_term
        # DIS's fast preset stops at a quarter of the grid's resolution; tracks followed over long
        # shots stay on their points twice as long when it goes down to the full grid (1.9 rather
        # than 3.6 grid pixels off after 200 frames, measured on long_clip shots of training
        # photos), where its variational refinement only costs time (and accuracy) and fewer,
        # sparser patch iterations lose nothing: ~1.5 ms per flow rather than 0.4.
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._flow.setFinestScale(0)
        self._flow.setVariationalRefinementIterations(0)
        self._flow.setGradientDescentIterations(8)
        self._flow.setPatchStride(6)

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
        return Motion(backward=backward, forward=forward, reliable=reliable, cut=bool(cut),
                      lightness=current.astype(np.float32) / 2.55, previous_lightness=previous.astype(np.float32) / 2.55)

    def weight(self, age: np.ndarray) -> np.ndarray:
        """The weight of colors followed for ``age`` frames, where the flow is fully trusted."""
        order = np.minimum(age, MAX_ORDER) if self.long_term else 1.0
        return np.broadcast_to(1 - (1 - self.strength) ** order, age.shape).astype(np.float32)

    def blend(self, motion: Motion, previous: Colors, predicted_ab: np.ndarray, fresh: np.ndarray | None = None) -> Colors:
        """The frame's colors: its prediction (2, S, S), pulled towards the previous output warped
        along the flow where the flow is trusted, the more the longer that color has been
        followed; where the flow is not trusted, towards the shot's memory of that place, else
        shifted towards the colors around. ``fresh`` (S, S, 0 to 1) marks where carried colors
        give way (new hints). At a cut, the prediction alone: a new shot."""
        if motion.cut or self.strength == 0.0:
            return self.start(predicted_ab, motion.lightness)
        carried = np.stack([warp(channel, motion.backward) for channel in previous.ab])
        age = np.ones_like(motion.reliable) if previous.age is None else warp(previous.age, motion.backward)
        age *= motion.reliable >= 0.5  # a track ends where the flow cannot follow it
        trust, memory, with_camera = motion.reliable, None, None
        if self.long_term:
            carried *= _relight(motion)
            memory = previous.memory or ShotMemory.start(previous.ab, motion.previous_lightness, _ones_or(previous.age, age))
            followed = memory.follow(motion.backward, motion.reliable)
            if followed is not None:
                memory, with_camera = followed
                remembered, remembered_age = memory.recall(motion.lightness)
                found = (remembered_age > 0) & (trust < 0.5)
                carried, age, trust = np.where(found, remembered, carried), np.where(found, remembered_age, age), np.where(found, 1, trust)
        if fresh is not None:
            age, trust = age * (1 - fresh), trust * (1 - fresh)
        weight = trust * self.weight(age)
        difference = carried - predicted_ab
        ab = predicted_ab + weight * difference
        if self.long_term:
            ab += (1 - weight) * self.strength * _spread(difference, weight, SPREAD_SIGMA)
        ab, age = ab.astype(np.float32), (age + 1).astype(np.float32)
        if with_camera is not None:
            memory = memory.remember(ab, motion.lightness, age, with_camera)
        elif memory is not None:  # the camera's motion was lost: the memory starts over from here
            memory = ShotMemory.start(ab, motion.lightness, age)
        return Colors(ab, age, memory)

    def start(self, ab: np.ndarray, lightness: np.ndarray) -> Colors:
        """The colors of a shot's first frame (ab (2, S, S), L* (S, S)): each one frame old, and the shot's memory begun."""
        ones = np.ones(lightness.shape, np.float32)
        return Colors(ab, None, ShotMemory.start(ab, lightness, ones) if self.long_term and self.strength else None)


def _relight(motion: Motion) -> float:
    """How much the light changed since the last frame, as the carried a*, b* must follow it: for a
    surface of one chromaticity they scale with L* + 16 (both with the cube root of luminance), so
    colors fade with the light and come back with it. One number per frame, from the pixels the
    flow follows (a change of lighting, not of texture); a step beyond :data:`RELIGHT_LIMITS` is
    no lighting change (a flash, a cut the histograms missed)."""
    trusted = motion.reliable >= 0.5
    if not trusted.any():
        return 1.0
    before = warp(motion.previous_lightness, motion.backward)[trusted]
    ratio = (motion.lightness[trusted].sum() + 16 * before.size) / (before.sum() + 16 * before.size)
    return float(np.clip(ratio, *RELIGHT_LIMITS))


def _ones_or(age: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    return np.ones_like(like) if age is None else age


def _spread(values: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` (C, S, S) averaged around each pixel, Gaussian-weighted (``sigma`` of the grid) and
    by ``weight``: a normalized convolution, which also fills in where the weight is 0. Computed on a
    grid a quarter as wide (the result is smooth at that scale; 1/50 of the work)."""
    size = weight.shape[1]
    small = max(8, size // 4)
    shrink = functools.partial(cv2.resize, dsize=(small, small), interpolation=cv2.INTER_AREA)
    blur = functools.partial(cv2.GaussianBlur, ksize=(0, 0), sigmaX=sigma * small, borderType=cv2.BORDER_REFLECT)
    total = blur(shrink(weight))
    means = [blur(shrink(weight * channel)) / np.maximum(total, 1e-3) for channel in values]
    return np.stack([cv2.resize(mean, (size, size), interpolation=cv2.INTER_LINEAR) for mean in means])


def hint_zone(points: list[tuple[float, float]], size: int) -> np.ndarray:
    """(S, S) in [0, 1]: 1 at each point (grid pixels), falling off over :data:`HINT_RADIUS` of the grid."""
    grid_x, grid_y = _grid(size, size)
    zone = np.zeros((size, size), np.float32)
    for x, y in points:
        zone = np.maximum(zone, np.exp(-((grid_x - x) ** 2 + (grid_y - y) ** 2) / (2 * (HINT_RADIUS * size) ** 2)))
    return zone


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
