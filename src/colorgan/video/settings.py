"""The options of a video job, as plain data: importing this needs neither PyAV nor OpenCV (the
``video`` extra), so ``colorgan colorize`` can check them before it touches a video."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from colorgan.errors import UserError, check_range

if TYPE_CHECKING:  # the CLI imports this module at start-up: no NumPy until a job needs it
    from colorgan.hints import Hint

#: Default weight of the colors carried along the optical flow where it is reliable (the rest is
#: each frame's own prediction). Chosen on clips made from training photos (docs/RESULTS.md).
DEFAULT_STRENGTH = 0.85
#: The codec each output container gets by default (``--video-codec`` to choose another).
DEFAULT_CODECS = {
    ".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "libx264",
    ".ts": "libx264", ".webm": "libvpx-vp9", ".mpeg": "mpeg2video", ".mpg": "mpeg2video",
}
DEFAULT_CRF = 18
#: x264/x265's speed preset: at 1080p on two cores "superfast" encodes in about a quarter of
#: "medium"'s time, for files about a quarter bigger at the same CRF (benchmarks/RESULTS.md).
DEFAULT_PRESET = "superfast"
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
PRESET_CODECS = ("libx264", "libx265")
#: Seconds of video per part (see :mod:`colorgan.video.job`): what a killed job loses at most.
DEFAULT_SEGMENT_SECONDS = 10.0
#: Frames the model sees per call.
DEFAULT_BATCH = 8


def check_strength(strength: float) -> float:
    """The temporal strength, refused outside [0, 1): at 1 a shot would keep its first frame's colors forever."""
    check_range("--strength", strength, low=0, below=1)
    return strength


@dataclass(frozen=True, kw_only=True)
class VideoSettings:
    """How videos are colorized and encoded (the video options of ``colorgan colorize``).

    ``hints`` are :class:`~colorgan.hints.Hint` objects whose ``frame`` says which frame each is
    given for; each follows the motion through the rest of its shot.
    """

    size: int | None = None
    temporal: bool = True
    strength: float = DEFAULT_STRENGTH
    codec: str | None = None  # None: the container's default, DEFAULT_CODECS
    crf: int = DEFAULT_CRF
    preset: str | None = None  # None: DEFAULT_PRESET for the codecs that have presets (PRESET_CODECS)
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    batch_size: int = DEFAULT_BATCH
    hints: Sequence[Hint] = ()

    def validate(self) -> None:
        """Refuse options out of range before any video is opened."""
        check_strength(self.strength)
        check_range("--crf", self.crf, low=0, high=63)
        if self.preset is not None and self.preset not in PRESETS:
            raise UserError(f"unknown --video-preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.preset is not None and self.codec is not None and self.codec not in PRESET_CODECS:
            raise UserError(f"--video-preset goes with {' or '.join(PRESET_CODECS)}, not --video-codec {self.codec}")
        check_range("--segment-seconds", self.segment_seconds, above=0)
        check_range("--batch-size", self.batch_size, low=1)

    def codec_for(self, suffix: str) -> str:
        return self.codec or DEFAULT_CODECS[suffix]

    def hints_by_frame(self) -> Mapping[int, list[Hint]]:
        by_frame: dict[int, list[Hint]] = {}
        for hint in self.hints:
            by_frame.setdefault(hint.frame, []).append(hint)
        return by_frame

    def fingerprint(self) -> dict:
        """The settings that decide the output's pixels, as JSON-able data."""
        return {"size": self.size, "temporal": self.temporal, "strength": self.strength, "codec": self.codec,
                "crf": self.crf, "preset": self.preset, "segment_seconds": self.segment_seconds, "batch_size": self.batch_size,
                "hints": [h.to_json() for h in self.hints]}

