"""The Colorizer and its photo I/O: exact geometry, the photo's own L*, every image kind, clear errors."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import colorgan
from colorgan import Colorizer
from colorgan.model import backends
from colorgan.color import color_kind, is_gray, lab_to_srgb8, rgb_to_lab
from colorgan.errors import PhotoError, PhotoTooLarge, UserError
from colorgan.model import files as model_files
from colorgan.model.artifact import save_pretrained
from colorgan.networks import build_generator
from colorgan.files.atomic import atomic_output
from colorgan.files.images import save_image
from colorgan.photo import open_image, read_photo


def lab_of(image: Image.Image | np.ndarray, white: float = 255.0) -> np.ndarray:
    """Reference L*a*b* (3, H, W) straight from colorgan.color.rgb_to_lab."""
    array = np.asarray(image).astype(np.float32) / white
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, -1)
    return rgb_to_lab(array[..., :3]).transpose(2, 0, 1)


def vivid_colorizer(size: int = 64) -> Colorizer:
    """A stand-in model predicting saturated ab of every hue (|ab| = 0.95*110): far outside sRGB for
    light and dark tones, which is where keeping the photo's L* is hard."""

    def predict(l_norm: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
        hue = np.linspace(0, 2 * np.pi, l_norm.shape[-1])
        ab = 0.95 * np.stack([np.cos(hue), np.sin(hue)])[:, None, :]
        return np.broadcast_to(ab, (l_norm.shape[0], 2, l_norm.shape[-2], l_norm.shape[-1])).astype(np.float32)

    return Colorizer(predict=predict, size=size, size_multiple=32, meta={"generator": "vivid", "size": size})


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> Colorizer:
    return Colorizer.from_pretrained(tiny_model, device="cpu")


# --- geometry and luminance --------------------------------------------------------------


@pytest.mark.parametrize("width,height", [(16, 16), (100, 37), (37, 300), (640, 480)])
@pytest.mark.parametrize("kind", ["gray", "color"])
def test_output_keeps_input_size_and_luminance(gray_gradient, color_wheel, width: int, height: int, kind: str) -> None:
    pixels = gray_gradient(width, height)
    if kind == "color":
        pixels = np.asarray(Image.fromarray(color_wheel()).resize((width, height)))
    out = vivid_colorizer().colorize(pixels)
    assert out.size == (width, height) and out.mode == "RGB"
    out_lab, in_lab = lab_of(out), lab_of(pixels)
    assert np.abs(out_lab[0] - in_lab[0]).max() <= 1.0
    midtones = (in_lab[0] > 30) & (in_lab[0] < 70)
    assert np.linalg.norm(out_lab[1:], axis=0)[midtones].mean() > 20, "the predicted color must actually be applied"


def test_sixteen_bit_gray_keeps_its_luminance() -> None:
    pixels = (np.linspace(0, 65535, 200)[None, :].repeat(30, 0)).astype(np.uint16)
    out = vivid_colorizer().colorize(Image.fromarray(pixels))
    assert np.abs(lab_of(out)[0] - lab_of(pixels, white=65535.0)[0]).max() <= 1.0


@pytest.mark.parametrize("kind", ["gray8", "gray16", "rgb"])
def test_full_resolution_luminance_is_what_rgb_to_lab_gives(kind: str) -> None:
    rng = np.random.default_rng(0)
    pixels, white = {
        "gray8": (rng.integers(0, 256, (40, 50), dtype=np.uint8), 255.0),
        "gray16": (rng.integers(0, 65536, (40, 50), dtype=np.uint16), 65535.0),
        "rgb": (rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), 255.0),
    }[kind]
    photo = read_photo(pixels if kind != "gray16" else Image.fromarray(pixels))
    np.testing.assert_allclose(photo.luminance(), lab_of(pixels, white)[0], atol=1e-3, rtol=0)


def test_colors_inside_srgb_convert_back_exactly() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    lab = lab_of(rgb)
    assert np.abs(lab_to_srgb8(lab[0], lab[1:]).astype(int) - rgb).max() <= 1


# --- every kind of input -----------------------------------------------------------------


@pytest.fixture(scope="module")
def as_mode(gray_gradient, color_wheel):
    """``as_mode(mode)``: a 48x40 test image in a Pillow mode: the gray gradient, or the color wheel
    for the palette and color modes."""

    def make(mode: str) -> Image.Image:
        gray = Image.fromarray(gray_gradient(48, 40))
        color = Image.fromarray(color_wheel(48, 40))
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1)))
        return {
            "1": lambda: gray.convert("1"),
            "L": lambda: gray,
            "I;16": lambda: Image.fromarray(np.asarray(gray).astype(np.uint16) * 257),
            "I": lambda: gray.convert("I"),
            "F": lambda: gray.convert("F"),
            "LA": lambda: Image.merge("LA", (gray, alpha)),
            "P": lambda: color.convert("P"),
            "P+transparency": lambda: _with_transparency(color.convert("P")),
            "RGB": lambda: color,
            "RGBA": lambda: Image.merge("RGBA", (*color.split(), alpha)),
            "CMYK": lambda: color.convert("CMYK"),
            "YCbCr": lambda: color.convert("YCbCr"),
        }[mode]()

    return make


def _with_transparency(img: Image.Image) -> Image.Image:
    img.info["transparency"] = 0
    return img


@pytest.mark.parametrize("mode", ["1", "L", "I;16", "I", "F", "LA", "P", "P+transparency", "RGB", "RGBA", "CMYK", "YCbCr"])
def test_every_image_mode_is_colorized_at_its_size(tiny: Colorizer, as_mode, mode: str, tmp_path: Path) -> None:
    img = as_mode(mode)
    out = tiny.colorize(img)
    assert out.size == img.size
    has_alpha = mode in ("LA", "RGBA", "P+transparency")
    assert out.mode == ("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "RGBA"):
        np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(img.getchannel("A")))
    if mode in ("L", "I;16", "I", "F"):  # the same gray photo in any bit depth: the same L*
        assert np.abs(lab_of(out)[0] - lab_of(as_mode("L"))[0]).max() <= 1.0


def test_photos_saved_in_every_kind_of_file_are_read(tiny: Colorizer, as_mode, tmp_path: Path) -> None:
    files = {
        "gray.png": as_mode("L"), "gray16.png": as_mode("I;16"), "alpha.png": as_mode("RGBA"),
        "palette.gif": as_mode("P"), "cmyk.jpg": as_mode("CMYK"), "gray.tif": as_mode("F"),
        "gray.webp": as_mode("L"), "bw.bmp": as_mode("1"),
    }
    for name, img in files.items():
        img.save(tmp_path / name)
        assert tiny.colorize(tmp_path / name).size == img.size, name


def test_exif_rotation_is_applied(tiny: Colorizer, tmp_path: Path) -> None:
    stored = np.zeros((20, 40), np.uint8)
    stored[:, 20:] = 255  # left half black, right half white, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the stored left becomes the top
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif)
    out = tiny.colorize(tmp_path / "rotated.jpg")
    assert out.size == (20, 40)
    l = lab_of(out)[0]
    assert l[:15].mean() < 20 and l[25:].mean() > 80


def linear_gray_icc() -> bytes:
    """A minimal ICC v2 gray profile with a linear tone curve (value 51 means 20 % luminance)."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    d50 = s15(0.9642) + s15(1.0) + s15(0.8249)
    text = b"Linear Gray"
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + b"\0" + bytes(78)),
        (b"wtpt", b"XYZ " + bytes(4) + d50),
        (b"kTRC", b"curv" + bytes(4) + struct.pack(">IH", 1, 0x0100) + bytes(2)),
        (b"cprt", b"text" + bytes(4) + b"CC0\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = struct.pack(">I4sI4s4s4s6H4sI4sI4s", offset + len(data), b"lcms", 0x02100000, b"mntr", b"GRAY", b"XYZ ",
                         2024, 1, 1, 0, 0, 0, b"acsp", 0, bytes(4), 0, bytes(4))
    header += bytes(12) + d50 + bytes(48)
    return header + struct.pack(">I", len(tags)) + table + data


def test_embedded_icc_profile_is_converted_to_srgb(tiny: Colorizer, tmp_path: Path) -> None:
    Image.new("L", (32, 32), 51).save(tmp_path / "linear.png", icc_profile=linear_gray_icc())
    Image.new("L", (32, 32), 51).save(tmp_path / "plain.png")
    # 20 % luminance is L* 52 once converted; the same value read as sRGB would be L* 21
    assert abs(float(lab_of(tiny.colorize(tmp_path / "linear.png"))[0].mean()) - 51.8) < 1.0
    assert abs(float(lab_of(tiny.colorize(tmp_path / "plain.png"))[0].mean()) - 21.2) < 1.0


# --- API forms, batching, sizes ----------------------------------------------------------


def test_path_pil_and_numpy_inputs_give_the_same_result(tiny: Colorizer, gray_gradient, tmp_path: Path) -> None:
    pixels = gray_gradient(70, 50)
    Image.fromarray(pixels).save(tmp_path / "g.png")
    results = [np.asarray(tiny.colorize(x)) for x in (tmp_path / "g.png", str(tmp_path / "g.png"), Image.fromarray(pixels), pixels)]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_an_rgb_photo_gets_the_colors_a_prepared_one_does(tiny: Colorizer, color_wheel) -> None:
    """colorize joins ab to the L* of each stripe's RGB pixels; prepare() computes the photo's L*
    once: the two must agree (a sepia scan or a gray photo saved as RGB takes the first path)."""
    pixels = color_wheel(120, 90)
    direct = np.asarray(tiny.colorize(pixels)).astype(int)
    prepared = np.asarray(tiny.colorize_prepared(tiny.prepare(pixels))).astype(int)
    assert np.abs(direct - prepared).max() <= 1


def test_colorize_batch_matches_one_at_a_time(tiny: Colorizer, gray_gradient, color_wheel) -> None:
    photos = [gray_gradient(64, 64), gray_gradient(30, 90), np.asarray(Image.fromarray(color_wheel()).convert("L"))]
    batched = tiny.colorize_batch(photos)
    for photo, out in zip(photos, batched, strict=True):
        assert np.abs(np.asarray(out).astype(int) - np.asarray(tiny.colorize(photo))).max() <= 1


def test_render_size_changes_what_the_model_sees_not_the_output_size(tiny: Colorizer, gray_gradient) -> None:
    pixels = gray_gradient(90, 60)
    assert tiny.colorize(pixels, size=128).size == (90, 60)
    assert tiny.size == 64 and tiny.check_size(None) == 64


@pytest.mark.parametrize("size", [0, -32, 48])
def test_size_must_be_a_positive_multiple_of_the_models(tiny: Colorizer, gray_gradient, size: int) -> None:
    with pytest.raises(UserError, match="positive multiple of 32"):
        tiny.colorize(gray_gradient(10, 10), size=size)


def test_save_pretrained_round_trips(tiny: Colorizer, gray_gradient, tmp_path: Path) -> None:
    weights = tiny.save_pretrained(tmp_path / "copy")
    again = Colorizer.from_pretrained(weights.parent, device="cpu")
    pixels = gray_gradient(50, 50)
    np.testing.assert_array_equal(np.asarray(again.colorize(pixels)), np.asarray(tiny.colorize(pixels)))
    assert again.size == tiny.size


def test_without_a_bundled_model_the_error_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_files, "MODELS_DIR", tmp_path)
    with pytest.raises(UserError, match=r"colorgan train.*--model PATH"):
        Colorizer.from_pretrained()
    with pytest.raises(UserError, match="no model file or bundled model named 'nope'"):
        Colorizer.from_pretrained("nope")


def test_bundled_models_are_found_by_name(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(tiny_model.parent, tmp_path / "default")
    monkeypatch.setattr(model_files, "MODELS_DIR", tmp_path)
    assert Colorizer.from_pretrained(device="cpu").size == 64
    assert Colorizer.from_pretrained("default", device="cpu").size == 64


def test_devices_that_do_not_exist_are_rejected() -> None:
    with pytest.raises(UserError, match="unknown device"):
        backends.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="cuda is not available"):
            backends.resolve_device("cuda")
    assert backends.resolve_device("cpu").type == "cpu"
    for name in ("cuda:x", "cpu:0", "cuda:"):
        with pytest.raises(UserError, match="unknown device"):
            backends.resolve_device(name)


def test_one_gpu_of_several_is_named_cuda_n(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert backends.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match="cuda:2 is not available"):
        backends.resolve_device("cuda:2")


# --- color detection (--keep-color) -------------------------------------------------------


def test_only_genuinely_colored_photos_are_color(gray_gradient, color_wheel, tmp_path: Path) -> None:
    gray = gray_gradient(96, 64)
    sepia = (gray[..., None] * np.array([1.0, 0.85, 0.62]) + np.array([0, 4, 10])).clip(0, 255).astype(np.uint8)
    Image.fromarray(gray).convert("RGB").save(tmp_path / "gray_as_rgb.jpg", quality=75)
    Image.fromarray(sepia).save(tmp_path / "sepia.jpg", quality=75)
    assert read_photo(color_wheel()).color_kind() == "color"
    assert read_photo(gray).color_kind() == "gray"
    assert read_photo(sepia).color_kind() == "toned"
    assert read_photo(tmp_path / "sepia.jpg").color_kind() == "toned"  # JPEG's chroma noise is averaged away
    assert read_photo(tmp_path / "gray_as_rgb.jpg").color_kind() == "gray"


def test_a_photo_dominated_by_one_hue_is_still_a_color_photo(gray_gradient) -> None:
    """A green lawn with a white ball, a blue toy on a white table: one hue, beside neutral pixels
    of the same lightness, which no toned print has."""
    yy, xx = np.mgrid[0:96, 0:128]
    lawn = (np.array([60, 140, 50]) + np.sin(xx / 3.0)[..., None] * 12).astype(np.uint8)
    ball = (yy - 40) ** 2 + (xx - 70) ** 2 < 20**2
    lawn[ball] = 125  # a gray ball about as light as the grass
    assert color_kind(lawn) == "color"
    toy = np.full((96, 128, 3), 200, np.uint8)
    toy[20:70, 30:90] = (70, 90, 200)
    toy[30:60, 40:80] = (95, 95, 95)  # its gray buttons, as light as its blue
    assert color_kind(toy) == "color"
    field = np.full((96, 128, 3), (40, 160, 50), np.uint8)
    field[30:70, 40:80] = 100  # a flat gray block on a saturated green field: far more chroma than any toning
    assert color_kind(field) == "color"
    assert color_kind(np.full((64, 64, 3), (40, 160, 50), np.uint8)) == "color"


def test_a_toned_photo_is_neither_gray_nor_colored(gray_gradient, color_wheel) -> None:
    """is_gray: no color at all (training, evaluation); color_kind: what --keep-color decides on."""
    gray = gray_gradient(96, 64)
    sepia = (gray[..., None] * np.array([1.0, 0.85, 0.62]) + np.array([0, 4, 10])).clip(0, 255).astype(np.uint8)
    as_rgb = np.repeat(gray[..., None], 3, axis=-1)
    assert is_gray(gray) and is_gray(as_rgb) and color_kind(as_rgb) == "gray"
    assert not is_gray(sepia) and color_kind(sepia) == "toned"
    assert not is_gray(color_wheel()) and color_kind(color_wheel()) == "color"



# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,reason",
    [("empty", "empty file"), ("truncated", "truncated file"), ("text", "not an image"), ("missing", "no such file")],
)
def test_unreadable_files_fail_with_one_line_naming_file_and_reason(bad_file, tmp_path: Path, kind: str, reason: str) -> None:
    path = bad_file(kind, tmp_path)
    with pytest.raises(PhotoError) as caught:
        read_photo(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("L", (100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is over twice the limit
    with pytest.raises(PhotoTooLarge, match="decompression bomb"):
        read_photo(tmp_path / "bomb.png")


def test_photos_over_pillows_warning_threshold_are_refused_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("L", (60, 60)).save(tmp_path / "large.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 3,600 pixels: over the warning threshold, under the error one
    assert read_photo(tmp_path / "large.png").image.size == (60, 60)
    with pytest.raises(PhotoTooLarge, match="decompression bomb"), open_image(tmp_path / "large.png", bomb_limit="warning"):
        pass


def test_errors_while_decoding_inside_open_image_become_photo_errors(bad_file, tmp_path: Path) -> None:
    path = bad_file("truncated", tmp_path)
    with pytest.raises(PhotoError, match=r"truncated file \(") as caught, open_image(path) as img:
        img.load()
    assert caught.value.source == str(path) and str(path) not in caught.value.reason


def test_interrupted_save_leaves_neither_output_nor_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_half_then_die(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_image(Image.new("RGB", (8, 8)), tmp_path / "out.png", fmt="png")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError
    assert target.read_text() == "old"
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


# --- memory -------------------------------------------------------------------------------

_PEAK_RSS_SCRIPT = """
import re, sys
import numpy as np
from colorgan import Colorizer

def peak_mb():  # this process's own high-water mark (ru_maxrss would include the parent's at fork)
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024

colorizer = Colorizer.from_pretrained(sys.argv[1], device="cpu")
pixels = np.tile(np.arange(4000, dtype=np.uint32).astype(np.uint8), (3000, 1))  # 12 megapixels, 8-bit gray
before = peak_mb()
assert colorizer.colorize(pixels).size == (4000, 3000)
print(peak_mb() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from Linux's /proc")
def test_memory_beyond_the_output_is_bounded_by_the_stripe_not_the_photo(tiny_model: Path) -> None:
    # The RGB output of 12 megapixels takes 48 MB inside Pillow; converting the whole photo
    # to float L*a*b* at once would add about 1 GB.
    run = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(tiny_model)], capture_output=True, text=True, check=True)
    extra_mb = int(run.stdout.strip().splitlines()[-1])
    assert extra_mb < 48 + 100, f"colorizing used {extra_mb} MB beyond the input"


def test_written_photos_get_the_permissions_of_a_plain_file(tmp_path):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    save_image(Image.new("RGB", (4, 4)), tmp_path / "out.png", fmt="png")
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o666 & ~mask


def test_the_bundled_default_model_loads_offline_and_adds_color_to_the_sample() -> None:
    from colorgan.colorizer import Colorizer

    sample = Path(colorgan.__file__).parent / "assets" / "samples" / "camera.jpg"
    colorizer = Colorizer.from_pretrained()
    out = colorizer.colorize(sample)
    assert out.size == Image.open(sample).size
    assert not is_gray(np.asarray(out.convert("RGB")))


def test_a_model_with_nan_weights_is_a_user_error(tmp_path) -> None:
    generator = build_generator("unet", base_channels=8, num_downs=5)
    with torch.no_grad():
        next(generator.parameters())[0] = float("nan")
    save_pretrained(generator, tmp_path / "diverged", size=64)
    with pytest.raises(UserError, match="NaN or infinite weights"):
        Colorizer.from_pretrained(tmp_path / "diverged")


def test_float_and_32_bit_tiffs_keep_their_picture(tmp_path: Path, gray_gradient) -> None:
    """NaN or inf pixels do not blacken the photo, and values past 16 bits are not clipped to white."""
    reference = read_photo(gray_gradient(60, 40)).luminance()
    base = gray_gradient(60, 40).astype(np.float64) / 255.0
    with_holes = base.astype(np.float32)
    with_holes[0, :3] = [np.nan, np.inf, -np.inf]
    wide = (base * 4e6).astype(np.int32)  # 32-bit sensor counts far above 65535
    for name, array, mode in [("holes.tif", with_holes, "F"), ("wide.tif", wide, "I")]:
        Image.fromarray(array, mode).save(tmp_path / name)
        got = read_photo(tmp_path / name).luminance()
        assert np.abs(got[1:] - reference[1:]).max() < 1.0, name  # the same picture (to within 8-bit rounding)
    empty = np.full((8, 8), np.nan, dtype=np.float32)
    Image.fromarray(empty, "F").save(tmp_path / "nan.tif")
    with pytest.raises(PhotoError, match="no pixel has a finite value"):
        read_photo(tmp_path / "nan.tif")
