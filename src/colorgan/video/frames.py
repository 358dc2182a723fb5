"""Colorizing a sequence of frames: the model on batches, the temporal step frame by frame.

:class:`FrameColorizer` is the in-memory form (frames in, colorized frames out, in order);
:mod:`colorgan.video.job` feeds it from a video file and encodes what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from colorgan.color import denormalize_l
from colorgan.hints import Hint, check_hints, hint_channels
from colorgan.photo import Photo, read_photo
from colorgan.video import yuv
from colorgan.video.settings import DEFAULT_BATCH, DEFAULT_STRENGTH
from colorgan.video.temporal import Colors, Motion, Stabilizer, TemporalState, grid_hints, hint_zone, track_hints

if TYPE_CHECKING:
    from colorgan.colorizer import Colorizer


@dataclass(frozen=True)
class FrameColors:
    """A frame's steady colors on the model's grid, with what joining them to the frame needs."""

    frame: Any  # as given (an array or a PIL image)
    photo: Photo
    ab: np.ndarray  # (2, S, S) normalized
    l_norm: np.ndarray  # (1, S, S): the model's input


class FrameColorizer:
    """Colorize frames in order, keeping colors stable from one frame to the next.

    ``temporal=False`` colorizes each frame on its own. ``hints`` maps a frame index to the hints
    given for that frame; they follow the motion through the rest of its shot (until a cut).
    ``state`` continues an earlier run (see :class:`~colorgan.video.temporal.TemporalState`).
    ``long_term=False`` gives every carried color the same weight (see :class:`~colorgan.video.temporal.Stabilizer`).

    Example::

        frames = FrameColorizer(Colorizer.from_pretrained())
        colored = list(frames.colorize_all(gray_frames))  # (H, W, 3) uint8 arrays
    """

    def __init__(self, colorizer: Colorizer, *, size: int | None = None, temporal: bool = True,
                 strength: float = DEFAULT_STRENGTH, hints: Mapping[int, Sequence[Hint]] | None = None,
                 state: TemporalState | None = None, long_term: bool = True) -> None:
        self.colorizer = colorizer
        self.size = colorizer.check_size(size)
        self.temporal = temporal
        self.stabilizer = Stabilizer(strength=strength, long_term=long_term)
        self.hints = {int(frame): check_hints(items) for frame, items in (hints or {}).items() if items}
        if self.hints:
            colorizer.require_hints()
        self.state = state or TemporalState()
        self.cuts: list[int] = []  # frame indices where a new shot began (after the first frame)

    def colorize(self, frames: Sequence[Any], *, i420: tuple[float, float] | None = None) -> list[np.ndarray]:
        """Colorize the next frames (arrays or PIL images, as :meth:`Colorizer.colorize` takes) as one
        model batch; returns RGB uint8 arrays (H, W, 3) of the same sizes (see :meth:`render` for ``i420``)."""
        return [self.render(colors, i420=i420) for colors in self.colors(frames)]

    def colors(self, frames: Sequence[Any]) -> list[FrameColors]:
        """The next frames' colors on the model's grid, made steady (the model and the temporal step),
        not yet joined to the frames: a video job does that on another thread (:meth:`render`)."""
        photos = [read_photo(frame) for frame in frames]
        if not photos:
            return []
        l_norm = self.colorizer.model_inputs(photos, self.size)
        grids = [_grid_lightness(l) for l in l_norm]
        motions: list[Motion | None] = []
        hint_lists: list[list[tuple[float, float, tuple[float, float]]]] = []
        fresh: list[np.ndarray | None] = []  # where a frame's new hints override the carried colors
        previous, tracked = self.state.lightness, list(self.state.hints)
        for offset, (photo, grid) in enumerate(zip(photos, grids, strict=True)):
            frame = self.state.frame + offset
            motion = None
            if previous is not None and (self.temporal or tracked):
                motion = self.stabilizer.motion(previous, grid)
                if motion.cut:
                    self.cuts.append(frame)
                tracked = [] if motion.cut else track_hints(tracked, motion, self.size)
            given = []
            if frame in self.hints:
                width, height = photo.image.size
                given = grid_hints(self.hints[frame], width=width, height=height, size=self.size)
                tracked = tracked + given  # a new list: the earlier frames' entries in hint_lists must not change
            fresh.append(hint_zone([(x, y) for x, y, _ in given], self.size) if given else None)
            motions.append(motion)
            hint_lists.append(tracked)
            previous = grid
        ab = self.colorizer.predict_ab(l_norm, self._cond(hint_lists))
        out = []
        carried = self.state.colors()
        for raw, photo, motion, ab_one, l_one, zone in zip(frames, photos, motions, ab, l_norm, fresh, strict=True):
            if self.temporal and motion is not None and carried is not None:
                carried = self.stabilizer.blend(motion, carried, ab_one, fresh=zone)
            else:
                carried = Colors(ab_one)  # the video's first frame, or no temporal step
            out.append(FrameColors(raw, photo, carried.ab, l_one))
        self.state = TemporalState(lightness=grids[-1], ab=carried.ab, hints=tracked, frame=self.state.frame + len(photos),
                                   age=carried.age, memory=carried.memory)
        return out

    def render(self, colors: FrameColors, *, i420: tuple[float, float] | None = None) -> np.ndarray:
        """One frame's colors joined to its own full-size lightness: RGB (H, W, 3) uint8, or, with
        ``i420`` (the output matrix's luma weights Kr, Kb) for a gray 8-bit frame (H, W) with even
        sides, I420 planes ((3 H / 2, W), :func:`colorgan.video.yuv.gray_to_i420`) ready for a 4:2:0
        encoder: a third of the work of RGB at HD sizes, and no conversion after it."""
        raw, ab, l_norm = colors.frame, colors.ab, colors.l_norm
        guide = l_norm if self.colorizer.upsample == "guided" else None
        if (i420 is not None and isinstance(raw, np.ndarray) and raw.ndim == 2 and raw.dtype == np.uint8
                and raw.shape[0] % 2 == 0 and raw.shape[1] % 2 == 0):
            return yuv.gray_to_i420(raw, ab, kr=i420[0], kb=i420[1], guide=guide)
        return np.asarray(self.colorizer.recombine(colors.photo, ab, l_norm))  # RGB: frames have no alpha

    def colorize_all(self, frames: Iterable[Any], *, batch_size: int = DEFAULT_BATCH) -> Iterator[np.ndarray]:
        """Colorize an iterable of frames lazily, ``batch_size`` at a time, yielding each result in order."""
        batch: list[Any] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                yield from self.colorize(batch)
                batch = []
        if batch:
            yield from self.colorize(batch)

    def _cond(self, hint_lists: list[list[tuple[float, float, tuple[float, float]]]]) -> np.ndarray | None:
        """The hint channels of a batch (None when no frame of it has hints: the automatic case)."""
        if not any(hint_lists):
            return None
        size = self.size
        return np.stack([
            hint_channels([Hint(x=(x + 0.5) / size, y=(y + 0.5) / size, color=ab) for x, y, ab in hints],
                          width=size, height=size, size=size)
            for hints in hint_lists
        ])


def _grid_lightness(l_norm: np.ndarray) -> np.ndarray:
    """The model input's L* (1, S, S) as uint8 on 0-255, what the optical flow reads."""
    return np.clip(denormalize_l(l_norm[0]) * 2.55 + 0.5, 0, 255).astype(np.uint8)
