"""Reading video with PyAV (FFmpeg's libraries, shipped inside its wheels): a video's facts
(:func:`probe`) and its first video stream as RGB frames with exact timestamps (:func:`read_frames`).
A video that cannot be read is one :class:`VideoError`; the output side is :mod:`.encode`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.bitstream
import numpy as np

from colorgan.errors import PhotoError

log = logging.getLogger(__name__)

#: Frames larger than this (an 8K frame is 33 MP) are refused as a likely corrupt or hostile header.
MAX_VIDEO_PIXELS = 8192 * 4352

class VideoError(PhotoError):
    """A video that cannot be read: ``source`` names it, ``reason`` says why (as for photos, so a
    folder job reports both alike and goes on). The input is at fault: retrying cannot help."""

@dataclass(frozen=True)
class VideoInfo:
    """What a video job needs to know about its input's video stream."""

    path: Path
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None  # average frame rate, None when the container does not say
    base_rate: Fraction | None  # the rate whose grid holds every timestamp (FFmpeg's r_frame_rate)
    frames: int  # as the container declares it (0: unknown)
    duration: float | None  # seconds
    duration_exact: bool = True  # the duration is the video stream's own, not the whole file's

    def expected_frames(self) -> int | None:
        """The number of frames, declared or estimated from duration and rate (None: unknown)."""
        if self.frames:
            return self.frames
        if self.duration and self.rate:
            return max(1, round(self.duration * float(self.rate)))
        return None

def reason(exc: Exception) -> str:
    """FFmpeg's reason for an error, without PyAV's errno and file name decoration."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")

def open_input(path: Path) -> av.container.InputContainer:
    """Open a video for reading; a file FFmpeg cannot open is a :class:`VideoError`."""
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(str(path), f"not a video FFmpeg can read ({reason(exc)})") from None

def probe(path: Path) -> VideoInfo:
    """The input's video stream, checked: it exists, FFmpeg can decode it, its size is sane."""
    with open_input(path) as container:
        return _info(path, container)

def _info(path: Path, container: av.container.InputContainer) -> VideoInfo:
    if not container.streams.video:
        raise VideoError(str(path), "has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(str(path), "its video codec is unknown to FFmpeg (no decoder)")
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise VideoError(str(path), "its video stream declares no frame size")
    if width * height > MAX_VIDEO_PIXELS:
        raise VideoError(str(path), f"{width}x{height} frames are larger than the {MAX_VIDEO_PIXELS // 1_000_000} megapixels allowed")
    duration, exact = _stream_duration(stream), True
    if duration is None and container.duration:
        duration, exact = container.duration / av.time_base, False
    return VideoInfo(path=path, width=width, height=height, time_base=stream.time_base or Fraction(1, 90000),
                     rate=stream.average_rate or stream.guessed_rate, base_rate=stream.base_rate, frames=stream.frames,
                     duration=duration, duration_exact=exact)

def _stream_duration(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own duration in seconds: from the container's index, or the DURATION tag
    Matroska files carry per stream; None when neither says."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = next((value for key, value in stream.metadata.items() if key.upper() == "DURATION"), None)
    with contextlib.suppress(AttributeError, ValueError):
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None

def _truncation(info: VideoInfo, decoded: int, end: float | None) -> str | None:
    """Why the decoded frames fall short of what the file declares (None if they do not): fewer
    frames than its frame count, or an end well before its duration (the rest of the file missing)."""
    if info.frames and decoded < info.frames:
        return f"{decoded} of its {info.frames} frames could be decoded"
    if end is not None and info.duration:
        frame = 1 / float(info.rate) if info.rate else 0.04
        slack = max(0.5, 3 * frame) if info.duration_exact else max(1.0, 0.05 * info.duration)
        if end < info.duration - slack:
            return f"its frames end at {end:.2f} s of the {info.duration:.2f} s it declares"
    return None

@dataclass
class Frame:
    """A decoded frame: RGB pixels with its timestamp, duration (in the stream's time base) and display rotation."""

    pixels: np.ndarray  # (H, W) uint8 for a gray frame (black-and-white film), else (H, W, 3) RGB
    pts: int
    duration: int
    rotation: int
    colorspace: int

def read_frames(info: VideoInfo, *, after_pts: int | None = None) -> Iterator[Frame]:
    """The input's frames in presentation order; with ``after_pts``, only those after it (a resumed
    job). Corrupt or truncated data, or timestamps that run backwards, are a :class:`VideoError`."""
    decoded, end = 0, None
    for frame, pts in _decoded(info, after_pts):
        decoded += 1
        end = float((pts + (frame.duration or 0)) * info.time_base)
        yield Frame(pixels=_gray_pixels(frame) if _is_gray(frame) else frame.to_ndarray(format="rgb24"), pts=pts,
                    duration=int(frame.duration or 0), rotation=int(frame.rotation or 0), colorspace=int(frame.colorspace))
    if after_pts is None and decoded == 0:
        raise VideoError(str(info.path), "holds no decodable frames")
    if problem := _truncation(info, decoded if after_pts is None else info.frames, end):
        raise VideoError(str(info.path), f"truncated or corrupt: {problem}")

def _decoded(info: VideoInfo, after_pts: int | None) -> Iterator[tuple[av.VideoFrame, int]]:
    """(frame, timestamp) after ``after_pts`` (all, if None). A resumed job seeks to the keyframe before
    it; where the demuxer lands past it (MPEG-TS and MPEG-PS files can), which the first frame
    shows, the file is decoded from its start instead, so no frame is ever skipped."""
    if after_pts is not None:
        with open_input(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            container.seek(after_pts, stream=stream, backward=True, any_frame=False)
            frames = _timestamped(container, stream, info)
            first = next(frames, None)
            if first is not None and first[1] <= after_pts:
                yield from (item for item in frames if item[1] > after_pts)
                return
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the model
        yield from (item for item in _timestamped(container, stream, info) if after_pts is None or item[1] > after_pts)

def _timestamped(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 info: VideoInfo) -> Iterator[tuple[av.VideoFrame, int]]:
    """Decoded frames with their timestamps: a repeated timestamp is one frame (as players show it);
    one that runs backwards is an error (a spliced file the job could not resume in)."""
    last, count = None, 0
    try:
        for frame in container.decode(stream):
            pts = frame.pts if frame.pts is not None else (last + 1 if last is not None else 0)
            if last is not None and pts <= last:
                if pts == last:
                    continue
                raise VideoError(str(info.path), f"its timestamps run backwards after {count} frames (a spliced "
                                                 "or damaged file); remux it first, e.g. with ffmpeg -fflags +genpts")
            last, count = pts, count + 1
            yield frame, pts
    except av.FFmpegError as exc:
        raise VideoError(str(info.path), f"corrupt video data after {count} frames ({reason(exc)})") from None

# Planar 8-bit YUV formats whose chroma planes tell a gray frame at a glance.
_PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p", "yuv440p"}

# A frame is gray when no chroma sample is further than this from neutral (128): codecs leave a
# little noise in the chroma of black-and-white film.
GRAY_CHROMA_TOLERANCE = 2

def _is_gray(frame: av.VideoFrame) -> bool:
    """Whether a decoded frame holds no color: then its luma is all there is, and decoding just that
    (no YUV to RGB conversion) gives the pixels RGB would (within one level of rounding), faster."""
    name = frame.format.name
    if name.startswith("gray"):
        return True
    if name not in _PLANAR_YUV:
        return False
    for plane in frame.planes[1:3]:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        if np.abs(rows.astype(np.int16) - 128).max() > GRAY_CHROMA_TOLERANCE:
            return False
    return True

def _gray_pixels(frame: av.VideoFrame) -> np.ndarray:
    """A gray frame's levels (H, W) uint8: its luma plane itself, expanded from video range
    (16-235) as FFmpeg's conversion to gray does, by one table lookup (faster than the conversion)."""
    if frame.format.name not in _PLANAR_YUV:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    full_range = frame.format.name.startswith("yuvj") or frame.color_range == int(av.video.reformatter.ColorRange.JPEG)
    return luma.copy() if full_range else _VIDEO_RANGE_TO_GRAY[luma]


# Video-range luma to full-range gray levels, rounded as FFmpeg rounds them.
_VIDEO_RANGE_TO_GRAY = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
