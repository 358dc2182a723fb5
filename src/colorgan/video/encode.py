"""Writing video with PyAV: colorized frames encoded into *parts* (one file per segment, see
:mod:`colorgan.video.job`), then the parts *joined* with the input's audio and subtitle streams
into the output container, those packets copied unchanged. The output keeps the input's
resolution, timestamps (a variable frame rate included), rotation and duration."""

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

from colorgan.errors import PhotoError, UserError
from colorgan.files.discovery import VIDEO_MUXERS
from colorgan.files.provenance import SOFTWARE
from colorgan.video.settings import DEFAULT_CRF, DEFAULT_PRESET, PRESET_CODECS

from colorgan.video.decode import VideoInfo, open_input, reason

log = logging.getLogger(__name__)

MUXERS = VIDEO_MUXERS

PIXEL_FORMAT = "yuv420p"

# Parts are Matroska-free MP4 files: MP4 keeps exact timestamps in the stream's own time base (Matroska
# rounds them to milliseconds) and negative decoding timestamps of B-frames (NUT refuses those).
PART_MUXER = "mp4"

# Codecs whose quality is set by a constant rate factor.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1"}

class VideoWriteError(PhotoError):
    """The colorized video could not be encoded or written (a full disk, an encoder's refusal): the
    input is not at fault, so the finished parts are kept for a rerun."""

@contextlib.contextmanager
def _writing(source: Path, doing: str) -> Iterator[None]:
    """FFmpeg's errors while ``doing`` something to write the colorized ``source``, as one :class:`VideoWriteError`."""
    try:
        yield
    except av.FFmpegError as exc:
        raise VideoWriteError(str(source), f"FFmpeg failed while {doing} ({reason(exc)})") from None

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
    preset: str = DEFAULT_PRESET  # for PRESET_CODECS

    @classmethod
    def for_output(cls, codec: str, crf: int, suffix: str, *, preset: str | None = None) -> Encoding:
        return cls(codec=codec, crf=crf, constant_rate=suffix in _CONSTANT_RATE_SUFFIXES or codec in _CONSTANT_RATE_CODECS,
                   preset=preset or DEFAULT_PRESET)

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
            if self.codec in PRESET_CODECS:
                options["preset"] = self.preset
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
        self._pixel_format = PIXEL_FORMAT if takes_i420(info) else "yuv444p"
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
        """Encode one frame: RGB (H, W, 3), or I420 planes ((3 H / 2, W), limited range, in the
        matrix of :func:`luma_weights`) for a 4:2:0 output."""
        self.frames += 1
        slot = round(pts * self._input_time_base / self._time_base) if self._constant_rate else None
        if slot is not None and slot < self.next_slot:
            self.dropped += 1
            return
        if pixels.ndim == 2:  # already the encoder's planes (colorgan.video.yuv): no conversion at all
            if self._pixel_format != PIXEL_FORMAT:
                raise ValueError(f"I420 planes given for a {self._pixel_format} output")
            frame = av.VideoFrame.from_ndarray(pixels, format=PIXEL_FORMAT)
        else:
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

def takes_i420(info: VideoInfo) -> bool:
    """Whether the parts of ``info``'s output are 4:2:0, so a frame can be handed over as I420 planes."""
    return info.width % 2 == 0 and info.height % 2 == 0


def luma_weights(source_colorspace: int, height: int) -> tuple[float, float]:
    """The output matrix's luma weights (Kr, Kb) for frames of ``height`` rows from a source tagged
    ``source_colorspace`` (what :class:`PartWriter` tags the output with)."""
    Colorspace = av.video.reformatter.Colorspace
    matrix = _output_colorspace(source_colorspace, height)
    return _LUMA_WEIGHTS.get(matrix, _LUMA_WEIGHTS[int(Colorspace.ITU601)])


# Kr, Kb of each matrix (ITU601 is SMPTE 170M in PyAV's enumeration)
_LUMA_WEIGHTS = {int(av.video.reformatter.Colorspace.ITU709): (0.2126, 0.0722),
                 int(av.video.reformatter.Colorspace.ITU601): (0.299, 0.114),
                 int(av.video.reformatter.Colorspace.BT2020): (0.2627, 0.0593)}


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
