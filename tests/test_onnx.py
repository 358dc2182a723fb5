"""ONNX export and the onnxruntime backend: same colors as PyTorch, self-describing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from colorgan import Colorizer
from colorgan.cli import app
from colorgan.errors import UserError
from colorgan.export import OPSET, export_onnx
from colorgan.models import build_generator, save_pretrained


@pytest.fixture(scope="module")
def resunet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real resunet (EfficientNet-Lite0 encoder, random weights) saved at 64 px, and its ONNX export."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("resunet")
    weights = save_pretrained(build_generator("resunet"), folder, size=64)
    return weights, export_onnx(weights, folder / "model.onnx")


def test_onnx_and_torch_predict_the_same_ab(resunet: tuple[Path, Path]) -> None:
    weights, exported = resunet
    eager = Colorizer.from_pretrained(weights, device="cpu")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    for batch, size in [(3, 64), (1, 96)]:  # batch and size are both dynamic
        l_norm = torch.rand(batch, 1, size, size) * 2 - 1
        expected, got = eager.predict_ab(l_norm), runtime.predict_ab(l_norm)
        assert got.shape == (batch, 2, size, size)
        assert (got - expected).abs().max() <= 1e-3


def test_exported_file_describes_itself(resunet: tuple[Path, Path]) -> None:
    _, exported = resunet
    proto = onnx.load(str(exported))
    assert proto.opset_import[0].version == OPSET >= 17
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    assert (runtime.size, runtime.size_multiple, runtime.meta["generator"]) == (64, 32, "resunet")
    with pytest.raises(UserError, match="positive multiple of 32"):
        runtime.check_size(80)
    with pytest.raises(UserError, match="no PyTorch weights"):
        runtime.save_pretrained(exported.parent / "copy")


def test_cli_export_then_colorize_with_the_onnx_backend(tiny_model: Path, gray_gradient, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["export", "onnx", "--model", str(tiny_model), "--out", str(tmp_path / "tiny.onnx")])
    assert result.exit_code == 0, result.output
    Image.fromarray(gray_gradient(50, 30)).save(tmp_path / "in.png")
    for backend, model in [("onnx", tmp_path / "tiny.onnx"), ("torch", tiny_model)]:
        args = ["colorize", str(tmp_path / "in.png"), "-o", str(tmp_path / f"{backend}.png"), "--backend", backend, "--model", str(model)]
        assert runner.invoke(app, args).exit_code == 0
    onnx_out, torch_out = (np.asarray(Image.open(tmp_path / f"{b}.png")).astype(int) for b in ("onnx", "torch"))
    assert onnx_out.shape == (30, 50, 3) and np.abs(onnx_out - torch_out).max() <= 1


def test_a_safetensors_model_runs_on_onnx_without_a_separate_export(tiny_model: Path) -> None:
    l_norm = torch.rand(2, 1, 64, 64) * 2 - 1
    runtime = Colorizer.from_pretrained(tiny_model, backend="onnx")
    eager = Colorizer.from_pretrained(tiny_model, device="cpu")
    assert (runtime.predict_ab(l_norm) - eager.predict_ab(l_norm)).abs().max() <= 1e-3


def test_backend_mismatches_are_explained(resunet: tuple[Path, Path], tmp_path: Path) -> None:
    weights, exported = resunet
    with pytest.raises(UserError, match="onnx backend runs on the CPU"):
        Colorizer.from_pretrained(exported, backend="onnx", device="cuda")
    with pytest.raises(UserError, match="is an ONNX model: run it with --backend onnx"):
        Colorizer.from_pretrained(exported)
    with pytest.raises(UserError, match="--out must name a .onnx file"):
        export_onnx(weights, tmp_path / "model.bin")
    with pytest.raises(UserError, match="is already an ONNX model"):
        export_onnx(exported, tmp_path / "again.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load ONNX model"):
        Colorizer.from_pretrained(tmp_path / "junk.onnx", backend="onnx")


@pytest.mark.parametrize("name,config", [("unet", {"base_channels": 8, "num_downs": 5}), ("resunet", {"encoder": "resnet18"})])
def test_conditioning_channels_travel_through_the_onnx_export(tmp_path: Path, name: str, config: dict) -> None:
    torch.manual_seed(0)
    generator = build_generator(name, cond_channels=3, **config)
    for module in generator.modules():  # the resunet's per-stage hint paths start at zero: give them weights to carry
        if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.1)
    weights = save_pretrained(generator, tmp_path, size=32)
    exported = export_onnx(weights, tmp_path / "hinted.onnx")
    assert [i.name for i in onnx.load(str(exported)).graph.input] == ["l", "cond"]
    eager = Colorizer.from_pretrained(weights, device="cpu")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    assert eager.cond_channels == runtime.cond_channels == 3
    l_norm, cond = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32)
    assert (runtime.predict_ab(l_norm, cond) - eager.predict_ab(l_norm, cond)).abs().max() <= 1e-3
    assert (runtime.predict_ab(l_norm) - eager.predict_ab(l_norm, torch.zeros(2, 3, 32, 32))).abs().max() <= 1e-3
    with pytest.raises(UserError, match="conditioning must have shape"):
        runtime.predict_ab(l_norm, cond[:, :1])


def test_a_model_without_conditioning_refuses_it(resunet: tuple[Path, Path]) -> None:
    weights, exported = resunet
    for colorizer in (Colorizer.from_pretrained(weights, device="cpu"), Colorizer.from_pretrained(exported, backend="onnx")):
        assert colorizer.cond_channels == 0
        with pytest.raises(UserError, match="takes no conditioning"):
            colorizer.predict_ab(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))


def test_hints_give_the_same_colors_on_onnx_and_torch(tiny_hint_model: Path, gray_gradient, tmp_path: Path) -> None:
    from colorgan import Hint
    from colorgan.export import export_onnx

    exported = tmp_path / "hints.onnx"
    export_onnx(str(tiny_hint_model), exported)
    eager = Colorizer.from_pretrained(tiny_hint_model, device="cpu")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    assert runtime.takes_hints
    photo, hints = gray_gradient(96, 64), [Hint(x=0.3, y=0.4, color="#d03030"), Hint(x=70, y=50, color=(20, 160, 40))]
    for given in ([], hints):
        difference = np.abs(np.asarray(runtime.colorize(photo, hints=given)).astype(int) - np.asarray(eager.colorize(photo, hints=given)))
        assert difference.max() <= 1
