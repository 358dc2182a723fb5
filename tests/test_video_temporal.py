"""Long-term video colors (issue 30): the age of tracked colors, drift held, and the test footage
of colorgan.video.quality (exact motion, the drift measure). Tiny synthetic arrays throughout."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from colorgan import Colorizer, Hint
from colorgan.color import rgb_to_lab
from colorgan.video.frames import FrameColorizer
from colorgan.video.quality import LONG_KINDS, Clip, drift, long_clip
from colorgan.video.temporal import MAX_ORDER, Colors, Stabilizer, TemporalState

S = 64  # grid size of the Stabilizer tests


def texture(shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """A smooth random gray texture (S, S) uint8, panned ``shift`` pixels (the flow can follow it)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (S, 2 * S)).astype(np.float32), (0, 0), 2.0)
    noise = (noise - noise.min()) / np.ptp(noise) * 220 + 15
    moved = cv2.warpAffine(noise, np.float32([[1, 0, shift], [0, 1, 0]]), (2 * S, S), flags=cv2.INTER_LINEAR)
    return moved[:, :S].astype(np.uint8)


def run(stabilizer: Stabilizer, grids: list[np.ndarray], predictions: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The stabilizer over a sequence of grid frames and predicted ab: (outputs, ages)."""
    colors = [Colors(predictions[0])]
    for previous, current, predicted in zip(grids, grids[1:], predictions[1:]):
        colors.append(stabilizer.blend(stabilizer.motion(previous, current), colors[-1], predicted))
    return [c.ab for c in colors], [np.ones((S, S), np.float32) if c.age is None else c.age for c in colors]


def constant(a: float, b: float) -> np.ndarray:
    return np.stack([np.full((S, S), a, np.float32), np.full((S, S), b, np.float32)])


def test_the_age_grows_along_a_pan_and_resets_at_a_cut_and_where_the_flow_fails() -> None:
    grids = [texture(0.7 * i) for i in range(12)]
    broken = grids[-1].copy()
    broken[20:40, 20:40] = np.random.default_rng(1).integers(0, 255, (20, 20))  # something the flow cannot follow
    grids += [broken, texture(seed=5)]  # then a cut to another scene
    _, ages = run(Stabilizer(), grids, [constant(0.1, 0.1)] * len(grids))
    inner = (slice(8, 56), slice(16, 60))  # away from the edge the pan brings new content in at
    assert np.median(ages[11][inner]) == pytest.approx(12, abs=0.5)
    assert np.median(ages[12][25:35, 25:35]) == 1 and np.median(ages[12][45:60, 5:15]) > 11
    assert ages[13].max() == 1  # nothing carried across the cut


def test_a_point_tracked_long_keeps_its_color_while_the_prediction_drifts() -> None:
    grids = [texture(0.5 * i) for i in range(48)]
    predictions = [constant(0.3 - 0.6 * i / 47, 0.1) for i in range(48)]  # the model changes its mind
    ends = {}
    for long_term in (True, False):
        outputs, _ = run(Stabilizer(long_term=long_term), grids, predictions)
        ends[long_term] = float(np.median(outputs[-1][0, 16:48, 16:40]))
    assert ends[True] > 0.2  # held near the first color, 0.3
    assert ends[False] < -0.15  # the fixed blend followed the prediction to -0.3


def test_the_weight_rises_with_age_to_a_cap_below_1_and_strength_0_carries_nothing() -> None:
    age = np.array([1.0, 2.0, 3.0, 50.0], np.float32)
    weight = Stabilizer(strength=0.85).weight(age)
    assert weight[0] == pytest.approx(0.85) and np.all(np.diff(weight) >= 0) and weight[-1] < 1
    assert weight[-1] == pytest.approx(1 - 0.15**MAX_ORDER)
    np.testing.assert_allclose(Stabilizer(strength=0.85, long_term=False).weight(age), 0.85)
    assert not Stabilizer(strength=0.0).weight(age).any()


def test_new_content_is_shifted_to_the_colors_on_screen() -> None:
    stabilizer = Stabilizer()
    current = texture(2.0)
    current[:, 44:] = texture(seed=9)[:, 44:]  # the right side: content new in this frame
    motion = stabilizer.motion(texture(), current)
    colors = stabilizer.blend(motion, Colors(constant(0.2, 0.0), np.full((S, S), 10, np.float32)), constant(0.0, 0.0))
    assert np.median(colors.ab[0, :, 8:36]) == pytest.approx(0.2, abs=0.01)  # the carried color, held
    assert 0.1 < np.median(colors.ab[0, :, 52:]) < 0.19  # the new content's own prediction (0) pulled towards it
    assert np.median(colors.age[:, 52:]) == 1


def test_uncovered_background_gets_back_the_colors_it_had() -> None:
    grids = [(texture() * 0.8).astype(np.uint8) for _ in range(10)]
    for i, grid in enumerate(grids[4:8]):
        grid[20:40, 10 + 4 * i:30 + 4 * i] = 255  # an object passes in front of a still background, then leaves
    before, after = constant(0.3, 0.0), constant(0.3, 0.0)
    after[0, 20:40, 10:42] = -0.3  # once uncovered, the model sees that background otherwise
    uncovered = {}
    for long_term in (True, False):
        outputs, _ = run(Stabilizer(long_term=long_term), grids, [before] * 4 + [after] * 6)
        uncovered[long_term] = float(np.median(outputs[8][0, 24:36, 22:30]))
    assert uncovered[True] > 0.25  # remembered
    assert uncovered[False] < -0.1  # the prediction of the moment


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer.from_pretrained()


def frames_of(n: int, step: float = 1.0, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    width, height = size
    big = cv2.resize(texture(seed=3), (2 * width, height), interpolation=cv2.INTER_CUBIC)
    return [cv2.warpAffine(big, np.float32([[1, 0, step * i], [0, 1, 0]]), (width, height)) for i in range(n)]


def test_strength_0_is_frame_by_frame(colorizer: Colorizer) -> None:
    frames = frames_of(6)
    held = list(FrameColorizer(colorizer, strength=0.0).colorize_all(frames, batch_size=4))
    alone = list(FrameColorizer(colorizer, temporal=False).colorize_all(frames, batch_size=4))
    for a, b in zip(held, alone, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_hint_given_mid_shot_overrides_the_carried_colors_near_it(colorizer: Colorizer) -> None:
    frames = frames_of(16)
    red = {10: [Hint(x=0.5, y=0.5, color="#d01010")]}
    guided = list(FrameColorizer(colorizer, hints=red).colorize_all(frames, batch_size=4))
    plain = list(FrameColorizer(colorizer).colorize_all(frames, batch_size=4))

    def redness(rgb: np.ndarray) -> float:
        return float(rgb_to_lab(rgb[26:38, 42:54].astype(np.float32) / 255.0)[..., 1].mean())

    np.testing.assert_array_equal(guided[9], plain[9])
    assert redness(guided[10]) > redness(plain[10]) + 8  # at once, though the colors there are long held
    assert redness(guided[15]) > redness(plain[15]) + 8  # and through the rest of the shot


def test_the_state_round_trips_with_its_ages_and_an_older_state_without_them_loads(colorizer: Colorizer) -> None:
    frames = frames_of(10)
    whole = FrameColorizer(colorizer)
    expected = list(whole.colorize_all(frames, batch_size=5))
    first = FrameColorizer(colorizer)
    first.colorize(frames[:5])
    saved = first.state.to_arrays()
    assert saved["age"].shape == (colorizer.size, colorizer.size) and saved["age"].max() > 4
    assert saved["memory"].shape[0] == 4 and saved["placement"].shape == (2, 3)
    restored = TemporalState.from_arrays(dict(saved))
    np.testing.assert_array_equal(restored.age, first.state.age)
    np.testing.assert_array_equal(restored.memory.canvas, first.state.memory.canvas)
    resumed = FrameColorizer(colorizer, state=restored).colorize(frames[5:])
    for a, b in zip(resumed, expected[5:], strict=True):
        np.testing.assert_array_equal(a, b)
    old = {k: v for k, v in saved.items() if k not in ("age", "memory", "placement")}  # as an earlier version saved it
    state = TemporalState.from_arrays(old)
    assert state.age is None and state.memory is None and state.frame == 5
    assert len(FrameColorizer(colorizer, state=state).colorize(frames[5:])) == 5


def smooth_photo(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo of slowly varying colors: resampling barely changes them, a misplaced pixel does."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    channels = [128 + 90 * np.sin(xx / rng.uniform(12, 20) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(12, 20) + rng.uniform(0, 6))
                for _ in range(3)]
    return Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def clip() -> tuple[Clip, list[Image.Image]]:
    photos = [smooth_photo(i) for i in range(len(LONG_KINDS))]
    return long_clip(photos, width=96, height=54, seconds=0.5), photos


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return cv2.remap(image.astype(np.float32), x[None].astype(np.float32), y[None].astype(np.float32), cv2.INTER_LINEAR)[0]


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_long_clips_show_each_photo_point_where_their_views_say(clip: tuple[Clip, list[Image.Image]], shift: float) -> None:
    clip, photos = clip
    assert clip.starts == [12 * i for i in range(len(LONG_KINDS))] and len(clip.frames) == 12 * len(LONG_KINDS)
    cells = (np.arange(12) + 0.5) / 12
    u, v = (a.ravel() for a in np.meshgrid(cells, cells))
    errors: dict[bool, list[float]] = {False: [], True: []}
    for frame, view in zip(clip.frames, clip.views, strict=True):
        for cutout in (False, True):
            fx, fy, seen = view.to_frame(u, v, cutout=cutout, margin=0.05)
            if seen.any():
                photo = np.asarray(photos[(view.shot + 1) % len(photos)] if cutout else photos[view.shot])
                shown = sample(frame, fx[seen] * 96 - 0.5 + shift, fy[seen] * 54 - 0.5)  # shift: a view one pixel off
                truth = np.clip(sample(photo, u[seen] * 480 - 0.5, v[seen] * 360 - 0.5) * view.gain, 0, 255)
                errors[cutout].append(float(np.abs(shown - truth).mean()))
    assert len(errors[True]) >= 6  # the object was seen
    if shift:
        assert np.mean(errors[False]) > 4 and np.mean(errors[True]) > 10
    else:
        assert np.mean(errors[False]) < 1.0 and np.mean(errors[True]) < 4.0
        fx, fy = np.meshgrid((np.arange(96) + 0.5) / 96, (np.arange(54) + 0.5) / 54)
        u2, v2, on = clip.views[40].to_photo(fx, fy)  # and back: frame -> photo -> frame
        assert on.any() and not on.all()
        back = np.where(on, clip.views[40].to_frame(u2, v2, cutout=True)[1], clip.views[40].to_frame(u2, v2)[1])
        np.testing.assert_allclose(back, fy, atol=1e-9)


def test_drift_is_0_for_the_truth_and_measures_colors_that_wander(clip: tuple[Clip, list[Image.Image]]) -> None:
    clip, _ = clip
    assert drift(clip.frames, clip, min_frames=6) == 0.0
    wandering = [np.clip(f.astype(np.int16) + np.array([20, -20, 0]) * (i % 12) // 11, 0, 255).astype(np.uint8)
                 for i, f in enumerate(clip.frames)]  # each shot grows redder to its end
    assert drift(wandering, clip, min_frames=6) > 10
