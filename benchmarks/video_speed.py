"""Video colorization speed (issues 16 and 30): colorgan's pipeline against the simplest per-frame loop, one run.

Each input is a gray H.264 clip filmed from still photos by colorgan.video.quality's virtual camera
(pans and zooms, cuts between shots; the photos of PHOTOS, or generated patterns without them) at
854x480 and 1920x1080. Every measure is frames per second end to end, decoded file to encoded file
(H.264, CRF 18, yuv420p), with the model loaded beforehand:

- simple loop: decode with PyAV, ``Colorizer.colorize`` on each frame, encode; one thread.
- colorgan, frame by frame: ``colorize_video`` with ``temporal=False``.
- colorgan, stable colors: ``colorize_video`` as ``colorgan colorize film.mp4`` runs it.
- before issue 30: the same job as it ran before: full-size RGB recombination converted to YUV by
  FFmpeg, luma decoded through FFmpeg's gray conversion, x264 at its "medium" preset.

Each stage's busy time (decode, model input, model, temporal, recombination, encode; the stages
run on three threads at once, so they overlap) is summed over the run, for the share table.

Usage: ``python benchmarks/video_speed.py [--photos ../shared/data/val] [--seconds 8] [--record]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from common import cpu_name, print_and_record

from colorgan import Colorizer
from colorgan.files.discovery import find_images
from colorgan.video import decode, encode, job, yuv
from colorgan.video.job import colorize_video
from colorgan.video.temporal import Stabilizer
from colorgan.video.quality import FPS, camera_clip
from colorgan.video.settings import DEFAULT_CRF, VideoSettings

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"480p": (854, 480), "1080p": (1920, 1080)}


def make_input(path: Path, photos: list[Image.Image], size: tuple[int, int], seconds: float) -> int:
    """A gray H.264 clip of ``seconds`` (shots of 2 s); returns its frame count."""
    shots = max(1, round(seconds / 2))
    frames, _ = camera_clip((photos * shots)[:shots], width=size[0], height=size[1], seconds_per_shot=seconds / shots)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "18"}
        for i, rgb in enumerate(frames):
            gray = np.asarray(Image.fromarray(rgb).convert("L"))
            frame = av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=2), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return len(frames)


def simple_loop(colorizer: Colorizer, source: Path, target: Path) -> None:
    """The plainest correct program: decode a frame, colorize it, encode it."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate or Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.time_base = video.time_base
        stream.options = {"crf": str(DEFAULT_CRF)}
        for frame in inp.decode(video):
            colored = av.VideoFrame.from_image(colorizer.colorize(frame.to_image()))
            colored.pts, colored.time_base = frame.pts, video.time_base
            out.mux(stream.encode(colored))
        out.mux(stream.encode(None))


def timed(fn, frames: int) -> float:
    start = time.perf_counter()
    fn()
    return frames / (time.perf_counter() - start)


# Where each stage's time is spent: (owner, attribute) of the functions timed for it.
STAGES = {
    "decode": [(decode, "read_frames")],
    "model input": [(Colorizer, "model_inputs")],
    "model": [(Colorizer, "predict_ab")],
    "temporal": [(Stabilizer, "motion"), (Stabilizer, "blend")],
    "recombination": [(Colorizer, "recombine"), (yuv, "gray_to_i420")],
    "encode": [(encode.PartWriter, "write"), (encode.PartWriter, "close")],
}


@contextlib.contextmanager
def stage_clock() -> Iterator[dict[str, float]]:
    """Seconds spent in each stage's functions while the block runs (a generator's time is its ``next()``'s)."""
    busy: dict[str, float] = defaultdict(float)
    lock = threading.Lock()

    def add(stage: str, seconds: float) -> None:
        with lock:
            busy[stage] += seconds

    def timer(stage: str, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            add(stage, time.perf_counter() - start)
            if not hasattr(result, "__next__"):
                return result
            return _timed_items(result, lambda seconds: add(stage, seconds))
        return wrapped

    saved = [(owner, name, getattr(owner, name)) for items in STAGES.values() for owner, name in items]
    for stage, items in STAGES.items():
        for owner, name in items:
            setattr(owner, name, timer(stage, getattr(owner, name)))
    try:
        yield busy
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def _timed_items(items, add):
    iterator = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            add(time.perf_counter() - start)
            return
        add(time.perf_counter() - start)
        yield item


@contextlib.contextmanager
def as_before_issue_30() -> Iterator[None]:
    """The video job as it ran before issue 30: full-size RGB frames converted to YUV by FFmpeg, and
    gray frames decoded through FFmpeg's gray conversion (the encoder preset is set by the caller)."""
    saved = job._i420_weights, decode._gray_pixels
    job._i420_weights = lambda *args: None
    decode._gray_pixels = lambda frame: frame.to_ndarray(format="gray")
    try:
        yield
    finally:
        job._i420_weights, decode._gray_pixels = saved


def photos_from(folder: Path | None) -> list[Image.Image]:
    if folder is not None and folder.is_dir():
        paths = find_images(folder)
        step = max(1, len(paths) // 8)
        return [Image.open(p).convert("RGB") for p in paths[::step][:8]]
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).resize((640, 480), Image.Resampling.BICUBIC)
            for _ in range(4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sizes", default="480p,1080p")
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    photos = photos_from(args.photos)
    colorizer = Colorizer.from_pretrained()
    work = Path(tempfile.mkdtemp(prefix="colorgan-video-speed-"))
    rows, shares = [], []
    try:
        for name in args.sizes.split(","):
            source = work / f"{name}.mp4"
            frames = make_input(source, photos, SIZES[name], args.seconds)
            simple = timed(lambda: simple_loop(colorizer, source, work / "simple.mp4"), frames)
            with as_before_issue_30(), stage_clock() as busy_before:
                before = timed(lambda: colorize_video(colorizer, source, work / "before.mp4",
                                                      settings=VideoSettings(preset="medium")), frames)
            alone = timed(lambda: colorize_video(colorizer, source, work / "alone.mp4", settings=VideoSettings(temporal=False)), frames)
            with stage_clock() as busy_after:
                stable = timed(lambda: colorize_video(colorizer, source, work / "stable.mp4"), frames)
            sizes = {k: (work / f"{k}.mp4").stat().st_size for k in ("before", "stable")}
            rows.append((name, frames, simple, before, alone, stable, sizes))
            shares.append((name, frames, dict(busy_before), dict(busy_after)))
            print(f"{name}: {frames} frames; simple {simple:.1f} fps, before issue 30 {before:.1f} fps, "
                  f"frame by frame {alone:.1f} fps, stable {stable:.1f} fps", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu = cpu_name()
    lines = [
        f"### Video speed (issue 30), {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {cpu}, 2 cores, Python {platform.python_version()}, PyAV {av.__version__}. Command: "
        f"`python benchmarks/video_speed.py --seconds {args.seconds:g}`. Gray H.264 input filmed from "
        f"{'val photos' if args.photos.is_dir() else 'generated patterns'}; output H.264 CRF {DEFAULT_CRF}; "
        "frames per second from the input file to the finished output file, model loaded; before issue 30: "
        "RGB recombination converted by FFmpeg, x264 preset medium.",
        "",
        "| input | frames | simple loop | before issue 30 | colorgan, frame by frame | colorgan, stable colors | stable vs simple | "
        "stable vs before | file size vs before | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, frames, simple, before, alone, stable, sizes in rows:
        target = "≥ 60 fps" if name == "480p" else "≥ 25 fps"
        lines.append(f"| {name} | {frames} | {simple:.1f} fps | {before:.1f} fps | {alone:.1f} fps | {stable:.1f} fps | "
                     f"{stable / simple:.2f}× | {stable / before:.2f}× | {sizes['stable'] / sizes['before']:.2f}× | {target} |")
    lines += ["", "Each stage's busy time per frame (its share of all stages' busy time), stable colors; the stages "
              "overlap on three threads, so the sum exceeds the wall time:", "",
              "| input | run | " + " | ".join(STAGES) + " |", "| --- | --- |" + " ---: |" * len(STAGES)]
    for name, frames, busy_before, busy_after in shares:
        for run, busy in (("before issue 30", busy_before), ("now", busy_after)):
            total = sum(busy.values()) or 1.0
            cells = [f"{1000 * busy.get(stage, 0.0) / frames:.1f} ms ({100 * busy.get(stage, 0.0) / total:.0f} %)" for stage in STAGES]
            lines.append(f"| {name} | {run} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print_and_record(report, args.record)


if __name__ == "__main__":
    main()
