"""Measuring video colorization: footage with a known truth, the warping error and color drift.

Real color film made gray would be the ideal test, but the package registries carry no clearly
licensed clips; this module instead films still color photos with a moving virtual camera (at
24 fps, a hard cut between shots), so every frame has its truth, the motion is that of real
footage of a still scene, and each frame's :class:`View` says exactly which point of which
photo every pixel shows. :func:`random_clip` makes short shots (a pan and a zoom each);
:func:`long_clip` makes 10 s shots of the kinds that expose drift (:data:`LONG_KINDS`): a slow
pan revealing new content, a zoom in, a zoom out, an object crossing a still background, a
lighting change and a pan away and back.

:func:`warping_error` is E_warp of Lai et al. 2018 ("Learning Blind Video Temporal Consistency"):
the mean squared RGB difference (0-1 scale) between each frame and the next one warped back onto
it, along the optical flow of the *true* frames, counting only pixels visible in both
(forward-backward check) and no pair that straddles a cut. It sees flicker, not drift: colors
that change slowly over a shot cost it almost nothing, which :func:`drift` measures.
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
LONG_KINDS = ("pan", "zoom in", "zoom out", "object", "lighting", "return")
Box = tuple[float, float, float, float]  # left, top, width, height, as fractions of an image


@dataclass(frozen=True)
class Cutout:
    """An object for a shot: the ellipse inscribed in ``source`` (a box of ``photo``) pasted into the
    frames at a box of ``size`` (fractions of the frame) whose top-left moves from ``start`` to ``end``."""

    photo: Image.Image
    source: Box
    size: tuple[float, float]
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class View:
    """Exactly what one frame shows. A pixel at frame fractions (fx, fy) = ((x + 0.5) / width,
    (y + 0.5) / height) shows its shot's photo at ``window``'s left + fx × width (likewise y),
    or, inside the ellipse inscribed in ``patch``, the cutout's photo at the same place of ``source``."""

    shot: int
    window: Box
    patch: Box | None = None  # the cutout's box in the frame (fractions of the frame)
    source: Box | None = None  # the cutout's box in its photo
    gain: float = 1.0  # the frame is the photo's RGB times this (a lighting change)

    def on_cutout(self, fx: np.ndarray, fy: np.ndarray, *, grow: float = 0.0) -> np.ndarray:
        """Which frame points (fractions) show the cutout (``grow``: its ellipse that much wider all round, in frame fractions)."""
        if self.patch is None:
            return np.zeros(np.shape(fx), bool)
        left, top, w, h = self.patch
        radius = np.hypot((fx - left) / w * 2 - 1, (fy - top) / h * 2 - 1)
        return radius <= 1 + grow / (min(w, h) / 2)

    def to_photo(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame points (fractions) -> (u, v, on the cutout): the photo point each shows, as fractions
        of the shot's photo, or of the cutout's photo where ``on the cutout``."""
        u, v = _through(self.window, fx, fy)
        cut = self.on_cutout(fx, fy)
        if cut.any():
            cu, cv = _through(self.source, *_through(self.patch, fx, fy, inverse=True))
            u, v = np.where(cut, cu, u), np.where(cut, cv, v)
        return u, v, cut

    def to_frame(self, u: np.ndarray, v: np.ndarray, *, cutout: bool = False,
                 margin: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Photo points (fractions of the shot's photo, or of the cutout's) -> (fx, fy, seen): where
        the frame shows them, and whether it does (inside the frame, not hidden by the cutout; and
        ``margin`` (frame fractions) away from the frame's edges and the cutout's)."""
        if cutout and self.patch is None:
            return u, v, np.zeros(np.shape(u), bool)
        if cutout:
            fx, fy = _through(self.patch, *_through(self.source, u, v, inverse=True))
        else:
            fx, fy = _through(self.window, u, v, inverse=True)
        inside = (fx >= margin) & (fx <= 1 - margin) & (fy >= margin) & (fy <= 1 - margin)
        if cutout:
            return fx, fy, inside & self.on_cutout(fx, fy, grow=-margin)
        return fx, fy, inside & ~self.on_cutout(fx, fy, grow=margin)


def _through(box: Box, x: np.ndarray, y: np.ndarray, *, inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fractions of a box -> fractions of the image it lies in (or back, ``inverse``)."""
    left, top, w, h = box
    if inverse:
        return (x - left) / w, (y - top) / h
    return left + x * w, top + y * h


@dataclass(frozen=True)
class Shot:
    """One photo filmed by the virtual camera: a crop window moving from ``start`` to ``end``
    (left, top, width, height as fractions of the photo) over ``frames`` frames, eased in and out;
    ``back``: to ``end`` and back again. Optionally an object crossing it and a lighting ramp."""

    photo: Image.Image
    start: Box
    end: Box
    frames: int
    back: bool = False
    cutout: Cutout | None = None
    gain: tuple[float, float] = (1.0, 1.0)  # at the first and the last frame

    def view(self, i: int, shot: int = 0) -> View:
        """Frame ``i``'s :class:`View`."""
        t = i / max(1, self.frames - 1)
        if self.back:
            t = 1 - abs(2 * t - 1)
        eased = t * t * (3 - 2 * t)  # smoothstep: a camera starts and stops gently
        window = _lerp(self.start, self.end, eased)
        gain = self.gain[0] + (self.gain[1] - self.gain[0]) * i / max(1, self.frames - 1)
        if self.cutout is None:
            return View(shot, window, gain=gain)
        c = self.cutout
        patch = (*_lerp(c.start, c.end, i / max(1, self.frames - 1)), *c.size)
        return View(shot, window, patch=patch, source=c.source, gain=gain)


def _lerp(a: Sequence[float], b: Sequence[float], t: float) -> tuple[float, ...]:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _window_size(photo: Image.Image, width: int, height: int, scale: float) -> tuple[float, float]:
    """A window of the output's aspect ratio, ``scale`` of the photo along its tighter side (fractions)."""
    aspect = (width / height) / (photo.width / photo.height)  # the window's width/height in photo fractions
    w, h = (scale, scale / aspect) if aspect <= 1 else (scale * aspect, scale)
    return min(w, 1.0), min(h, 1.0)


def random_shot(photo: Image.Image, *, width: int, height: int, frames: int, rng: np.random.Generator) -> Shot:
    """A pan and a zoom across ``photo`` with windows of the output's aspect ratio: the window's
    size changes by up to 25 % and its center travels up to a third of the photo."""
    w, h = _window_size(photo, width, height, rng.uniform(0.6, 0.85))
    start = float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h)), w, h
    zoom = rng.uniform(0.8, 1.25)
    w, h = min(start[2] * zoom, 1.0), min(start[3] * zoom, 1.0)
    cx = np.clip(start[0] + start[2] / 2 + rng.uniform(-1, 1) / 6, w / 2, 1 - w / 2)
    cy = np.clip(start[1] + start[3] / 2 + rng.uniform(-1, 1) / 6, h / 2, 1 - h / 2)
    return Shot(photo, start, (float(cx - w / 2), float(cy - h / 2), w, h), frames)


def long_shot(kind: str, photo: Image.Image, other: Image.Image, *, width: int, height: int, frames: int,
              rng: np.random.Generator) -> Shot:
    """A shot of one of :data:`LONG_KINDS` across ``photo`` (``other`` gives the object of ``"object"``)."""
    if kind not in LONG_KINDS:
        raise ValueError(f"kind must be one of {LONG_KINDS}, got {kind!r}")
    if kind in ("zoom in", "zoom out"):
        near, far = _window_size(photo, width, height, 0.45), _window_size(photo, width, height, 0.95)
        cx, cy = (float(rng.uniform(far[k] / 2, 1 - far[k] / 2)) for k in (0, 1))
        wide, close = ((cx - s[0] / 2, cy - s[1] / 2, *s) for s in (far, near))
        return Shot(photo, *((wide, close) if kind == "zoom in" else (close, wide)), frames)
    w, h = _window_size(photo, width, height, 0.8 if kind == "object" else 0.55)
    sideways = 1 - w >= 1 - h  # the pan runs along the photo's roomier side
    across = np.array([0.0, 1 - w] if sideways else [0.0, 1 - h])[:: rng.choice([-1, 1])]
    level = float(rng.uniform(0, 1 - h if sideways else 1 - w))
    start, end = (((a, level, w, h) if sideways else (level, a, w, h)) for a in across)
    if kind == "pan":
        return Shot(photo, start, end, frames)
    if kind == "return":
        return Shot(photo, start, _lerp(start, end, 0.7), frames, back=True)
    if kind == "lighting":  # a slow pan while the light fades to half
        return Shot(photo, start, _lerp(start, end, 0.3), frames, gain=(1.0, 0.5))
    source = (0.2, 0.15, 0.6, 0.7)  # of the other photo, whose proportions the object keeps
    size = 0.35 * (height / width) * (source[2] * other.width) / (source[3] * other.height), 0.35
    top = float(rng.uniform(0.1, 0.9 - size[1]))
    cutout = Cutout(other, source, size, (-0.4 * size[0], top), (1 - 0.6 * size[0], top))
    return Shot(photo, start, start, frames, cutout=cutout)


def shot_frames(shot: Shot, *, width: int, height: int) -> Iterator[np.ndarray]:
    """The shot's RGB frames (height, width, 3) uint8: each :meth:`Shot.view` resampled bicubically."""
    for i in range(shot.frames):
        yield render_view(shot, shot.view(i), width=width, height=height)


def render_view(shot: Shot, view: View, *, width: int, height: int) -> np.ndarray:
    """One frame of ``shot`` as ``view`` says: the photo's window, the cutout over it, the gain."""
    pw, ph = shot.photo.size
    left, top, w, h = view.window
    frame = np.asarray(shot.photo.resize((width, height), Image.Resampling.BICUBIC, box=(left * pw, top * ph, (left + w) * pw, (top + h) * ph)))
    if view.patch is not None:
        frame = frame.copy()
        left, top, w, h = view.patch
        x0, y0 = max(0, int(np.floor(left * width))), max(0, int(np.floor(top * height)))
        x1, y1 = min(width, int(np.ceil((left + w) * width))), min(height, int(np.ceil((top + h) * height)))
        if x1 > x0 and y1 > y0:
            cw, ch = shot.cutout.photo.size
            u0, v0 = _through(view.source, *_through(view.patch, x0 / width, y0 / height, inverse=True))
            u1, v1 = _through(view.source, *_through(view.patch, x1 / width, y1 / height, inverse=True))
            piece = np.asarray(shot.cutout.photo.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC, box=(u0 * cw, v0 * ch, u1 * cw, v1 * ch)))
            fy, fx = (np.mgrid[y0:y1, x0:x1] + 0.5) / np.array([height, width])[:, None, None]
            inside = view.on_cutout(fx, fy)
            frame[y0:y1, x0:x1][inside] = piece[inside]
    if view.gain != 1.0:
        frame = np.clip(frame * view.gain + 0.5, 0, 255).astype(np.uint8)
    return frame


@dataclass
class Clip:
    """Frames with their truth: ``frames`` (RGB uint8), the first frame of each shot, each frame's :class:`View`."""

    frames: list[np.ndarray]
    starts: list[int]
    views: list[View]


def film(shots: Sequence[Shot], *, width: int, height: int) -> Clip:
    """The shots one after another, a hard cut between each two."""
    clip = Clip([], [], [])
    for number, shot in enumerate(shots):
        clip.starts.append(len(clip.frames))
        clip.views.extend(shot.view(i, number) for i in range(shot.frames))
        clip.frames.extend(render_view(shot, view, width=width, height=height) for view in clip.views[clip.starts[-1]:])
    return clip


def random_clip(photos: Sequence[Image.Image], *, width: int, height: int, seconds_per_shot: float = 2.0, seed: int = 0) -> Clip:
    """One :func:`random_shot` per photo, hard cuts between them."""
    rng = np.random.default_rng(seed)
    shots = [random_shot(p.convert("RGB"), width=width, height=height, frames=round(seconds_per_shot * FPS), rng=rng) for p in photos]
    return film(shots, width=width, height=height)


def camera_clip(photos: Sequence[Image.Image], *, width: int, height: int, seconds_per_shot: float = 2.0,
                seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """:func:`random_clip`'s (RGB frames, index of each shot's first frame)."""
    clip = random_clip(photos, width=width, height=height, seconds_per_shot=seconds_per_shot, seed=seed)
    return clip.frames, clip.starts


def long_clip(photos: Sequence[Image.Image], *, width: int, height: int, seconds: float = 10.0, seed: int = 0,
              kinds: Sequence[str] = LONG_KINDS) -> Clip:
    """One long shot per photo, of ``kinds`` in turn (the object of an ``"object"`` shot cut from the next photo)."""
    rng = np.random.default_rng(seed)
    rgb = [p.convert("RGB") for p in photos]
    shots = [long_shot(kinds[i % len(kinds)], photo, rgb[(i + 1) % len(rgb)], width=width, height=height,
                       frames=round(seconds * FPS), rng=rng) for i, photo in enumerate(rgb)]
    return film(shots, width=width, height=height)


def warping_error(frames: Sequence[np.ndarray], truth: Sequence[np.ndarray], shot_starts: Sequence[int], *,
                  space: str = "rgb") -> float:
    """E_warp of ``frames`` (RGB uint8), with the flow and occlusions taken from ``truth``; pairs of
    frames across a cut (a frame in ``shot_starts``) are left out.

    ``space="rgb"`` compares RGB on 0-1, as Lai et al.; ``"ab"`` compares only the chroma (a*, b*
    in CIELAB units, so squared ΔE): a colorizer keeps the input's lightness, so RGB's error has a
    floor (the flow's own errors on the lightness, the same for every method) that chroma has not.
    """
    return float(warping_errors([frames], truth, shot_starts, spaces=(space,))[0, 0])


def warping_errors(candidates: Sequence[Sequence[np.ndarray]], truth: Sequence[np.ndarray], shot_starts: Sequence[int], *,
                   spaces: Sequence[str] = ("rgb", "ab")) -> np.ndarray:
    """:func:`warping_error` of several colorizations of the same clip in each of ``spaces``
    ((candidates, spaces) array): the true frames' flow, the slow part, is computed once for all."""
    if any(len(frames) != len(truth) for frames in candidates):
        raise ValueError(f"{[len(f) for f in candidates]} frames but {len(truth)} true frames")
    if any(space not in ("rgb", "ab") for space in spaces):
        raise ValueError(f"spaces must be rgb or ab, got {spaces!r}")
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    cuts = set(shot_starts)
    errors: list[list[list[float]]] = [[[] for _ in spaces] for _ in candidates]
    for t in range(len(truth) - 1):
        if t + 1 in cuts:
            continue
        gray_now = cv2.cvtColor(truth[t], cv2.COLOR_RGB2GRAY)
        gray_next = cv2.cvtColor(truth[t + 1], cv2.COLOR_RGB2GRAY)
        ahead = flow.calc(gray_now, gray_next, None)  # where each pixel of t is in t + 1
        visible = round_trip_holds(ahead, flow.calc(gray_next, gray_now, None))
        if not visible.any():
            continue
        for frames, scores in zip(candidates, errors, strict=True):
            for space, score in zip(spaces, scores, strict=True):
                values = _ab if space == "ab" else (lambda frame: frame.astype(np.float32) / 255.0)
                squared = np.sum((values(frames[t]) - warp(values(frames[t + 1]), ahead)) ** 2, axis=-1)
                score.append(float(squared[visible].mean()))
    return np.array([[np.mean(score) if score else 0.0 for score in scores] for scores in errors])


def _ab(frame: np.ndarray) -> np.ndarray:
    """a*, b* (H, W, 2) float32 of an RGB uint8 frame, in CIELAB units."""
    return np.ascontiguousarray(rgb_to_lab(frame.astype(np.float32) / 255.0)[..., 1:], dtype=np.float32)


def drift(frames: Sequence[np.ndarray], clip: Clip, *, grid: int = 24, min_frames: int = 2 * FPS,
          margin: float = 0.05) -> float:
    """How far colors wander within shots: for scene points seen over at least ``min_frames``
    (followed exactly with the clip's views), the a*b* change (ΔE, CIELAB units) of ``frames``
    between the first and the last frame each point is seen in, less the truth's own change
    (a lighting change has one; still photos have none), averaged over the points. 0 for the truth."""
    changes = np.concatenate(_point_changes(frames, clip, grid=grid, min_frames=min_frames, margin=margin))
    return float(changes.mean()) if len(changes) else 0.0


def drift_by_shot(frames: Sequence[np.ndarray], clip: Clip, *, grid: int = 24, min_frames: int = 2 * FPS,
          margin: float = 0.05) -> list[float]:
    """:func:`drift` of each shot on its own (NaN for a shot with no point seen that long)."""
    return [float(np.mean(c)) if len(c) else float("nan") for c in _point_changes(frames, clip, grid=grid, min_frames=min_frames, margin=margin)]


def _point_changes(frames: Sequence[np.ndarray], clip: Clip, *, grid: int, min_frames: int, margin: float) -> list[np.ndarray]:
    """Per shot, each long-seen point's ΔE between the change of ``frames`` and of the truth."""
    if len(frames) != len(clip.frames):
        raise ValueError(f"{len(frames)} frames but the clip has {len(clip.frames)}")
    cells = (np.arange(grid) + 0.5) / grid
    u, v = (a.ravel() for a in np.meshgrid(cells, cells))
    ends = []  # per shot: (frame, fx, fy) of each long-seen point's first and of its last sight, (points, 2, 3)
    for start, stop in zip(clip.starts, [*clip.starts[1:], len(clip.frames)], strict=True):
        found = []
        for cutout in (False, True):
            places = np.array([clip.views[t].to_frame(u, v, cutout=cutout, margin=margin) for t in range(start, stop)])  # (T, 3, points)
            seen = places[:, 2] > 0
            first, last = seen.argmax(0), len(seen) - 1 - seen[::-1].argmax(0)
            keep = np.flatnonzero(seen.any(0) & (last - first >= min_frames))
            found.append(np.stack([np.column_stack([start + t[keep], places[t[keep], 0, keep], places[t[keep], 1, keep]])
                                   for t in (first, last)], axis=1))
        ends.append(np.concatenate(found))
    samples = np.concatenate([e.reshape(-1, 3) for e in ends])
    colors = [_sample_ab(chosen, samples) for chosen in (frames, clip.frames)]  # (samples, 2) each
    change = (colors[0] - colors[1]).reshape(-1, 2, 2)  # (points, first/last, ab)
    sizes = np.cumsum([0] + [len(e) for e in ends])
    per_point = np.linalg.norm(change[:, 1] - change[:, 0], axis=-1)
    return [per_point[a:b] for a, b in zip(sizes, sizes[1:])]


def _sample_ab(frames: Sequence[np.ndarray], samples: np.ndarray) -> np.ndarray:
    """a*b* of ``frames`` at (frame, fx, fy) rows, bilinear."""
    height, width = frames[0].shape[:2]
    out = np.zeros((len(samples), 2), np.float32)
    index = samples[:, 0].astype(int)
    for t in np.unique(index):
        rows = np.flatnonzero(index == t)
        where = np.stack([samples[rows, 1] * width - 0.5, samples[rows, 2] * height - 0.5], -1)[None].astype(np.float32)
        out[rows] = cv2.remap(_ab(frames[t]), where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
    return out
