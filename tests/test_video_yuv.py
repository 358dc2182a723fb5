"""Gray frames joined straight into 4:2:0 planes (colorgan.video.yuv): the same colors as the RGB path, far less work."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from colorgan.color import normalize_ab, rgb_to_lab  # noqa: E402
from colorgan.render import recombine  # noqa: E402
from colorgan.photo import read_photo  # noqa: E402
from colorgan.video.encode import luma_weights  # noqa: E402
from colorgan.video.yuv import gray_to_i420  # noqa: E402

BT709 = {"kr": 0.2126, "kb": 0.0722}
Reformatter = av.video.reformatter


def _gray(width: int = 96, height: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.clip(128 + 90 * np.sin(xx / 7.0) * np.cos(yy / 11.0), 0, 255).astype(np.uint8)


def _colors(size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth, fairly strong a*b* on the model's grid (normalized), as a model predicts them."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-45, 45, (2, 3, 3)).astype(np.float32)
    import cv2

    return normalize_ab(np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in coarse]))


def _rgb_from_i420(planes: np.ndarray) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    return frame.to_ndarray(format="rgb24", src_colorspace=Reformatter.Colorspace.ITU709, src_color_range=Reformatter.ColorRange.MPEG)


def test_neutral_colors_keep_every_gray_level_and_a_neutral_chroma() -> None:
    gray = _gray()
    planes = gray_to_i420(gray, np.zeros((2, 16, 16), np.float32), **BT709)
    expected = np.round(16 + gray.astype(np.float64) * 219 / 255).astype(np.uint8)
    assert np.array_equal(planes[:64], expected)  # the frame's detail is its own, level for level
    assert np.abs(planes[64:].astype(int) - 128).max() <= 1


def test_the_planes_match_the_rgb_path_converted_by_ffmpeg() -> None:
    gray, ab = _gray(), _colors()
    rgb = np.asarray(recombine(read_photo(gray), ab))
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=Reformatter.Colorspace.ITU709, dst_color_range=Reformatter.ColorRange.MPEG).to_ndarray()
    planes = gray_to_i420(gray, ab, **BT709)
    difference = np.abs(planes.astype(int) - reference.astype(int))
    assert np.percentile(difference[:64], 99) <= 2 and difference[:64].mean() < 0.5  # luma
    assert difference[64:].mean() < 1.0  # chroma: averaged per block before or after the conversion
    exact = rgb_to_lab(rgb)
    error = np.sqrt(((rgb_to_lab(_rgb_from_i420(planes)) - exact) ** 2).sum(-1)).mean()
    error_of_ffmpeg = np.sqrt(((rgb_to_lab(_rgb_from_i420(reference)) - exact) ** 2).sum(-1)).mean()
    assert error < 2.0 and error < error_of_ffmpeg + 0.2  # as seen after decoding: as close to the full-size colors
    lab = rgb_to_lab(_rgb_from_i420(planes))
    assert np.abs(lab[..., 0] - rgb_to_lab(np.repeat(gray[..., None], 3, 2))[..., 0]).mean() < 1.0  # L* kept


def test_the_guided_upsampling_is_followed_too() -> None:
    gray, ab = _gray(), _colors(seed=3)
    guide = np.asarray(read_photo(gray).image.resize((16, 16)), np.float32)[None] / 50.0 - 1.0
    guided = np.asarray(recombine(read_photo(gray), ab, guide=guide))
    planes = gray_to_i420(gray, ab, guide=guide, **BT709)
    assert not np.array_equal(planes, gray_to_i420(gray, ab, **BT709))
    lab, lab_exact = rgb_to_lab(_rgb_from_i420(planes)), rgb_to_lab(guided)
    assert np.sqrt(((lab - lab_exact) ** 2).sum(-1)).mean() < 2.5


def test_odd_sides_are_refused() -> None:
    with pytest.raises(ValueError, match="even sides"):
        gray_to_i420(_gray(95, 64), np.zeros((2, 16, 16), np.float32), **BT709)


def test_the_matrix_is_the_one_the_output_is_tagged_with() -> None:
    untagged = 2
    assert luma_weights(untagged, 1080) == (0.2126, 0.0722)  # HD: BT.709
    assert luma_weights(untagged, 480) == (0.299, 0.114)  # SD: BT.601
    assert luma_weights(int(Reformatter.Colorspace.BT2020), 2160) == (0.2627, 0.0593)


def test_a_gray_film_is_encoded_from_the_planes_with_the_colors_of_the_rgb_path(tiny_model, tmp_path, monkeypatch) -> None:
    from test_video import scene, write_video

    from colorgan import Colorizer
    from colorgan.video.frames import FrameColorizer
    from colorgan.video.job import colorize_video

    frames = [scene(64, 48, 2 * i) for i in range(8)]
    write_video(tmp_path / "film.mp4", frames)
    colorizer = Colorizer.from_pretrained(tiny_model)
    with av.open(str(tmp_path / "film.mp4")) as source:
        decoded = [f.to_ndarray(format="gray") for f in source.decode(video=0)]
    planes = FrameColorizer(colorizer).colorize(decoded, i420=(0.299, 0.114))
    rgb = FrameColorizer(colorizer).colorize(decoded)
    assert [p.shape for p in planes] == [(72, 64)] * 8 and [r.shape for r in rgb] == [(48, 64, 3)] * 8
    from colorgan.video import yuv

    made = []
    monkeypatch.setattr(yuv, "gray_to_i420", lambda *a, **k: made.append(1) or gray_to_i420(*a, **k))
    colorize_video(colorizer, tmp_path / "film.mp4", tmp_path / "out.mp4")
    assert len(made) == 8  # every frame went to the encoder as planes
    with av.open(str(tmp_path / "out.mp4")) as out:
        encoded = [f.to_ndarray(format="rgb24") for f in out.decode(video=0)]
    error = np.mean([np.sqrt(((rgb_to_lab(e) - rgb_to_lab(r)) ** 2).sum(-1)).mean() for e, r in zip(encoded, rgb, strict=True)])
    assert len(encoded) == 8 and error < 3.0  # H.264 at CRF 18 and 4:2:0 included
