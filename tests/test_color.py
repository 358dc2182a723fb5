"""RGB <-> L*a*b* on tensors, and the model's normalization."""

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.color import rgb2lab

from colorgan.color import lab_to_rgb, model_space_to_rgb, rgb_to_lab, rgb_to_model_space


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
