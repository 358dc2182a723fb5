"""Reading and writing video with PyAV (FFmpeg's libraries, shipped inside its wheels).

A video job decodes the input's first video stream to RGB frames, encodes the colorized frames
into *parts* (one file per segment, see :mod:`colorgan.video.job`), and finally *joins* the parts
with the input's audio and subtitle streams into the output container, copying those packets
unchanged. The output keeps the input's resolution, timestamps (a variable frame rate
included), rotation and duration.
"""

from __future__ import annotations

import contextlib
import heapq
from io import BytesIO
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.bitstream
import numpy as np

from ..errors import PhotoError, UserError
from ..files import SOFTWARE, VIDEO_MUXERS
from .settings import DEFAULT_CRF

log = logging.getLogger(__name__)

MUXERS = VIDEO_MUXERS
PIXEL_FORMAT = "yuv420p"
# Parts are Matroska-free MP4 files: MP4 keeps exact timestamps in the stream's own time base (Matroska
# rounds them to milliseconds) and negative decoding timestamps of B-frames (NUT refuses those).
PART_MUXER = "mp4"
#: Frames larger than this (an 8K frame is 33 MP) are refused as a likely corrupt or hostile header.
MAX_VIDEO_PIXELS = 8192 * 4352
# Codecs whose quality is set by a constant rate factor.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1"}


class VideoError(PhotoError):
    """A video that cannot be read: ``source`` names it, ``reason`` says why (as for photos, so a
    folder job reports both alike and goes on). The input is at fault: retrying cannot help."""


class VideoWriteError(PhotoError):
    """The colorized video could not be encoded or written (a full disk, an encoder's refusal): the
    input is not at fault, so the finished parts are kept for a rerun."""


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


@contextlib.contextmanager
def _writing(source: Path, doing: str) -> Iterator[None]:
    """FFmpeg's errors while ``doing`` something to write the colorized ``source``, as one :class:`VideoWriteError`."""
    try:
        yield
    except av.FFmpegError as exc:
        raise VideoWriteError(str(source), f"FFmpeg failed while {doing} ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    """FFmpeg's reason for an error, without PyAV's errno and file name decoration."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")


def open_input(path: Path) -> av.container.InputContainer:
    """Open a video for reading; a file FFmpeg cannot open is a :class:`VideoError`."""
    try:
        return av.open(str(path), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(str(path), f"not a video FFmpeg can read ({_reason(exc)})") from None


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
        yield Frame(pixels=frame.to_ndarray(format="gray" if _is_gray(frame) else "rgb24"), pts=pts,
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
        raise VideoError(str(info.path), f"corrupt video data after {count} frames ({_reason(exc)})") from None


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


# Containers and codecs that hold only a constant frame rate: their frames sit on a grid of 1/rate.
_CONSTANT_RATE_SUFFIXES = {".avi", ".mpeg", ".mpg"}
_CONSTANT_RATE_CODECS = {"mpeg1video", "mpeg2video"}
# MPEG-1/2 video knows only these frame rates.
_MPEG_RATES = [Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50),
               Fraction(60000, 1001), Fraction(60)]
# FFmpeg's lambda per quantizer step: qscale 2 (MPEG's "visually lossless" setting) as a global quality.
_QP2LAMBDA = 118


@dataclass(frozen=True)
class Encoding:
    """How the colorized video stream is encoded; ``constant_rate``: the output holds only a
    constant frame rate (AVI, MPEG), so frames are placed on its grid instead of keeping their timestamps."""

    codec: str
    crf: int = DEFAULT_CRF
    constant_rate: bool = False

    @classmethod
    def for_output(cls, codec: str, crf: int, suffix: str) -> Encoding:
        return cls(codec=codec, crf=crf, constant_rate=suffix in _CONSTANT_RATE_SUFFIXES or codec in _CONSTANT_RATE_CODECS)

    def rate(self, info: VideoInfo) -> Fraction:
        """The frame rate of a constant-rate output: the one whose grid holds the input's timestamps
        (the nearest MPEG rate for MPEG video)."""
        rate = Fraction(info.base_rate or info.rate or 24).limit_denominator(1001)
        if self.codec in _CONSTANT_RATE_CODECS:
            rate = min(_MPEG_RATES, key=lambda r: abs(r - rate))
        return rate

    def options(self) -> dict[str, str]:
        if self.codec in _CRF_CODECS:
            options = {"crf": str(self.crf)}
            if self.codec == "libx264":
                # x264's macroblock-tree rate control gives different bits for the same frames from one
                # run to the next (measured here, even single-threaded); without it every run, and a
                # resumed one, encodes the same frames to the same video. A constant-rate container
                # (AVI) stores no presentation times, so it gets no B-frames (which need them).
                options["x264-params"] = "mbtree=0" + (":bframes=0" if self.constant_rate else "")
            if self.codec in ("libvpx-vp9", "libvpx"):
                options["b"] = "0"  # constant quality, no bitrate cap
            return options
        return {}


def check_codec(codec: str, suffix: str) -> None:
    """Refuse an encoder FFmpeg lacks, one that is no video encoder, or one the output container
    cannot hold, before any work."""
    if codec not in av.codecs_available:
        raise UserError(f"unknown --video-codec {codec!r}: this FFmpeg has no such encoder")
    try:
        if av.codec.Codec(codec, "w").type != "video":
            raise UserError(f"--video-codec {codec!r} is no video encoder")
    except (av.FFmpegError, ValueError):
        raise UserError(f"--video-codec {codec!r} is no encoder") from None
    if not _muxer_accepts(MUXERS[suffix], lambda probe: _small_stream(probe, codec)):
        raise UserError(f"a {suffix} file cannot hold {codec} video; choose another --video-codec or output suffix")


def _small_stream(container: av.container.OutputContainer, codec: str) -> None:
    stream = container.add_stream(codec, rate=24)
    stream.width, stream.height, stream.pix_fmt = 64, 64, PIXEL_FORMAT


def _muxer_accepts(muxer: str, add: Callable[[av.container.OutputContainer], object]) -> bool:
    """Whether a container of ``muxer`` takes the stream ``add`` puts into it: tried on a file in
    memory up to its header, since FFmpeg's lists of what a muxer holds are incomplete for some."""
    try:
        with av.open(BytesIO(), "w", format=muxer) as trial:
            add(trial)
            trial.start_encoding()
    except (av.FFmpegError, ValueError):
        return False
    return True


class PartWriter:
    """Encodes colorized frames into one part file (an MP4 file), keeping their timestamps.

    For a constant-rate output each frame goes to the slot of the rate's grid nearest its time; a
    frame whose slot is taken (an input faster than the rate, MPEG-2's 60 fps at most) is dropped,
    so the video never drifts from its audio. ``next_slot`` is carried from part to part.
    """

    def __init__(self, path: Path, info: VideoInfo, encoding: Encoding, *, colorspace: int, next_slot: int = 0) -> None:
        with _writing(info.path, f"starting the {encoding.codec} encoder"):
            self._open(path, info, encoding, colorspace, next_slot)

    def _open(self, path: Path, info: VideoInfo, encoding: Encoding, colorspace: int, next_slot: int) -> None:
        self.path = path
        self._source = info.path
        self._container = av.open(str(path), "w", format=PART_MUXER)
        rate = encoding.rate(info) if encoding.constant_rate else info.rate or Fraction(24)
        stream = self._container.add_stream(encoding.codec, rate=rate)
        stream.width, stream.height = info.width, info.height
        # 4:2:0 needs even sides; an odd-sized video keeps its size in 4:4:4 (for the codecs that have it)
        self._pixel_format = PIXEL_FORMAT if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
        stream.pix_fmt = self._pixel_format
        self._time_base = 1 / rate if encoding.constant_rate else info.time_base
        self._input_time_base = info.time_base
        self._constant_rate = encoding.constant_rate
        stream.time_base = stream.codec_context.time_base = self._time_base
        stream.options = encoding.options()
        context = stream.codec_context
        if encoding.codec in _CONSTANT_RATE_CODECS:  # MPEG-1/2 take a fixed quantizer, not a CRF
            context.qscale = True
            context.global_quality = 2 * _QP2LAMBDA
        self._colorspace = _output_colorspace(colorspace, info.height)
        context.colorspace = self._colorspace
        context.color_range = av.video.reformatter.ColorRange.MPEG
        self._stream = stream
        self.next_slot = next_slot
        self.frames = 0  # frames handed to write(), encoded or dropped
        self.dropped = 0

    def write(self, pixels: np.ndarray, pts: int, duration: int) -> None:
        self.frames += 1
        slot = round(pts * self._input_time_base / self._time_base) if self._constant_rate else None
        if slot is not None and slot < self.next_slot:
            self.dropped += 1
            return
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
            format=self._pixel_format, dst_colorspace=self._colorspace, dst_color_range=av.video.reformatter.ColorRange.MPEG)
        if slot is not None:
            frame.pts = slot
            self.next_slot = slot + 1
        else:
            frame.pts = pts
            if duration:
                frame.duration = duration
        frame.time_base = self._time_base  # the codec's; the muxer may give the stream another one
        with _writing(self._source, "encoding"):
            self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        with _writing(self._source, "encoding"):
            self._container.mux(self._stream.encode(None))
            self._container.close()

    def abort(self) -> None:
        self._container.close()


def _output_colorspace(source: int, height: int) -> int:
    """The YUV matrix of the output: the input's, when it says one, else the usual one for its size
    (BT.709 for HD, BT.601 for SD), which is also what players assume for untagged video."""
    Colorspace = av.video.reformatter.Colorspace
    if source in (int(Colorspace.ITU709), int(Colorspace.ITU601), int(Colorspace.SMPTE170M), int(Colorspace.BT2020)):
        return source
    return int(Colorspace.ITU709) if height >= 720 else int(Colorspace.SMPTE170M)


def join(parts: Sequence[Path], info: VideoInfo, target: Path, *, suffix: str, rotation: int) -> None:
    """Write ``target`` (a temporary path; ``suffix`` names its container): the parts' video
    packets in order, and the input's audio and subtitle streams copied unchanged, interleaved by time.

    A stream the output container cannot hold (say, SubRip subtitles in an MP4) is left out with a warning.
    """
    with _writing(info.path, f"writing the {suffix} output"), open_input(info.path) as source, \
            av.open(str(target), "w", format=MUXERS[suffix]) as out:
        first = av.open(str(parts[0]))
        video = out.add_stream_from_template(first.streams.video[0])
        first.close()
        if rotation:
            video.set_display_rotation(rotation)
        out.metadata["comment"] = SOFTWARE  # how a later folder job tells this output from an input video
        copied = {}
        for stream in source.streams:
            if stream.type not in ("audio", "subtitle"):
                continue
            name = stream.codec_context.codec.canonical_name if stream.codec_context is not None else None
            if name is None or not _muxer_accepts(MUXERS[suffix], lambda trial, s=stream: trial.add_stream_from_template(s)):
                log.warning("%s: its %s stream #%d (%s) cannot go into a %s file; left out", info.path, stream.type,
                            stream.index, name or "unknown codec", suffix)
                continue
            copied[stream.index] = out.add_stream_from_template(stream)
        streams = [_video_packets(parts, video, MUXERS[suffix])]
        if copied:
            streams.append(_copied_packets(source, copied))
        for _, packet in heapq.merge(*streams, key=lambda item: item[0]):
            out.mux(packet)


# Containers that want H.264/HEVC as a byte stream with start codes (Annex B), which MP4 parts do not
# hold; FFmpeg's MPEG-TS muxer converts by itself, AVI's does not.
_ANNEX_B = {("avi", "h264"): "h264_mp4toannexb", ("avi", "hevc"): "hevc_mp4toannexb"}


def _video_packets(parts: Sequence[Path], stream: av.stream.Stream, muxer: str) -> Iterator[tuple[float, av.Packet]]:
    for part in parts:
        with av.open(str(part)) as container:
            source = container.streams.video[0]
            bsf_name = _ANNEX_B.get((muxer, source.codec_context.name))
            bsf = av.bitstream.BitStreamFilterContext(bsf_name, source) if bsf_name else None
            for packet in container.demux(source):
                for out in (bsf.filter(packet) if bsf is not None else [packet]) if packet.dts is not None else []:
                    when = float(out.dts * out.time_base)
                    out.stream = stream
                    yield when, out


def _copied_packets(source: av.container.InputContainer, copied: dict) -> Iterator[tuple[float, av.Packet]]:
    for packet in source.demux([s for s in source.streams if s.index in copied]):
        if packet.dts is None and packet.pts is None:
            continue
        when = float((packet.dts if packet.dts is not None else packet.pts) * packet.time_base)
        packet.stream = copied[packet.stream.index]
        yield when, packet
