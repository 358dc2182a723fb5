"""Video colorization (colorgan.video): what the output keeps, stable colors, cuts, hints, resume, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from colorgan import Colorizer, Hint  # noqa: E402
from colorgan.color import rgb_to_lab  # noqa: E402
from colorgan.errors import UserError  # noqa: E402
from colorgan.video import api as video  # noqa: E402
from colorgan.video import decode as video_decode  # noqa: E402
from colorgan.video.frames import FrameColorizer  # noqa: E402
from colorgan.video.job import colorize_video, parts_folder  # noqa: E402
from colorgan.video.settings import VideoSettings  # noqa: E402


TIME_BASE = Fraction(1, 12800)
STEP = 533  # 1/24 s in TIME_BASE


def scene(width: int, height: int, shift: int, kind: int = 0) -> np.ndarray:
    """A gray frame of one of two different scenes, panned ``shift`` pixels to the left."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == 0:
        gray = (np.sin((xx + shift) / 9.0) + np.cos(yy / 7.0)) * 60 + 128
    else:
        gray = 40 + 150 * (((xx + shift) // 24 + yy // 24) % 2) + 10 * np.sin(yy / 3.0)
    return np.clip(gray, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray], *, vfr: bool = False, rotation: int = 0, audio: bool = False,
                subtitle: bool = False, codec: str = "libx264", keyframes: int | None = None) -> list[int]:
    """Encode gray frames; returns their timestamps. ``vfr``: every fifth frame lasts twice as long;
    ``keyframes``: a keyframe every so many frames (default: the encoder's, one here)."""
    height, width = frames[0].shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        if keyframes:
            stream.options = {"g": str(keyframes), "keyint_min": str(keyframes)}
        stream.time_base = stream.codec_context.time_base = TIME_BASE
        if rotation:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        text = container.add_mux_stream("subrip") if subtitle else None
        pts, stamps = 0, []
        for i, gray in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=2), format="rgb24")
            frame.pts, frame.time_base = pts, TIME_BASE
            stamps.append(pts)
            pts += STEP * (2 if vfr and i % 5 == 0 else 1)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = int(48000 * pts * TIME_BASE)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
        if text is not None:
            packet = av.Packet(b"an old film")
            packet.stream, packet.pts, packet.dts, packet.duration = text, 0, 0, 500
            packet.time_base = Fraction(1, 1000)
            container.mux(packet)
    return stamps


def decode(path: Path) -> tuple[list[np.ndarray], list[int], av.container.InputContainer]:
    """(RGB frames, timestamps, the container, closed) of a video."""
    with av.open(str(path)) as container:
        frames, stamps = [], []
        for frame in container.decode(container.streams.video[0]):
            frames.append(frame.to_ndarray(format="rgb24"))
            stamps.append(frame.pts)
    return frames, stamps, container


def interrupt_after(frames: int) -> Callable[[int], None]:
    """A progress callback that stops the job as Ctrl+C would, once ``frames`` frames are encoded."""
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        if done >= frames:
            raise KeyboardInterrupt

    return progress


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer.from_pretrained()


@pytest.fixture
def pan(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "film.mp4", n: int = 24, size: tuple[int, int] = (96, 64), **options) -> Path:
        path = tmp_path / name
        write_video(path, [scene(*size, 2 * i) for i in range(n)], **options)
        return path

    return make


def chroma(rgb: np.ndarray) -> np.ndarray:
    lab = rgb_to_lab(rgb.astype(np.float32) / 255.0)
    return np.hypot(lab[..., 1], lab[..., 2])


def test_output_keeps_size_timestamps_rotation_audio_and_subtitles(pan, tmp_path: Path, cli) -> None:
    source = pan("film.mkv", vfr=True, rotation=90, audio=True, subtitle=True)
    out = tmp_path / "film_color.mkv"
    code, _, err = cli("colorize", source, "-o", out, "-q")
    assert code == 0, err
    frames, stamps, _ = decode(out)
    _, source_stamps, _ = decode(source)
    assert stamps == source_stamps  # variable frame rate kept frame for frame
    assert frames[0].shape == (64, 96, 3)
    assert max(float(chroma(f).mean()) for f in frames) > 2.0  # colored, not gray
    with av.open(str(out)) as container, av.open(str(source)) as original:
        assert [s.type for s in container.streams] == ["video", "audio", "subtitle"]
        assert next(container.decode(video=0)).rotation == 90
        assert abs(container.duration - original.duration) < 0.1 * av.time_base
        audio_in = [bytes(p) for p in original.demux(audio=0) if p.size]
        original.seek(0)
        subtitle_in = [bytes(p) for p in original.demux(subtitles=0) if p.size]
    with av.open(str(out)) as container:
        assert [bytes(p) for p in container.demux(audio=0) if p.size] == audio_in  # copied, not re-encoded
    with av.open(str(out)) as container:
        assert [bytes(p) for p in container.demux(subtitles=0) if p.size] == subtitle_in
    assert not parts_folder(out).exists()


def test_mp4_output_leaves_out_subtitles_it_cannot_hold(pan, tmp_path: Path, cli) -> None:
    source = pan("film.mkv", subtitle=True)
    code, _, err = cli("colorize", source, "-o", tmp_path / "out.mp4", "-q")
    assert code == 0, err
    assert "subtitle" in err.lower()  # said, not dropped silently
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [s.type for s in container.streams] == ["video"]
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_temporal_consistency_steadies_colors_of_a_noisy_still_shot(colorizer: Colorizer) -> None:
    rng = np.random.default_rng(0)
    base = scene(96, 64, 0).astype(np.float32)
    frames = [np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8) for _ in range(12)]

    def flicker(temporal: bool) -> float:
        out = list(FrameColorizer(colorizer, temporal=temporal).colorize_all(frames, batch_size=4))
        ab = [rgb_to_lab(f.astype(np.float32) / 255.0)[..., 1:] for f in out]
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(ab, ab[1:])]))

    assert flicker(True) < 0.6 * flicker(False)


def test_a_cut_starts_the_new_shot_afresh(colorizer: Colorizer) -> None:
    frames = [scene(96, 64, 2 * i) for i in range(6)] + [scene(96, 64, 2 * i, kind=1) for i in range(6)]
    stable = FrameColorizer(colorizer)
    out = list(stable.colorize_all(frames, batch_size=4))
    assert stable.cuts == [6]
    alone = list(FrameColorizer(colorizer, temporal=False).colorize_all(frames[6:7]))
    np.testing.assert_array_equal(out[6], alone[0])  # nothing carried across the cut


def test_hints_for_one_frame_carry_through_its_shot_and_stop_at_the_cut(colorizer: Colorizer) -> None:
    frames = [scene(96, 64, i) for i in range(8)] + [scene(96, 64, i, kind=1) for i in range(4)]
    red = [Hint(x=0.5, y=0.5, color="#d01010")]
    guided = list(FrameColorizer(colorizer, hints={0: red}).colorize_all(frames, batch_size=4))
    plain = list(FrameColorizer(colorizer).colorize_all(frames, batch_size=4))

    def redness(rgb: np.ndarray) -> float:
        return float(rgb_to_lab(rgb[24:40, 40:56].astype(np.float32) / 255.0)[..., 1].mean())

    assert redness(guided[7]) > redness(plain[7]) + 5  # the last frame of the shot is still guided
    np.testing.assert_array_equal(guided[8], plain[8])  # the next shot is not


@pytest.mark.parametrize("name,keyframes,batch", [
    ("film.mp4", None, 4),  # one keyframe: the resumed run decodes from the start
    ("film.mp4", 6, 7),  # keyframes to seek to; parts (7 frames) end exactly where batches do
    ("film.ts", 6, 4),  # MPEG-TS, whose seeking can land past the point asked for
])
def test_a_killed_job_resumes_and_equals_an_uninterrupted_run(pan, tmp_path: Path, colorizer: Colorizer, name: str,
                                                               keyframes: int | None, batch: int) -> None:
    # x264 is deterministic run to run, except on tiny frames (at 96x64 its lookahead varies), hence 192x128.
    source = pan(name, n=30, size=(192, 128), keyframes=keyframes)
    settings = VideoSettings(segment_seconds=0.25, batch_size=batch)
    whole = tmp_path / f"whole{source.suffix}"
    colorize_video(colorizer, source, whole, settings=settings)

    resumed = tmp_path / f"resumed{source.suffix}"
    with pytest.raises(KeyboardInterrupt):
        colorize_video(colorizer, source, resumed, settings=settings, on_frames=interrupt_after(20))
    assert not resumed.exists()  # nothing under the final name
    assert json.loads((parts_folder(resumed) / "parts.json").read_text())["parts"]
    result = colorize_video(colorizer, source, resumed, settings=settings)
    assert 0 < result.resumed_frames < 30
    frames_whole, stamps_whole, _ = decode(whole)
    frames_resumed, stamps_resumed, _ = decode(resumed)
    assert stamps_resumed == stamps_whole
    for a, b in zip(frames_whole, frames_resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not parts_folder(resumed).exists()


def test_finished_parts_serve_the_same_job_only(pan, tmp_path: Path, colorizer: Colorizer) -> None:
    source = pan(n=24)
    settings = VideoSettings(segment_seconds=0.1, batch_size=2)  # parts of 3 frames
    for out, rerun in ((tmp_path / "a.mp4", settings), (tmp_path / "b.mp4", VideoSettings(segment_seconds=0.1, batch_size=2, temporal=False))):
        with pytest.raises(KeyboardInterrupt):
            colorize_video(colorizer, source, out, settings=settings, on_frames=interrupt_after(12))
        result = colorize_video(colorizer, source, out, settings=rerun)
        assert (result.resumed_frames > 0) == (rerun == settings)  # the same job resumes; another starts afresh


def test_a_folder_mixes_photos_and_videos_and_a_rerun_skips_them(pan, tmp_path: Path, gray_gradient, cli) -> None:
    from PIL import Image

    folder = tmp_path / "archive"
    folder.mkdir()
    pan("archive/reel.mp4")
    Image.fromarray(gray_gradient(48, 32)).save(folder / "photo.png")
    code, _, err = cli("colorize", folder, "-o", tmp_path / "out", "-q")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png", "reel.mp4"]
    code, out, _ = cli("colorize", folder, "-o", tmp_path / "out")
    assert "0 done, 2 skipped, 0 failed" in out


def test_colorgan_outputs_among_the_inputs_are_recognized(pan, tmp_path: Path, cli) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    pan("films/reel.mp4")
    assert cli("colorize", folder, "-o", folder / "colorized", "-q")[0] == 0
    code, out, _ = cli("colorize", folder, "-o", folder / "colorized")
    assert "0 done, 1 skipped, 0 failed" in out  # the earlier output is not taken for a second input
    assert not (folder / "colorized" / "colorized").exists()
    from colorgan.files.provenance import written_by_colorgan

    assert written_by_colorgan(folder / "colorized" / "reel.mp4")
    assert not written_by_colorgan(folder / "reel.mp4")


@pytest.mark.parametrize("case,reason", [
    ("garbage", "not a video FFmpeg can read"),
    ("truncated", "truncated or corrupt"),
    ("audio only", "has no video stream"),
    ("unknown codec", "video codec is unknown to FFmpeg"),
    ("no frames", "has no video stream"),  # FFmpeg's MP4 reader drops a track without samples
])
def test_bad_videos_fail_alone_with_one_line_and_no_output(pan, tmp_path: Path, gray_gradient, case: str, reason: str, cli) -> None:
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    bad = folder / "bad.mp4"
    if case == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "truncated":
        good = pan("whole.mkv", n=96)  # 4 s, of which 2 s survive
        data = good.read_bytes()
        bad = folder / "bad.mkv"
        bad.write_bytes(data[: len(data) // 2])
    elif case == "unknown codec":  # a Matroska codec ID no FFmpeg knows, in an otherwise sound file
        data = pan("whole.mkv").read_bytes()
        assert b"V_MPEG4/ISO/AVC" in data
        bad = folder / "bad.mkv"
        bad.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_UNKNOWN/CODEC", 1))
    elif case == "no frames":
        with av.open(str(bad), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
            container.start_encoding()  # the header, and not one frame
    else:
        with av.open(str(bad), "w") as container:
            sound = container.add_stream("aac", rate=48000)
            sound.layout = "mono"
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, 0
            container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    Image.fromarray(gray_gradient(48, 32)).save(folder / "photo.png")
    code, out, err = cli("colorize", folder, "-o", tmp_path / "out")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and reason in lines[0] and bad.name in lines[0]
    assert "Traceback" not in err
    assert (tmp_path / "out" / "photo.png").exists()  # the other file went on
    assert not (tmp_path / "out" / bad.name).exists()
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # no parts, no temporaries left


def test_frames_larger_than_allowed_are_refused(pan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.setattr(video_decode, "MAX_VIDEO_PIXELS", 1000)
    code, _, err = cli("colorize", pan(), "-o", tmp_path / "out.mp4")
    assert code == 1 and "larger than the" in err
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("args,message", [
    (["-o", "{dir}/film.png"], "is a video; name a video file"),
    (["-o", "{dir}/film.webm", "--video-codec", "libx264"], "cannot hold libx264 video"),
    (["--video-codec", "aac"], "is no video encoder"),
    (["--strength", "1.0"], "--strength must be"),
    (["--crf", "99"], "--crf must be"),
])
def test_wrong_video_options_are_refused_before_any_work(pan, tmp_path: Path, args: list[str], message: str, cli) -> None:
    source = pan()
    args = [a.format(dir=tmp_path) for a in args]
    code, _, err = cli("colorize", source, *args)
    assert code == 2 and message in err


def test_the_output_never_overwrites_the_input(pan, cli) -> None:
    source = pan()
    before = source.read_bytes()
    code, _, err = cli("colorize", source, "-o", source)
    assert code == 2 and "refusing to write over" in err
    assert source.read_bytes() == before


def test_hint_files_give_frames_for_videos_and_photos_refuse_them(tmp_path: Path, gray_gradient, cli) -> None:
    from PIL import Image

    from colorgan.hints import HintError, read_hints_file

    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps([{"x": 0.5, "y": 0.5, "color": "#ff0000", "frame": 12}, {"x": 0.1, "y": 0.1, "color": "#00ff00"}]))
    assert [h.frame for h in read_hints_file(hints)] == [12, 0]
    photo = tmp_path / "photo.png"
    Image.fromarray(gray_gradient(48, 32)).save(photo)
    code, _, err = cli("colorize", photo, "--hints", hints, "-o", tmp_path / "out.png")
    assert code == 2 and "is for a video" in err
    with pytest.raises(HintError, match="frame index"):
        Hint(x=0.5, y=0.5, color="#fff", frame=-1)


def test_colorizer_api_for_files_and_frames(pan, tmp_path: Path, colorizer: Colorizer) -> None:
    result = video.colorize_video(colorizer, pan(n=10), tmp_path / "api.mp4", strength=0.5)
    assert result.frames == 10 and (tmp_path / "api.mp4").exists()
    frames = [scene(96, 64, i) for i in range(5)]
    out = list(video.colorize_frames(colorizer, iter(frames)))
    assert len(out) == 5 and out[0].shape == (64, 96, 3) and out[0].dtype == np.uint8
    with pytest.raises(UserError, match="strength"):
        list(video.colorize_frames(colorizer, frames, strength=1.5))


@pytest.mark.parametrize("suffix,codec", [(".avi", "h264"), (".mov", "h264"), (".webm", "vp9"), (".mpg", "mpeg2video"), (".ts", "h264")])
def test_every_container_gets_its_default_codec_and_every_frame(pan, tmp_path: Path, suffix: str, codec: str, cli) -> None:
    source = pan(n=12, vfr=True, audio=True)  # a variable frame rate, which AVI and MPEG put on a constant grid
    out = tmp_path / f"out{suffix}"
    code, _, err = cli("colorize", source, "-o", out, "-q")
    assert code == 0, err
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == codec
        frames = [frame.pts for frame in container.decode(video=0)]
    assert len(frames) == 12 and frames == sorted(frames)  # all there, in order


def test_without_temporal_steps_a_hint_still_guides_only_its_frame_on(colorizer: Colorizer) -> None:
    frames = [scene(96, 64, i) for i in range(4)]
    guided = list(FrameColorizer(colorizer, temporal=False, hints={2: [Hint(x=0.5, y=0.5, color="#d01010")]}).colorize_all(frames))
    plain = list(FrameColorizer(colorizer, temporal=False).colorize_all(frames))
    for before in (0, 1):
        np.testing.assert_array_equal(guided[before], plain[before])  # frames before the hint's are untouched
    assert not np.array_equal(guided[2], plain[2])


def test_an_odd_sized_video_keeps_its_size(tmp_path: Path, cli) -> None:
    source = tmp_path / "odd.mkv"
    write_video(source, [scene(97, 65, i) for i in range(6)])
    code, _, err = cli("colorize", source, "-o", tmp_path / "out.mkv", "-q")
    assert code == 0, err
    frames, _, _ = decode(tmp_path / "out.mkv")
    assert len(frames) == 6 and frames[0].shape == (65, 97, 3)


def test_a_faster_input_than_mpeg_allows_is_thinned_not_stretched(tmp_path: Path, cli) -> None:
    source = tmp_path / "fast.mkv"
    with av.open(str(source), "w") as container:  # 1 s at 120 fps
        stream = container.add_stream("libx264", rate=120)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(120):
            frame = av.VideoFrame.from_ndarray(np.repeat(scene(96, 64, i)[..., None], 3, axis=2), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    code, _, err = cli("colorize", source, "-o", tmp_path / "out.mpg", "-q")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mpg")) as container:
        frames = [frame.time for frame in container.decode(video=0)]
    assert 55 <= len(frames) <= 61  # MPEG-2's 60 fps at most: every other frame
    assert frames[-1] - frames[0] < 1.05  # still one second long


def test_a_hint_for_a_frame_past_the_end_is_refused_before_any_work(tiny_hint_model, tmp_path):
    from colorgan.hints import Hint

    film = tmp_path / "film.mp4"
    write_video(film, [scene(64, 48, i) for i in range(12)])
    colorizer = Colorizer.from_pretrained(tiny_hint_model)
    with pytest.raises(UserError, match="a hint is for frame 1000000000, but the video has about 12 frames"):
        video.colorize_video(colorizer, film, tmp_path / "out.mp4", hints=[Hint(x=0.5, y=0.5, color="#ff0000", frame=10**9)])
    assert not list(tmp_path.glob("*out*"))
    video.colorize_video(colorizer, film, tmp_path / "out.mp4", hints=[Hint(x=0.5, y=0.5, color="#ff0000", frame=11)])


def test_a_damaged_resume_record_is_discarded_not_a_traceback(tiny_model, tmp_path):
    film = tmp_path / "film.mp4"
    write_video(film, [scene(64, 48, i) for i in range(6)])
    out = tmp_path / "out.mp4"
    parts_folder(out).mkdir()
    (parts_folder(out) / "parts.json").write_text("[" * 100_000 + "]" * 100_000)  # nested past the parser's stack
    result = colorize_video(Colorizer.from_pretrained(tiny_model), film, out)
    assert result.frames == 6 and out.is_file() and not parts_folder(out).exists()
