"""Color hints: a few colors a user pins to points of a photo, given to the model as extra input channels.

The design of Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with Learned Deep
Priors"): besides L*, the network sees three hint channels at its input resolution, the hint's
normalized a* and b* where a hint is (0 elsewhere) and a mask (1 where a hint is), scaled by
:data:`HINT_GAIN`. No hints at
all is all zeros, which is exactly the automatic colorizer, so one network serves both uses.
Training simulates hints from the ground truth (:func:`colorgan.training.hints.simulate_hints`); users give
:class:`Hint` objects, which :func:`hint_channels` paints onto the model's input grid.

A hint file (``colorgan colorize --hints FILE``, the web page's "download hints") is a JSON
list of ``{"x": ..., "y": ..., "color": ...}`` objects, in the units :class:`Hint` takes; for a
video, an object may add ``"frame": N``, the frame it is given for (default 0).
"""

from __future__ import annotations

import json
import reprlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colorgan.color import normalize_ab, rgb_to_lab
from colorgan.errors import UserError, parse_json

#: a*, b* (normalized as the model's output) and the mask, all times HINT_GAIN.
HINT_CHANNELS = 3
#: The hint channels' scale. A hint-capable model starts from an automatic one with zero kernels
#: for them, and Adam moves each kernel weight by about the learning rate per step whatever its
#: input's scale, so the scale is their learning rate's multiplier. At 1x (|ab| ~ 0.2, mask 1)
#: a CPU fine-tune of a few thousand steps barely starts to follow hints; 10x was still slow
#: (stem kernels for the hints at 2 % of L*'s after 100 steps). A trained model keeps the scale
#: it was trained with, so this is part of the hint channels' definition.
HINT_GAIN = 30.0
#: More points than anyone clicks; it bounds the work one request can ask for.
MAX_HINTS = 1000
#: Side (pixels of the model's input) of the square a user's hint covers; training shows 1-9.
HINT_SIDE = 3
# Training's simulated hints (Zhang et al.): half the photos get none; the others a geometric
# number of squares (mean 1 / P), each 1 to 9 pixels wide, holding the truth's mean color there.
NO_HINT_SHARE = 0.5
HINT_COUNT_P = 0.1
MAX_SIMULATED_SIDE = 9

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


class HintError(UserError):
    """A malformed hint, hint list or hint file."""


@dataclass(frozen=True)
class Hint:
    """One color pinned to one point of a photo.

    ``x`` and ``y`` are fractions of the photo's width and height (floats in [0, 1], 0.5 is
    the middle) or pixel coordinates (integers, from the top-left corner). ``color`` is a hex
    string (``"#f2efe9"``), an sRGB triple of 0-255 values, or a CIELAB ``(a*, b*)`` pair.

    Only the color's chroma (a*, b*) is used: the hinted area keeps the photo's own lightness,
    so a white hint on a dark coat gives a neutral dark coat, not a white one.

    Example::

        Hint(x=0.41, y=0.62, color="#f2efe9")   # the cup is white
        Hint(x=300, y=210, color=(40, 90, 200))  # pixel coordinates, RGB

    For a video, ``frame`` is the index of the frame the hint is given for; it follows the motion
    through the rest of that shot (see :mod:`colorgan.video`). Photos take frame 0 only.
    """

    x: float | int
    y: float | int
    color: str | tuple[float, ...]
    frame: int = 0

    def __post_init__(self) -> None:
        for name, value in (("x", self.x), ("y", self.y)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise HintError(f"hint {name} must be a number (a fraction in [0, 1] or an integer pixel), got {reprlib.repr(value)}")
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise HintError(f"hint {name}={value} is outside the photo: fractions run from 0 to 1 (integers are pixels)")
        if isinstance(self.frame, bool) or not isinstance(self.frame, int) or self.frame < 0:
            raise HintError(f"hint frame must be a frame index (an integer from 0), got {self.frame!r}")
        if isinstance(self.color, list):  # as JSON gives it; a tuple keeps hints hashable and comparable
            object.__setattr__(self, "color", tuple(self.color))
        object.__setattr__(self, "_ab", _parse_color(self.color))

    @property
    def ab(self) -> tuple[float, float]:
        """The hint's CIELAB chroma (a*, b*)."""
        return self._ab  # type: ignore[attr-defined]

    def position(self, width: int, height: int) -> tuple[float, float]:
        """The hint's place as fractions of the photo's width and height; a point off the photo is a :class:`HintError`."""
        fractions = []
        for name, value, extent in (("x", self.x, width), ("y", self.y, height)):
            if isinstance(value, int):
                if not 0 <= value < extent:
                    raise HintError(f"hint {name}={value} is outside the photo ({width}x{height} pixels)")
                value = (value + 0.5) / extent
            fractions.append(float(value))
        return fractions[0], fractions[1]

    def to_json(self) -> dict[str, Any]:
        item = {"x": self.x, "y": self.y, "color": list(self.color) if isinstance(self.color, tuple) else self.color}
        return item | {"frame": self.frame} if self.frame else item


def _parse_color(color: Any) -> tuple[float, float]:
    if isinstance(color, str):
        match = _HEX.fullmatch(color.strip())
        if not match:
            raise HintError(f"hint color {reprlib.repr(color)} is not a hex color like #f2efe9")
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return _rgb_to_ab([int(digits[i : i + 2], 16) for i in (0, 2, 4)])
    if isinstance(color, tuple | list) and all(isinstance(c, int | float) and not isinstance(c, bool) for c in color):
        if len(color) == 3 and all(0 <= c <= 255 for c in color):
            return _rgb_to_ab(color)
        if len(color) == 2 and all(-128 <= c <= 127 for c in color):
            return float(color[0]), float(color[1])
    raise HintError(f"hint color {reprlib.repr(color)} must be a hex string, an RGB triple of 0-255 values or a Lab (a*, b*) pair in -128..127")


def _rgb_to_ab(rgb: Sequence[float]) -> tuple[float, float]:
    lab = rgb_to_lab(np.array([float(c) / 255.0 for c in rgb]))
    return float(lab[1]), float(lab[2])


def check_hints(hints: Iterable[Hint] | None) -> list[Hint]:
    """``hints`` as a list, refusing non-:class:`Hint` items and more than :data:`MAX_HINTS`."""
    hints = list(hints or [])
    if len(hints) > MAX_HINTS:
        raise HintError(f"{len(hints)} hints is more than the {MAX_HINTS} allowed")
    for hint in hints:
        if not isinstance(hint, Hint):
            raise HintError(f"hints must be colorgan.Hint objects, got {type(hint).__name__}")
    return hints


def hints_from_json(content: Any, *, source: str = "hints") -> list[Hint]:
    """Hints from parsed JSON: a list of ``{"x", "y", "color"}`` objects (see the module docstring)."""
    if not isinstance(content, list):
        raise HintError(f"{source} must be a JSON list of {{\"x\", \"y\", \"color\"}} objects")
    if len(content) > MAX_HINTS:
        raise HintError(f"{source} holds {len(content)} hints, more than the {MAX_HINTS} allowed")
    hints = []
    for i, item in enumerate(content):
        if not isinstance(item, dict) or not {"x", "y", "color"} <= set(item) <= {"x", "y", "color", "frame"}:
            raise HintError(f"{source}: item {i} must be an object with the keys x, y and color (and frame, for a video)")
        try:
            hints.append(Hint(x=item["x"], y=item["y"], color=item["color"], frame=item.get("frame", 0)))
        except HintError as exc:
            raise HintError(f"{source}: item {i}: {exc}") from None
    return hints


def parse_hints_json(text: str | bytes, *, source: str = "hints") -> list[Hint]:
    """Hints from JSON text (a form field, a file's content)."""
    return hints_from_json(parse_json(text, source=source, error=HintError), source=source)


# A hint file of MAX_HINTS hints is a few hundred KB; anything far larger is not one (/dev/zero, say).
MAX_HINT_FILE_BYTES = 4 << 20


def read_hints_file(path: str | Path) -> list[Hint]:
    """Hints from a JSON hint file."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            text = file.read(MAX_HINT_FILE_BYTES + 1)
    except OSError as exc:
        raise HintError(f"cannot read hint file {path}: {exc.strerror or exc}") from None
    if len(text) > MAX_HINT_FILE_BYTES:
        raise HintError(f"hint file {path} is larger than {MAX_HINT_FILE_BYTES >> 20} MB; {MAX_HINTS} hints fit in far less")
    return parse_hints_json(text, source=str(path))


def parse_hint_option(text: str) -> Hint:
    """A ``--hint X,Y,COLOR`` value: fractions or integer pixels, and a hex color (``0.41,0.62,#f2efe9``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise HintError(f"--hint {text!r} must be X,Y,COLOR, e.g. 0.41,0.62,#f2efe9")
    coords = []
    for part in parts[:2]:
        try:
            coords.append(int(part) if re.fullmatch(r"[+-]?\d+", part) else float(part))
        except ValueError:
            raise HintError(f"--hint {text!r}: {part!r} is not a number") from None
    return Hint(x=coords[0], y=coords[1], color=parts[2])


def hints_to_json(hints: Iterable[Hint]) -> str:
    """The hint-file text of ``hints``."""
    return json.dumps([hint.to_json() for hint in hints], indent=1)


def hint_channels(hints: Sequence[Hint], *, width: int, height: int, size: int) -> np.ndarray:
    """The model's hint channels (3, size, size) float32 for ``hints`` on a width×height photo.

    Each hint covers a :data:`HINT_SIDE` square around its point on the model's size×size
    input grid; where hints overlap, the later one wins.
    """
    channels = np.zeros((HINT_CHANNELS, size, size), np.float32)
    for hint in hints:
        fx, fy = hint.position(width, height)
        cx, cy = min(int(fx * size), size - 1), min(int(fy * size), size - 1)
        top, left = max(0, cy - HINT_SIDE // 2), max(0, cx - HINT_SIDE // 2)
        bottom, right = min(size, cy + HINT_SIDE // 2 + 1), min(size, cx + HINT_SIDE // 2 + 1)
        a, b = hint.ab
        channels[0, top:bottom, left:right] = HINT_GAIN * normalize_ab(a)
        channels[1, top:bottom, left:right] = HINT_GAIN * normalize_ab(b)
        channels[2, top:bottom, left:right] = HINT_GAIN
    return channels


def truth_hints(rgb: np.ndarray, count: int, *, seed: int) -> list[Hint]:
    """``count`` hints at random places of an sRGB photo (uint8 (H, W, 3)), each with the truth's
    color there (its 3×3 mean): the field's protocol for measuring how much hints help (Zhang et
    al. 2017, Fig. 6). The same ``seed`` gives the same places."""
    height, width = rgb.shape[:2]
    generator = np.random.default_rng(seed)
    hints = []
    for _ in range(count):
        y, x = (int(v) for v in generator.integers(0, (height, width)))
        patch = rgb[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].reshape(-1, 3).mean(axis=0)
        hints.append(Hint(x=x, y=y, color=tuple(float(c) for c in patch)))
    return hints
