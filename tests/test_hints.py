"""Color hints: what a hint means, how it reaches the model, how training simulates them, and every way to give one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorgan import Colorizer, Hint
from colorgan.color import AB_SCALE, rgb_to_lab
from colorgan.hints import (
    HINT_CHANNELS,
    HINT_GAIN,
    HINT_SIDE,
    MAX_HINTS,
    HintError,
    hint_channels,
    hints_to_json,
    parse_hint_option,
    parse_hints_json,
    read_hints_file,
    truth_hints,
)
from colorgan.model.artifact import save_pretrained
from colorgan.networks import build_generator
from colorgan.training.hints import simulate_hints


def lab_ab(rgb: tuple[int, int, int]) -> tuple[float, float]:
    lab = rgb_to_lab(np.array(rgb, dtype=np.float32) / 255)
    return float(lab[1]), float(lab[2])


def hint_follower(size: int = 64) -> Colorizer:
    """A stand-in hint-capable model that paints exactly its hint channels' colors (gray where none):
    whatever the output shows at a place is what the hint channels held there."""

    def predict(l_norm: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
        return np.zeros((l_norm.shape[0], 2, *l_norm.shape[2:]), np.float32) if cond is None else cond[:, :2] / HINT_GAIN

    return Colorizer(predict=predict, size=size, size_multiple=1, meta={"generator": "follower", "size": size},
                     cond_channels=HINT_CHANNELS)


# --- what a hint is ------------------------------------------------------------------------


@pytest.mark.parametrize("color,rgb", [("#f2efe9", (242, 239, 233)), ("f2efe9", (242, 239, 233)), ("#F00", (255, 0, 0)),
                                       ((40, 90, 200), (40, 90, 200)), ([0, 128, 0], (0, 128, 0))])
def test_a_hint_color_is_hex_or_rgb_and_only_its_chroma_is_kept(color, rgb) -> None:
    assert Hint(x=0.5, y=0.5, color=color).ab == pytest.approx(lab_ab(rgb), abs=1e-3)


def test_a_two_number_color_is_lab_chroma() -> None:
    assert Hint(x=0.5, y=0.5, color=(20.5, -40)).ab == (20.5, -40.0)


@pytest.mark.parametrize("color", ["red", "#12345", "#gggggg", (300, 0, 0), (1, 2, 3, 4), (200, 0), ("1", 2, 3), None, (True, 0, 0)])
def test_malformed_colors_are_refused(color) -> None:
    with pytest.raises(HintError, match="hint color"):
        Hint(x=0.5, y=0.5, color=color)


def test_floats_are_fractions_and_integers_are_pixels() -> None:
    assert Hint(x=0.25, y=1.0, color="#fff").position(200, 100) == (0.25, 1.0)
    assert Hint(x=49, y=0, color="#fff").position(200, 100) == ((49 + 0.5) / 200, 0.5 / 100)


@pytest.mark.parametrize("x,y,match", [(1.5, 0.5, "outside the photo"), (-0.1, 0.5, "outside the photo"),
                                       (float("nan"), 0.5, "must be a number"), ("0.5", 0.5, "must be a number"),
                                       (True, 0.5, "must be a number")])
def test_coordinates_off_the_photo_or_not_numbers_are_refused(x, y, match) -> None:
    with pytest.raises(HintError, match=match):
        Hint(x=x, y=y, color="#fff")


@pytest.mark.parametrize("x,y", [(200, 5), (5, 100), (-1, 5)])
def test_pixel_coordinates_off_the_photo_are_refused(x, y) -> None:
    with pytest.raises(HintError, match=r"outside the photo \(200x100 pixels\)"):
        Hint(x=x, y=y, color="#fff").position(200, 100)


# --- the model's hint channels -------------------------------------------------------------


def test_hint_channels_hold_the_normalized_chroma_and_a_mask_in_a_small_square() -> None:
    hint = Hint(x=0.5, y=0.25, color=(255, 0, 0))
    channels = hint_channels([hint], width=300, height=100, size=16)
    assert channels.shape == (HINT_CHANNELS, 16, 16)
    mask = channels[2]
    rows, cols = np.nonzero(mask)
    assert mask.sum() == HINT_GAIN * HINT_SIDE**2
    assert (int(rows.mean()), int(cols.mean())) == (4, 8)  # 0.25 * 16, 0.5 * 16
    a, b = hint.ab
    np.testing.assert_allclose(channels[0][mask > 0], HINT_GAIN * a / AB_SCALE, rtol=1e-6)
    np.testing.assert_allclose(channels[1][mask > 0], HINT_GAIN * b / AB_SCALE, rtol=1e-6)
    assert np.abs(channels[:, mask == 0]).sum() == 0


def test_where_hints_overlap_the_later_one_wins_and_corners_stay_inside() -> None:
    first, second = Hint(x=0.0, y=0.0, color="#ff0000"), Hint(x=0.0, y=0.0, color="#0000ff")
    channels = hint_channels([first, second], width=10, height=10, size=8)
    assert channels[2].sum() == HINT_GAIN * (HINT_SIDE // 2 + 1) ** 2  # clipped at the corner
    assert channels[0, 0, 0] == pytest.approx(HINT_GAIN * second.ab[0] / AB_SCALE)


def test_no_hints_is_exactly_the_automatic_colorization(tiny_hint_model: Path, gray_gradient) -> None:
    colorizer = Colorizer.from_pretrained(tiny_hint_model, device="cpu")
    assert colorizer.takes_hints
    photo = gray_gradient(90, 60)
    automatic = np.asarray(colorizer.colorize(photo))
    assert np.array_equal(np.asarray(colorizer.colorize(photo, hints=[])), automatic)
    l_norm = np.zeros((1, 1, 64, 64), np.float32)
    zeros = colorizer.predict_ab(l_norm, np.zeros((1, HINT_CHANNELS, 64, 64), np.float32))
    assert np.array_equal(zeros, colorizer.predict_ab(l_norm))
    assert not np.array_equal(np.asarray(colorizer.colorize(photo, hints=[Hint(x=0.5, y=0.5, color="#00ff00")])), automatic)


def test_a_hint_colors_its_own_place_of_the_photo(gray_gradient) -> None:
    photo = np.full((120, 240), 128, np.uint8)
    out = np.asarray(hint_follower().colorize(photo, hints=[Hint(x=0.75, y=0.5, color=(0, 90, 200))]))
    lab = rgb_to_lab(out).transpose(2, 0, 1)
    chroma = np.linalg.norm(lab[1:], axis=0)
    assert chroma[60, 180] > 30 and lab[2, 60, 180] < -30  # blue at the hint
    assert chroma[60, 60] < 1 and chroma[10, 180] < 1  # gray far from it
    assert np.abs(lab[0] - rgb_to_lab(np.full(3, 128, np.uint8))[0]).max() < 0.5  # the photo's own lightness


def test_pixel_hints_refer_to_the_full_photo_also_on_a_preview() -> None:
    colorizer = hint_follower()
    photo = np.full((400, 800), 100, np.uint8)
    hints = [Hint(x=600, y=100, color="#2060d0")]
    full = np.asarray(colorizer.colorize(photo, hints=hints))
    prepared = colorizer.prepare(photo, max_pixels=20_000)
    preview = np.asarray(colorizer.colorize_prepared(prepared, hints=hints))
    assert preview.shape[:2] == (100, 200)
    assert np.abs(full[::4, ::4].astype(int) - preview.astype(int)).mean() < 3


def test_a_prepared_photo_colorizes_exactly_as_colorize(tiny_hint_model: Path, gray_gradient) -> None:
    colorizer = Colorizer.from_pretrained(tiny_hint_model, device="cpu")
    photo, hints = gray_gradient(130, 70), [Hint(x=0.2, y=0.8, color="#c08040"), Hint(x=3, y=4, color=(10, 200, 30))]
    prepared = colorizer.prepare(photo)
    for given in ([], hints):
        assert np.array_equal(np.asarray(colorizer.colorize_prepared(prepared, hints=given)),
                              np.asarray(colorizer.colorize(photo, hints=given)))


def test_hints_for_a_model_without_hint_channels_are_refused(tiny_model: Path, gray_gradient) -> None:
    colorizer = Colorizer.from_pretrained(tiny_model, device="cpu")
    assert not colorizer.takes_hints
    with pytest.raises(HintError, match="takes no color hints"):
        colorizer.colorize(gray_gradient(40, 40), hints=[Hint(x=0.5, y=0.5, color="#fff")])


def test_too_many_hints_are_refused() -> None:
    with pytest.raises(HintError, match=f"more than the {MAX_HINTS}"):
        hint_follower().colorize(np.zeros((8, 8), np.uint8), hints=[Hint(x=0.5, y=0.5, color="#fff")] * (MAX_HINTS + 1))


# --- hint files and options ----------------------------------------------------------------


def test_a_hint_file_round_trips(tmp_path: Path) -> None:
    hints = [Hint(x=0.41, y=0.62, color="#f2efe9"), Hint(x=12, y=30, color=(1, 2, 3)), Hint(x=0.5, y=0.5, color=(10.0, -5.0))]
    path = tmp_path / "hints.json"
    path.write_text(hints_to_json(hints))
    assert read_hints_file(path) == hints
    assert json.loads(path.read_text())[0] == {"x": 0.41, "y": 0.62, "color": "#f2efe9"}


@pytest.mark.parametrize("text,match", [
    ("{bad", "not valid JSON"),
    ('{"x": 0.5}', "must be a JSON list"),
    ('[{"x": 0.5, "y": 0.5}]', "item 0 must be an object with the keys x, y and color"),
    ('[{"x": 0.5, "y": 0.5, "color": "#fff", "extra": 1}]', "item 0 must be an object"),
    ('[{"x": 0.5, "y": 0.5, "color": "#fff"}, {"x": 2.5, "y": 0.5, "color": "#fff"}]', "item 1: hint x=2.5 is outside"),
    (json.dumps([{"x": 0.5, "y": 0.5, "color": "#fff"}] * (MAX_HINTS + 1)), "more than the 1000 allowed"),
])
def test_malformed_hint_json_is_one_clear_error(text: str, match: str) -> None:
    with pytest.raises(HintError, match=match):
        parse_hints_json(text)


def test_a_missing_hint_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HintError, match="cannot read hint file"):
        read_hints_file(tmp_path / "nope.json")


@pytest.mark.parametrize("text,expected", [("0.41,0.62,#f2efe9", Hint(x=0.41, y=0.62, color="#f2efe9")),
                                           ("12, 30, #ABC", Hint(x=12, y=30, color="#ABC"))])
def test_the_hint_option_reads_x_y_and_a_hex_color(text: str, expected: Hint) -> None:
    assert parse_hint_option(text) == expected


@pytest.mark.parametrize("text", ["0.4,0.6", "0.4,0.6,#fff,1", "a,0.6,#fff", "0.4,0.6,blue"])
def test_a_malformed_hint_option_is_refused(text: str) -> None:
    with pytest.raises(HintError):
        parse_hint_option(text)


# --- training's simulated hints ------------------------------------------------------------


def test_simulated_hints_follow_zhang_et_al() -> None:
    truth = torch.rand(400, 2, 32, 32) * 2 - 1
    channels = simulate_hints(truth, generator=torch.Generator().manual_seed(0))
    assert channels.shape == (400, HINT_CHANNELS, 32, 32)
    hinted = channels[:, 2].flatten(1).amax(1) > 0
    assert 0.4 < hinted.float().mean() < 0.6  # half the photos get none: the automatic case keeps training
    mask = channels[:, 2:3] > 0
    assert torch.equal(channels[:, :2] != 0, mask.expand(-1, 2, -1, -1) & (channels[:, :2] != 0))  # chroma only under the mask
    covered = mask[hinted].float().mean()
    assert 0.02 < covered < 0.5  # ~10 squares of 1-9 px on 32x32


def test_each_simulated_hint_holds_the_truths_mean_color_there() -> None:
    truth = torch.zeros(1, 2, 16, 16)
    truth[0, :, :, 8:] = torch.tensor([0.3, -0.2]).view(2, 1, 1)  # right half one color, left half gray
    for seed in range(20):
        channels = simulate_hints(truth, generator=torch.Generator().manual_seed(seed))[0]
        mask = channels[2] > 0
        if mask.any():
            values = channels[:2, mask]
            inside_right = mask[:, 8:].any() and not mask[:, :8].any()
            if inside_right:
                assert torch.allclose(values, HINT_GAIN * torch.tensor([0.3, -0.2]).view(2, 1))
            assert values[0].abs().max() <= HINT_GAIN * 0.3 + 1e-5


def test_simulated_hints_are_reproducible_with_a_seed() -> None:
    truth = torch.rand(8, 2, 32, 32)
    first = simulate_hints(truth, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, simulate_hints(truth, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, simulate_hints(truth, generator=torch.Generator().manual_seed(4)))


def test_truth_hints_reveal_the_true_color_at_fixed_places() -> None:
    rgb = np.zeros((50, 80, 3), np.uint8)
    rgb[:, :40] = (200, 30, 30)
    rgb[:, 40:] = (30, 30, 200)
    hints = truth_hints(rgb, 20, seed=7)
    assert hints == truth_hints(rgb, 20, seed=7)
    for hint in hints:
        if not 38 <= hint.x <= 41:  # away from the border the 3x3 mean is the pure color
            expected = (200, 30, 30) if hint.x < 40 else (30, 30, 200)
            assert hint.ab == pytest.approx(lab_ab(expected), abs=0.05)


# --- a hint-capable model from an automatic one ----------------------------------------------


@pytest.mark.parametrize("name,config", [("unet", {"base_channels": 8, "num_downs": 5}), ("resunet", {"encoder": "resnet18"})])
def test_adding_hint_channels_keeps_what_the_model_computes(name: str, config: dict, tmp_path: Path) -> None:
    from colorgan.training.config import TrainConfig
    from colorgan.training.start import init_generator

    torch.manual_seed(0)
    automatic = build_generator(name, **config).eval()
    save_pretrained(automatic, tmp_path / "auto", size=64)
    cfg = TrainConfig(generator=name, hints=True, init_from=tmp_path / "auto", data=tmp_path)
    assert cfg.generator_kwargs()["cond_channels"] == HINT_CHANNELS
    guided = build_generator(name, **config, cond_channels=HINT_CHANNELS)
    init_generator(guided, cfg)
    guided.eval()
    assert guided.cond_channels == HINT_CHANNELS
    l = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(guided(l), automatic(l))
        assert torch.equal(guided(l, torch.zeros(2, HINT_CHANNELS, 64, 64)), automatic(l))
