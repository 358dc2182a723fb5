"""colorgan.render: the model's input and the full-size result, for any aspect ratio.

Memory beyond the input and output pixels must be bounded by the stripe and the render size,
never by width × render size (a 1,000,000 × 1 PNG of 1 KB once asked for 8 GB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorgan import render
from colorgan.color import AB_SCALE, lab_to_srgb8
from colorgan.photo import read_photo


@pytest.mark.parametrize(
    ("width", "height", "stripe_rows"),
    [
        (70, 45, 4),  # wider than the ab
        (5, 300, 7),  # narrower than the ab
        (300, 3, 1),  # a long strip, one row per stripe
        (8, 8, 3),  # exactly the ab's size
    ],
)
@pytest.mark.parametrize("columns_first", [True, False], ids=["columns-first", "per-stripe"])
def test_stripes_match_one_bilinear_upsampling_for_any_aspect_ratio(width, height, stripe_rows, columns_first, monkeypatch) -> None:
    pixels = (np.add.outer(np.arange(height) * 7, np.arange(width) * 3) % 256).astype(np.uint8)
    photo = read_photo(pixels)
    ab_norm = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.6
    monkeypatch.setattr(render, "STRIPE_PIXELS", width * stripe_rows)
    monkeypatch.setattr(render, "COLUMNS_FIRST_MAX", 1 << 22 if columns_first else 0)
    striped = np.asarray(render.recombine(photo, ab_norm.numpy())).astype(int)
    # torch's bilinear upsampling is the reference for the NumPy one
    ab = F.interpolate(ab_norm[None] * AB_SCALE, size=(height, width), mode="bilinear", align_corners=False)[0]
    whole = lab_to_srgb8(photo.luminance(), ab.numpy()).astype(int)
    assert striped.shape == (height, width, 3)
    assert np.abs(striped - whole).max() <= 1 and (striped != whole).mean() < 0.01


# --- memory for extreme aspect ratios --------------------------------------------------------

_EXTREME_SCRIPT = """
import json, re, sys
import numpy as np
from colorgan import Colorizer

def mb(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024

colorizer = Colorizer.from_pretrained(sys.argv[1], device="cpu")
extra = {}
for size in (256, 512):
    colorizer.colorize(np.zeros((size, size), np.uint8), size=size)  # the model's own memory at this size
    for shape in ((1, 200_000), (200_000, 1), (1, 200_000, 3), (200_000, 1, 3)):
        pixels = np.full(shape, 128, np.uint8)
        open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark (Linux >= 4.0)
        before = mb("VmRSS")
        out = colorizer.colorize(pixels, size=size)
        assert out.size == (shape[1], shape[0]), out.size
        extra[f"{shape[1]}x{shape[0]}{'_rgb' if len(shape) == 3 else ''}@{size}"] = mb("VmHWM") - before
        del out
print(json.dumps(extra))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resets and reads the peak RSS through Linux's /proc")
def test_memory_is_bounded_for_extreme_aspect_ratios(tiny_model: Path) -> None:
    # 200,000 × 1 at 512 once took 2 × 512 × 200,000 floats (820 MB) for the ab alone. The
    # tall cases guard the model's input: a resize through a size × 200,000 image would show.
    run = subprocess.run([sys.executable, "-c", _EXTREME_SCRIPT, str(tiny_model)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    extra = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(extra) == 8
    too_much = {case: mb for case, mb in extra.items() if mb >= 100}
    assert not too_much, f"MB beyond the model's own memory: {extra}"


def test_guided_upsampling_stops_colors_at_the_photos_own_edges():
    """A model answer that blurs a red object into a neutral floor: joined with the guide, the
    full-size photo's floor stays neutral next to the edge, where bilinear paints it pink."""
    from colorgan.evaluation.metrics import edge_ab_error

    s, scale = 32, 8
    w = s * scale
    l = np.where(np.arange(w) < w * 3 // 8 + 3, 40.0, 75.0)[None].repeat(w, 0)  # an edge off the model's grid
    truth_ab = np.zeros((2, w, w), np.float32)
    truth_ab[0][l < 50] = 50.0
    truth = lab_to_srgb8(l, truth_ab)
    gray = read_photo(lab_to_srgb8(l, np.zeros_like(truth_ab)))
    guide = render.model_input(gray, s)
    step = np.where(np.arange(s) < s * 3 // 8, 50.0, 0.0)
    blurred = np.convolve(np.pad(step, 1, mode="edge"), np.ones(3) / 3, mode="valid")  # the model's soft edge
    ab = np.zeros((2, s, s), np.float32)
    ab[0] = np.clip(blurred, 0, None)[None] / AB_SCALE
    plain = np.asarray(render.recombine(gray, ab))
    guided = np.asarray(render.recombine(gray, ab, guide=guide))
    assert edge_ab_error(guided[None], truth[None])[0] < 0.6 * edge_ab_error(plain[None], truth[None])[0]
    far = slice(0, w // 4)  # far from the edge both agree with the model's colors
    assert np.abs(guided[:, far].astype(int) - plain[:, far]).max() <= 2
