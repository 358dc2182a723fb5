"""The Python entry points for film: a video file, or frames in memory, colorized with stable colors.

They need the ``video`` extra (PyAV, OpenCV) and say so in one line without it; this module
itself imports neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorgan.errors import require_extra
from colorgan.hints import Hint

if TYPE_CHECKING:
    import numpy as np

    from colorgan.colorizer import Colorizer
    from colorgan.video.job import VideoResult


def colorize_video(colorizer: Colorizer, source: str | Path, output: str | Path, *, temporal: bool = True,
                   strength: float | None = None, hints: Iterable[Hint] = (), size: int | None = None,
                   codec: str | None = None, crf: int | None = None, preset: str | None = None) -> VideoResult:
    """Colorize a video file into ``output`` (its container from its suffix), keeping the input's
    resolution, timestamps, rotation, audio and subtitles. ``temporal`` keeps colors stable along
    the optical flow (``strength`` in [0, 1): how strongly); ``hints`` carry a ``frame`` each and
    follow the motion through that shot. ``codec``, ``crf`` and ``preset`` set the encoder
    (default: H.264 at CRF 18, preset superfast, for MP4). A killed run, run again, resumes. The input is never written."""
    require_extra("video", "colorizing a video")
    from colorgan.video.job import colorize_video as run
    from colorgan.video.settings import DEFAULT_CRF, DEFAULT_STRENGTH, VideoSettings

    settings = VideoSettings(size=size, temporal=temporal, hints=tuple(hints), codec=codec,
                             strength=DEFAULT_STRENGTH if strength is None else strength,
                             crf=DEFAULT_CRF if crf is None else crf, preset=preset)
    return run(colorizer, source, output, settings=settings)


def colorize_frames(colorizer: Colorizer, frames: Iterable[Any], *, temporal: bool = True, strength: float | None = None,
                    hints: Iterable[Hint] = (), size: int | None = None) -> Iterator[np.ndarray]:
    """Colorize frames held in memory (arrays or PIL images, in order), lazily: yields RGB uint8
    arrays (H, W, 3), with colors as stable as :func:`colorize_video`'s."""
    require_extra("video", "colorizing frames with temporal consistency")
    from colorgan.video.frames import FrameColorizer
    from colorgan.video.settings import DEFAULT_STRENGTH, VideoSettings

    by_frame = VideoSettings(hints=tuple(hints)).hints_by_frame()
    frame_colorizer = FrameColorizer(colorizer, size=size, temporal=temporal,
                                     strength=DEFAULT_STRENGTH if strength is None else strength, hints=by_frame)
    return frame_colorizer.colorize_all(frames)
