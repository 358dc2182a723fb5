"""Photo discovery, selection, decoding and the deterministic epoch sampler."""

import numpy as np
import torch
import pytest
from PIL import Image

from colorgan.colorize.job import ColorizeJob
from colorgan.training.data import EpochSampler, PhotoDataset, collate, folder_balance_weights, load_rgb
from colorgan.files.discovery import find_images
from colorgan.errors import UserError


def test_finds_photos_of_every_format_recursively_in_sorted_order(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["z.jpg", "a/m.png", "a/b/c.webp", "a/d.bmp", "e.tiff", "f.JPEG", "notes.txt"]:
        path = tmp_path / name
        if path.suffix == ".txt":
            path.write_text("not a photo")
        else:
            Image.new("RGB", (8, 8), (200, 10, 10)).save(path, format={".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower()))
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["a/b/c.webp", "a/d.bmp", "a/m.png", "e.tiff", "f.JPEG", "z.jpg"]


def test_training_and_colorize_pick_the_same_files_from_a_folder(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    for name in ["a.jpg", "b.JPEG", "c.png", "sub/d.tif", "e.gif", ".hidden.png", "._a.jpg", ".cache/f.png"]:
        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / name, format="JPEG" if name.lower().endswith(("jpg", "jpeg")) else None)
    (root / "notes.txt").write_text("not a photo")
    expected = ["a.jpg", "b.JPEG", "c.png", "e.gif", "sub/d.tif"]
    assert [p.relative_to(root).as_posix() for p in find_images(root)] == expected
    tasks = ColorizeJob(inputs=[str(root)], out=tmp_path / "out").plan().tasks
    assert [t.source.relative_to(root).as_posix() for t in tasks] == expected


def test_first_and_last_select_deterministically_by_path(make_photos):
    root = make_photos(6)
    every = find_images(root)
    assert find_images(root, first=2) == every[:2]
    assert find_images(root, last=3) == every[-3:]


def test_file_list_selects_named_photos_relative_to_the_folder(make_photos, tmp_path):
    root = make_photos(4)
    listing = tmp_path / "list.txt"
    listing.write_text("# two photos\nphoto_000.png\nsub/photo_001.jpg\n")
    assert [p.name for p in find_images(root, file_list=listing)] == ["photo_000.png", "photo_001.jpg"]
    listing.write_text("nothere.jpg\n")
    with pytest.raises(UserError, match="missing files"):
        find_images(root, file_list=listing)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        find_images(tmp_path / "nope")
    with pytest.raises(UserError, match="no photos"):
        find_images(tmp_path)


def test_items_are_resized_uint8_rgb_and_flip_mirrors(make_photos):
    ds = PhotoDataset(find_images(make_photos(1)), size=32)
    plain, flipped = ds[(0, False)]["rgb"], ds[(0, True)]["rgb"]
    assert plain.shape == (3, 32, 32) and str(plain.dtype) == "torch.uint8"
    assert (flipped == plain.flip(-1)).all()


def test_gray_and_corrupt_photos_are_skipped_with_a_reason(bad_file, tmp_path):
    Image.new("L", (16, 16), 128).save(tmp_path / "gray_mode.png")
    gray_rgb = np.repeat(np.linspace(0, 255, 256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    Image.fromarray(gray_rgb).save(tmp_path / "gray_rgb.jpg")
    truncated, empty = bad_file("truncated", tmp_path), bad_file("empty", tmp_path)
    ds = PhotoDataset(sorted(tmp_path.iterdir()), size=16)
    items = [ds[i] for i in range(len(ds))]
    assert all("skip" in it for it in items)
    by_name = {it["skip"].rsplit("/", 1)[-1]: it for it in items}
    assert by_name["gray_mode.png"]["gray"] and by_name["gray_rgb.jpg"]["gray"]
    assert not by_name[truncated.name]["gray"] and by_name[empty.name]["reason"] == "empty file (0 bytes)"
    batch = collate(items)
    assert batch["rgb"].numel() == 0 and len(batch["skipped"]) == 4


def test_photos_over_pillows_bomb_warning_are_skipped_not_raised(tmp_path, monkeypatch):
    Image.new("RGB", (60, 60), (200, 10, 10)).save(tmp_path / "large.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 3,600 pixels: Pillow only warns; training refuses
    item = PhotoDataset([tmp_path / "large.png"], size=16)[0]
    assert item["skip"] == str(tmp_path / "large.png") and not item["gray"]
    assert item["reason"].startswith("refused as a possible decompression bomb")


def test_sepia_photo_counts_as_color(tmp_path):
    ramp = np.linspace(0, 1, 64)[None, :, None].repeat(64, 0)
    Image.fromarray((ramp * np.array([255, 200, 150])).astype(np.uint8)).save(tmp_path / "sepia.png")
    assert load_rgb(tmp_path / "sepia.png", 32).shape == (32, 32, 3)


def test_sampler_order_and_flips_depend_only_on_seed_and_epoch():
    a, b = EpochSampler(20, seed=3), EpochSampler(20, seed=3)
    a.set_position(1)
    b.set_position(1)
    first = list(a)
    assert first == list(b) and sorted(i for i, _, _ in first) == list(range(20))
    b.set_position(2)
    assert list(b) != first
    b.set_position(1, start=7)
    assert list(b) == first[7:] and len(b) == 13


def test_folder_balance_weights_even_out_folders_by_the_exponent(tmp_path):
    paths = [tmp_path / "big" / f"{i}.jpg" for i in range(16)] + [tmp_path / "small" / f"{i}.jpg" for i in range(4)]
    paths.append(tmp_path / "loose.jpg")

    def masses(exponent):
        w = folder_balance_weights(paths, tmp_path, exponent)
        return [float(w[:16].sum()), float(w[16:20].sum()), float(w[20:].sum())]

    assert masses(0.0) == [16.0, 4.0, 1.0]  # the natural mix
    assert masses(1.0) == pytest.approx([1.0, 1.0, 1.0])  # every folder equally often
    assert masses(0.5) == pytest.approx([4.0, 2.0, 1.0])  # square-root balancing


def test_weighted_sampler_draws_folders_in_proportion_and_reproducibly():
    weights = torch.tensor([1.0] * 10 + [9.0])  # the last photo holds 9/19 of the mass
    sampler = EpochSampler(11, seed=0, weights=weights)
    draws = []
    for epoch in range(200):
        sampler.set_position(epoch)
        draws += [i for i, _, _ in sampler]
    assert draws.count(10) / len(draws) == pytest.approx(9 / 19, abs=0.03)
    sampler.set_position(3)
    again = EpochSampler(11, seed=0, weights=weights)
    again.set_position(3)
    assert list(sampler) == list(again)


def test_random_crop_takes_the_part_of_the_photo_the_draws_place_it_at(tmp_path):
    left_red_right_blue = np.zeros((40, 120, 3), np.uint8)
    left_red_right_blue[:, :60, 0] = 255
    left_red_right_blue[:, 60:, 2] = 255
    Image.fromarray(left_red_right_blue).save(tmp_path / "split.png")
    ds = PhotoDataset([tmp_path / "split.png"], size=16, crop_scale=0.5)
    left = ds[(0, False, (0.0, 0.0, 0.5))]["rgb"].float()
    right = ds[(0, False, (0.0, 1.0, 0.5))]["rgb"].float()
    assert left.shape == right.shape == (3, 16, 16)
    assert left[0].mean() > 250 and left[2].mean() < 5  # a 20 px square at the left edge: all red
    assert right[2].mean() > 250 and right[0].mean() < 5
    assert ds[(0, True)]["rgb"].shape == ds[0]["rgb"].shape == (3, 16, 16)  # no draws: the whole photo
    whole = PhotoDataset([tmp_path / "split.png"], size=16)[(0, False, (0.0, 0.0, 0.5))]["rgb"].float()
    assert whole[0].mean() == pytest.approx(whole[2].mean(), abs=20)  # no crop: both halves, squashed


def test_crop_scale_outside_zero_to_one_is_rejected():
    with pytest.raises(UserError, match="crop scale"):
        PhotoDataset([], size=16, crop_scale=1.5)
