"""RGB <-> L*a*b*: NumPy (inference) and torch (training) agree, and the model's normalization."""

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.color import rgb2lab

from colorgan import color
from colorgan.training.lab import lab_to_rgb, model_space_to_rgb, rgb_to_lab, rgb_to_model_space


def _photo() -> torch.Tensor:
    return torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float()[None] / 255


def _random_pixels() -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make", [_random_pixels, _photo], ids=["random", "photo"])
def test_round_trip_error_is_below_one_level_of_8_bit(make):
    rgb = make()
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < 1 / 255


@pytest.mark.parametrize("make", [_random_pixels, _photo], ids=["random", "photo"])
def test_lab_agrees_with_scikit_image_within_half_a_delta_e(make):
    rgb = make()
    ours = rgb_to_lab(rgb).permute(0, 2, 3, 1).numpy()
    ref = rgb2lab(rgb.permute(0, 2, 3, 1).double().numpy())
    delta_e = np.sqrt(((ours - ref) ** 2).sum(-1))
    assert delta_e.max() < 0.5


def test_model_space_is_normalized_into_unit_range_and_inverts():
    rgb = _random_pixels()
    l, ab = rgb_to_model_space(rgb)
    assert l.shape == (4, 1, 32, 32) and ab.shape == (4, 2, 32, 32)
    assert l.min() >= -1 and l.max() <= 1
    assert ab.abs().max() <= 1.2  # sRGB's a*, b* stay within about +-110
    assert (model_space_to_rgb(l, ab) - rgb).abs().max() < 1 / 255


def test_black_white_and_gray_map_to_the_ends_and_zero_chroma():
    rgb = torch.tensor([0.0, 1.0, 0.5]).view(1, 1, 3, 1).expand(1, 3, 3, 1)
    l, ab = rgb_to_model_space(rgb)
    assert l[0, 0, 0, 0] == pytest.approx(-1, abs=1e-4)
    assert l[0, 0, 1, 0] == pytest.approx(1, abs=1e-4)
    assert ab.abs().max() < 1e-3


# --- the NumPy inference path against the torch (kornia) training path ------------------------

def _uint8_pixels(seed: int = 0, shape: tuple[int, ...] = (48, 64, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _kornia_lab(pixels: np.ndarray) -> np.ndarray:
    unit = torch.from_numpy(pixels.astype(np.float32) / (255 if pixels.dtype == np.uint8 else 65535)).permute(2, 0, 1)
    return rgb_to_lab(unit).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_numpy_lab_is_kornias(dtype):
    pixels = _uint8_pixels().astype(dtype) * (257 if dtype == np.uint16 else 1)
    assert np.abs(color.rgb_to_lab(pixels) - _kornia_lab(pixels)).max() < 1e-3
    assert np.abs(color.luminance(pixels) - _kornia_lab(pixels)[..., 0]).max() < 1e-3


@pytest.mark.parametrize("levels", [256, 65536])
def test_gray_pixels_get_the_luminance_their_rgb_would(levels):
    dtype = np.uint8 if levels == 256 else np.uint16
    gray = np.linspace(0, levels - 1, 1000).astype(dtype)[None]
    as_rgb = np.repeat(gray[..., None], 3, axis=-1)
    assert np.abs(color.luminance(gray) - color.rgb_to_lab(as_rgb)[..., 0]).max() < 1e-3


def test_colors_inside_srgb_come_back_as_kornia_gives_them_within_one_level():
    pixels = _uint8_pixels(1)
    lab = _kornia_lab(pixels).transpose(2, 0, 1)
    ours = color.lab_to_srgb8(lab[0], lab[1:]).astype(int)
    theirs = (lab_to_rgb(torch.from_numpy(lab)).permute(1, 2, 0).numpy() * 255).round().astype(int)
    assert np.abs(ours - pixels).max() <= 1 and np.abs(ours - theirs).max() <= 1


def test_colors_outside_srgb_keep_their_luminance_and_lose_chroma_not_hue():
    l = np.full((1, 3), 60.0, np.float32)
    ab = np.array([[[150.0, -150.0, 0.0]], [[0.0, 40.0, 200.0]]], np.float32)  # far outside sRGB
    rgb = color.lab_to_srgb8(l, ab)
    back = color.rgb_to_lab(rgb)
    assert np.abs(back[..., 0] - 60).max() < 0.5  # clipping would change L*
    hue_in, hue_out = np.arctan2(ab[1], ab[0]), np.arctan2(back[..., 2], back[..., 1])
    assert np.abs(np.angle(np.exp(1j * (hue_in - hue_out)))).max() < 0.2


def test_sixteen_bit_output_is_the_eight_bit_one_with_more_precision():
    pixels = _uint8_pixels(2)
    lab = color.rgb_to_lab(pixels).transpose(2, 0, 1)
    eight, sixteen = color.lab_to_srgb8(lab[0], lab[1:]), color.lab_to_srgb16(lab[0], lab[1:])
    assert sixteen.dtype == np.uint16
    assert np.abs(sixteen / 257.0 - eight).max() <= 1
    assert np.abs(sixteen / 257.0 - pixels).max() < 0.05  # no 8-bit rounding in between


@pytest.mark.parametrize("shape,dtype", [((48, 64, 3), np.uint8), ((48, 64, 3), np.uint16), ((48, 64), np.uint8), ((48, 64), np.uint16)],
                         ids=["rgb8", "rgb16", "gray8", "gray16"])
def test_the_full_resolution_luminance_is_the_lab_lightness(shape, dtype):
    top = np.iinfo(dtype).max
    pixels = np.random.default_rng(3).integers(0, top + 1, shape, dtype=dtype)
    as_rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1)
    y, fy = color.luminance_f(pixels)
    lab = color.rgb_to_lab(as_rgb)
    assert np.abs(116 * fy - 16 - lab[..., 0]).max() < 0.02
    rgb = color.to_srgb(y, fy, lab[..., 1:].transpose(2, 0, 1), bits=16 if dtype == np.uint16 else 8).astype(int)
    assert np.abs(rgb - as_rgb).max() <= (1 if dtype == np.uint8 else 100)  # the photo's own colors come back
