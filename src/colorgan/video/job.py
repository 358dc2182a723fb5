"""One video, colorized from file to file: resumable, atomic, memory-bounded.

The input is cut into segments of ``segment_seconds`` of presentation time. Each segment is
colorized and encoded into its own part file in a hidden folder beside the output
(``.NAME.colorgan-parts/``), together with the temporal state at its end. A rerun of a killed
job keeps the finished parts and continues after the last one from its saved state, so the
result equals an uninterrupted run's frame for frame (batches never span a segment, and
decoding resumes from the keyframe before the segment). Once every part exists they are joined
with the input's audio and subtitles into a temporary file, which is renamed to the output:
nothing ever appears under the final name half-written, and the input is never written to.

Three threads keep both cores busy: one decodes, the caller's runs the model and the temporal
step, one encodes. Queues between them hold a few batches, so memory does not grow with the film.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from colorgan.files.atomic import atomic_output, publish
from colorgan.files.discovery import same_file
from colorgan.video import decode, encode
from colorgan.video.frames import FrameColorizer, FrameColors
from colorgan.video.settings import PRESET_CODECS, VideoSettings
from colorgan.video.temporal import TemporalState
from colorgan.workers import Channel, Closed

if TYPE_CHECKING:
    from colorgan.colorizer import Colorizer

log = logging.getLogger(__name__)

MANIFEST = "parts.json"
QUEUE_BATCHES = 2  # batches waiting between the threads, each way


@dataclass(frozen=True)
class VideoResult:
    frames: int
    resumed_frames: int  # frames taken from parts a killed run had finished
    cuts: list[int]  # frame indices where a new shot began (in this run's part of the video)


def parts_folder(output: Path) -> Path:
    """Where the parts of ``output`` are kept while it is being made."""
    return output.parent / f".{output.name}.colorgan-parts"


def colorize_video(colorizer: Colorizer, source: str | Path, output: str | Path, *,
                   settings: VideoSettings = VideoSettings(),
                   on_start: Callable[[int | None, int], None] | None = None,
                   on_frames: Callable[[int], None] | None = None) -> VideoResult:
    """Colorize the video ``source`` into ``output`` (its container from its suffix).

    ``on_start(total_frames or None, frames_already_done)`` and ``on_frames(n)`` report progress.
    Raises :class:`~colorgan.video.decode.VideoError` for a video that cannot be read.
    """
    source, output = Path(source), Path(output)
    if same_file(source, output):
        raise decode.VideoError(str(output), "is the input video; the input is never written: choose another output")
    suffix = output.suffix.lower()
    if suffix not in encode.MUXERS:
        raise decode.VideoError(str(output), f"colorgan cannot write {suffix or 'suffix-less'} videos; use one of {', '.join(encode.MUXERS)}")
    settings.validate()
    codec = settings.codec_for(suffix)
    if settings.preset is not None and codec not in PRESET_CODECS:
        raise decode.VideoError(str(output), f"--video-preset goes with {' or '.join(PRESET_CODECS)}; {suffix} videos are {codec}")
    encoding = encode.Encoding.for_output(codec, settings.crf, suffix, preset=settings.preset)
    encode.check_codec(encoding.codec, suffix)
    info = decode.probe(source)
    _check_hint_frames(settings, info, source)
    frames = FrameColorizer(colorizer, size=settings.size, temporal=settings.temporal, strength=settings.strength,
                            hints=settings.hints_by_frame())  # its checks come before anything is written
    folder = parts_folder(output)
    manifest = _Manifest.open(folder, _fingerprint(colorizer, source, settings, encoding))
    if on_start is not None:
        on_start(info.expected_frames(), manifest.frames)
    frames.state = manifest.state() or frames.state
    resumed = manifest.frames
    try:
        if not manifest.complete:
            _colorize_rest(frames, info, manifest, settings, encoding, on_frames)
        with atomic_output(output) as tmp:
            encode.join(manifest.part_paths(), info, tmp, suffix=suffix, rotation=manifest.rotation or 0)
    except decode.VideoError:
        shutil.rmtree(folder, ignore_errors=True)  # the input is at fault: no run will resume from these parts
        raise  # (a VideoWriteError or an OSError, a full disk say, keeps them for the rerun)
    shutil.rmtree(folder, ignore_errors=True)
    return VideoResult(frames=manifest.frames, resumed_frames=resumed, cuts=frames.cuts)


def _check_hint_frames(settings: VideoSettings, info: decode.VideoInfo, source: Path) -> None:
    """Refuse a hint for a frame past the video's end (a typo would otherwise go unused, unsaid).
    A frame count estimated from duration and rate can be a few frames off, so 5 % are allowed."""
    total = info.expected_frames()
    last = max((hint.frame for hint in settings.hints), default=0)
    if total is not None and last >= total + max(2, total // 20):
        raise decode.VideoError(str(source), f"a hint is for frame {last}, but the video has about {total} frames (0 to {total - 1})")


def _colorize_rest(frames: FrameColorizer, info: decode.VideoInfo, manifest: _Manifest, settings: VideoSettings,
                   encoding: encode.Encoding, on_frames: Callable[[int], None] | None) -> None:
    """Decode → colorize → join → encode the frames after the last finished part, part by part: a
    decoding thread and an encoding thread around the model on this one, joined by channels
    (:class:`~colorgan.workers.Channel`) (bounded: memory stays a few batches), which either side
    closes when it stops. Joining a batch's colors to its full-size frames (:meth:`FrameColorizer.render`)
    runs on a thread of its own while the model works on the next batch; the encoder waits for it."""
    decoded = Channel(QUEUE_BATCHES * settings.batch_size)
    encoded = Channel(QUEUE_BATCHES)
    renderer = ThreadPoolExecutor(1, thread_name_prefix="colorgan-render")
    reader = threading.Thread(target=_read, args=(info, manifest.last_pts, decoded), name="colorgan-decode", daemon=True)
    writer = _Writer(info, manifest, encoding, encoded, on_frames)
    writer_thread = threading.Thread(target=writer.run, name="colorgan-encode", daemon=True)
    reader.start()
    writer_thread.start()
    try:
        weights = None
        for batch, ends_part in _batches(decoded, settings, info):
            if batch:
                weights = weights or _i420_weights(info, manifest, batch[0])
                colors = frames.colors([frame.pixels for frame in batch])
                _put(encoded, ("frames", batch, renderer.submit(_render, frames, colors, weights)), writer)
            if ends_part:
                _put(encoded, ("end", frames.state), writer)
        _put(encoded, ("done", frames.state), writer)
    except BaseException:
        encoded.close()  # the encoder stops at once and discards its unfinished part
        renderer.shutdown(cancel_futures=True)
        raise
    finally:
        decoded.close()  # the decoder stops at its next frame; the input file is closed with it
        writer_thread.join()
        renderer.shutdown()
        reader.join(timeout=5)
    if writer.error is not None:
        raise writer.error


def _i420_weights(info: decode.VideoInfo, manifest: _Manifest, first: decode.Frame) -> tuple[float, float] | None:
    """The luma weights in which gray frames go to the encoder as I420 planes (:mod:`colorgan.video.yuv`),
    or None where the output is not 4:2:0 (odd sides): the matrix the parts are tagged with, which
    the job's first frame decides (a resumed job's manifest has it)."""
    if not encode.takes_i420(info):
        return None
    return encode.luma_weights(manifest.colorspace if manifest.rotation is not None else first.colorspace, info.height)


def _render(frames: FrameColorizer, colors: list[FrameColors], weights: tuple[float, float] | None) -> list[np.ndarray]:
    return [frames.render(one, i420=weights) for one in colors]


def _put(channel: Channel, item: tuple, writer: _Writer) -> None:
    """Hand work to the encoder; if it has failed (it closes its channel), its error is raised."""
    try:
        channel.put(item)
    except Closed:
        raise writer.error or RuntimeError("the video encoder stopped") from None


def _read(info: decode.VideoInfo, after_pts: int | None, out: Channel) -> None:
    """The decoding thread: frames, then None; an exception is handed on instead of a frame. It
    stops as soon as the main thread closes ``out``."""
    with contextlib.suppress(Closed):
        try:
            for frame in decode.read_frames(info, after_pts=after_pts):
                out.put(frame)
            out.put(None)
        except Closed:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            out.put(exc)


def _batches(decoded: Channel, settings: VideoSettings, info: decode.VideoInfo) -> Iterator[tuple[list[decode.Frame], bool]]:
    """Model batches of decoded frames, and whether the part ends after each (an empty batch can end
    one). A part ends before the first frame at least ``segment_seconds`` after the part's first
    frame; batches never span two parts, and a resumed run starts a part with its first frame."""
    limit = settings.segment_seconds / float(info.time_base)
    batch: list[decode.Frame] = []
    start: int | None = None
    while True:
        item = decoded.get()
        if isinstance(item, BaseException):
            raise item
        if item is None:
            break
        if start is not None and item.pts - start >= limit:
            yield batch, True
            batch, start = [], None
        if start is None:
            start = item.pts
        batch.append(item)
        if len(batch) == settings.batch_size:
            yield batch, False
            batch = []
    if batch:
        yield batch, False


class _Writer:
    """The encoding thread: frames into the current part; at a part's end, the part and its
    state made permanent. Its first exception is kept in :attr:`error` and stops it."""

    def __init__(self, info: decode.VideoInfo, manifest: _Manifest, encoding: encode.Encoding, channel: Channel,
                 on_frames: Callable[[int], None] | None) -> None:
        self.info, self.manifest, self.encoding, self.channel, self.on_frames = info, manifest, encoding, channel, on_frames
        self.error: BaseException | None = None
        self._part: encode.PartWriter | None = None
        self._first_pts: int | None = None
        self._last_pts: int | None = None

    def run(self) -> None:
        try:
            while True:
                item = self.channel.get()
                if item[0] == "frames":
                    self._write(item[1], item[2])
                elif item[0] == "end":
                    self._finish_part(item[1])
                elif item[0] == "done":
                    self._finish_part(item[1])
                    self.manifest.mark_complete()
                    break
        except Closed:  # the main thread gave up: stop at once
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            self.channel.close()
        finally:
            if self._part is not None:
                with contextlib.suppress(Exception):
                    self._part.abort()
                with contextlib.suppress(OSError):
                    self._part.path.unlink()

    def _write(self, batch: list[decode.Frame], rendering: Future[list[np.ndarray]]) -> None:
        colored = rendering.result()
        if batch and self.manifest.rotation is None:
            self.manifest.set_stream(rotation=batch[0].rotation, colorspace=batch[0].colorspace)
        for frame, pixels in zip(batch, colored, strict=True):
            if self._part is None:
                self._part = encode.PartWriter(self.manifest.next_part_temp(), self.info, self.encoding,
                                           colorspace=self.manifest.colorspace, next_slot=self.manifest.next_slot)
                self._first_pts = frame.pts
            self._part.write(pixels, frame.pts, frame.duration)
            self._last_pts = frame.pts
        if self.on_frames is not None and batch:
            self.on_frames(len(batch))

    def _finish_part(self, state: TemporalState) -> None:
        if self._part is None:
            return
        part, self._part = self._part, None
        part.close()
        if part.dropped:
            log.warning("%s: %d frames dropped: they fell on a constant-rate output's slots already taken", self.info.path, part.dropped)
        self.manifest.add_part(part.path, first_pts=self._first_pts, last_pts=self._last_pts, frames=part.frames,
                               next_slot=part.next_slot, state=state)


@dataclass
class _Manifest:
    """The parts folder of one output: which parts are finished (``parts.json``), for which job."""

    folder: Path
    fingerprint: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    rotation: int | None = None
    colorspace: int = 2

    @classmethod
    def open(cls, folder: Path, fingerprint: str) -> _Manifest:
        """The finished parts of this same job, if a killed run left some; anything else there is discarded."""
        path = folder / MANIFEST
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, RecursionError):
            data = json.loads(path.read_text())
            if data["fingerprint"] == fingerprint and all((folder / p["file"]).is_file() for p in data["parts"]):
                manifest = cls(folder, fingerprint, data["parts"], data["complete"], data["rotation"], data["colorspace"])
                manifest._remove_strays()
                if manifest.parts:
                    log.info("resuming: %d finished parts (%d frames) kept in %s", len(manifest.parts), manifest.frames, folder)
                return manifest
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        manifest = cls(folder, fingerprint)
        manifest._save()
        return manifest

    @property
    def frames(self) -> int:
        return sum(p["frames"] for p in self.parts)

    @property
    def last_pts(self) -> int | None:
        return self.parts[-1]["last_pts"] if self.parts else None

    @property
    def next_slot(self) -> int:
        """The first free slot of a constant-rate output after the finished parts (see encode.PartWriter)."""
        return self.parts[-1]["next_slot"] if self.parts else 0

    def state(self) -> TemporalState | None:
        if not self.parts:
            return None
        with np.load(self.folder / self.parts[-1]["state"]) as arrays:
            return TemporalState.from_arrays(dict(arrays))

    def part_paths(self) -> list[Path]:
        return [self.folder / p["file"] for p in self.parts]

    def set_stream(self, *, rotation: int, colorspace: int) -> None:
        self.rotation, self.colorspace = rotation, colorspace

    def next_part_temp(self) -> Path:
        return self.folder / f"part-{len(self.parts):05d}.mp4.tmp"

    def add_part(self, temp: Path, *, first_pts: int, last_pts: int, frames: int, next_slot: int, state: TemporalState) -> None:
        name = temp.name.removesuffix(".tmp")
        state_name = name.removesuffix(".mp4") + ".npz"
        with atomic_output(self.folder / state_name) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **state.to_arrays())
        publish(temp, self.folder / name)
        self.parts.append({"file": name, "state": state_name, "first_pts": first_pts, "last_pts": last_pts, "frames": frames,
                           "next_slot": next_slot})
        self._save()

    def mark_complete(self) -> None:
        self.complete = True
        self._save()

    def _save(self) -> None:
        data = {"fingerprint": self.fingerprint, "parts": self.parts, "complete": self.complete,
                "rotation": self.rotation, "colorspace": self.colorspace}
        with atomic_output(self.folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps(data, indent=1))

    def _remove_strays(self) -> None:
        """Files of a part that was being written when the job was killed."""
        keep = {MANIFEST} | {p["file"] for p in self.parts} | {p["state"] for p in self.parts}
        for entry in self.folder.iterdir():
            if entry.name not in keep:
                with contextlib.suppress(OSError):
                    entry.unlink()


def _fingerprint(colorizer: Colorizer, source: Path, settings: VideoSettings, encoding: encode.Encoding) -> str:
    """What makes finished parts reusable: the same input file, model and settings."""
    stat = source.stat()
    job = {
        "source": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "model": colorizer.meta, "settings": settings.fingerprint(),
        "encoding": asdict(encoding),
    }
    return hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()
