"""Colorizing a sequence of frames: the model on batches, the temporal step frame by frame.

:class:`FrameColorizer` is the in-memory form (frames in, colorized frames out, in order);
:mod:`colorgan.video.job` feeds it from a video file and encodes what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from colorgan.color import denormalize_l
from colorgan.hints import Hint, check_hints, hint_channels
from colorgan.photo import read_photo
from colorgan.video.settings import DEFAULT_BATCH, DEFAULT_STRENGTH
from colorgan.video.temporal import Motion, Stabilizer, TemporalState, grid_hints, track_hints

if TYPE_CHECKING:
    from colorgan.colorizer import Colorizer


class FrameColorizer:
    """Colorize frames in order, keeping colors stable from one frame to the next.

    ``temporal=False`` colorizes each frame on its own. ``hints`` maps a frame index to the hints
    given for that frame; they follow the motion through the rest of its shot (until a cut).
    ``state`` continues an earlier run (see :class:`~colorgan.video.temporal.TemporalState`).

    Example::

        frames = FrameColorizer(Colorizer.from_pretrained())
        colored = list(frames.colorize_all(gray_frames))  # (H, W, 3) uint8 arrays
    """

    def __init__(self, colorizer: Colorizer, *, size: int | None = None, temporal: bool = True,
                 strength: float = DEFAULT_STRENGTH, hints: Mapping[int, Sequence[Hint]] | None = None,
                 state: TemporalState | None = None) -> None:
        self.colorizer = colorizer
        self.size = colorizer.check_size(size)
        self.temporal = temporal
        self.stabilizer = Stabilizer(strength=strength)
        self.hints = {int(frame): check_hints(items) for frame, items in (hints or {}).items() if items}
        if self.hints:
            colorizer.require_hints()
        self.state = state or TemporalState()
        self.cuts: list[int] = []  # frame indices where a new shot began (after the first frame)

    def colorize(self, frames: Sequence[Any]) -> list[np.ndarray]:
        """Colorize the next frames (arrays or PIL images, as :meth:`Colorizer.colorize` takes) as one
        model batch; returns RGB uint8 arrays (H, W, 3) of the same sizes."""
        photos = [read_photo(frame) for frame in frames]
        if not photos:
            return []
        l_norm = self.colorizer.model_inputs(photos, self.size)
        grids = [_grid_lightness(l) for l in l_norm]
        motions: list[Motion | None] = []
        hint_lists: list[list[tuple[float, float, tuple[float, float]]]] = []
        previous, tracked = self.state.lightness, list(self.state.hints)
        for offset, (photo, grid) in enumerate(zip(photos, grids, strict=True)):
            frame = self.state.frame + offset
            motion = None
            if previous is not None and (self.temporal or tracked):
                motion = self.stabilizer.motion(previous, grid)
                if motion.cut:
                    self.cuts.append(frame)
                tracked = [] if motion.cut else track_hints(tracked, motion, self.size)
            if frame in self.hints:
                width, height = photo.image.size
                # a new list: the earlier frames' entries in hint_lists must not change
                tracked = tracked + grid_hints(self.hints[frame], width=width, height=height, size=self.size)
            motions.append(motion)
            hint_lists.append(tracked)
            previous = grid
        ab = self.colorizer.predict_ab(l_norm, self._cond(hint_lists))
        out = []
        carried = self.state.ab
        for photo, motion, ab_one, l_one in zip(photos, motions, ab, l_norm, strict=True):
            if self.temporal and motion is not None and carried is not None:
                ab_one = self.stabilizer.blend(motion, carried, ab_one)
            carried = ab_one
            out.append(np.asarray(self.colorizer.recombine(photo, ab_one, l_one)))  # RGB: frames have no alpha
        self.state = TemporalState(lightness=grids[-1], ab=carried, hints=tracked, frame=self.state.frame + len(photos))
        return out

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
