"""ONNX export and the onnxruntime backend: same colors as PyTorch, self-describing files kept in step with the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from colorgan import Colorizer
from colorgan.commands import app
from colorgan.errors import UserError
from colorgan.model.export import OPSET, export_onnx
from colorgan.model.artifact import save_pretrained
from colorgan.networks import build_generator


@pytest.fixture(scope="module")
def resunet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real resunet (EfficientNet-Lite0 encoder, random weights) saved at 64 px, and its ONNX export."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("resunet")
    weights = save_pretrained(build_generator("resunet"), folder, size=64)
    return weights, export_onnx(weights, folder / "model.onnx")


def random_l(batch: int, size: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((batch, 1, size, size)) * 2 - 1).astype(np.float32)


def test_onnx_and_torch_predict_the_same_ab(resunet: tuple[Path, Path]) -> None:
    weights, exported = resunet
    eager = Colorizer.from_pretrained(weights, device="cpu", backend="torch")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    for batch, size in [(3, 64), (1, 96)]:  # batch and size are both dynamic
        l_norm = random_l(batch, size)
        expected, got = eager.predict_ab(l_norm), runtime.predict_ab(l_norm)
        assert got.shape == (batch, 2, size, size)
        assert np.abs(got - expected).max() <= 1e-3


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
    saved = runtime.save_pretrained(exported.parent / "copy")  # a model loaded from an .onnx file saves that file
    assert saved.name == "model.onnx" and saved.read_bytes() == exported.read_bytes()


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
    l_norm = random_l(2, 64)
    runtime = Colorizer.from_pretrained(tiny_model, backend="onnx")
    eager = Colorizer.from_pretrained(tiny_model, device="cpu")
    assert np.abs(runtime.predict_ab(l_norm) - eager.predict_ab(l_norm)).max() <= 1e-3


def test_backend_mismatches_are_explained(resunet: tuple[Path, Path], tmp_path: Path) -> None:
    weights, exported = resunet
    with pytest.raises(UserError, match="onnx backend runs on the CPU"):
        Colorizer.from_pretrained(exported, backend="onnx", device="cuda")
    with pytest.raises(UserError, match="is an ONNX model: run it with --backend onnx"):
        Colorizer.from_pretrained(exported, backend="torch")
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
    eager = Colorizer.from_pretrained(weights, device="cpu", backend="torch")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    assert eager.cond_channels == runtime.cond_channels == 3
    l_norm, cond = random_l(2, 32), np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32)
    assert np.abs(runtime.predict_ab(l_norm, cond) - eager.predict_ab(l_norm, cond)).max() <= 1e-3
    assert np.abs(runtime.predict_ab(l_norm) - eager.predict_ab(l_norm, np.zeros((2, 3, 32, 32), np.float32))).max() <= 1e-3
    with pytest.raises(UserError, match="conditioning must have shape"):
        runtime.predict_ab(l_norm, cond[:, :1])


def test_a_model_without_conditioning_refuses_it(resunet: tuple[Path, Path]) -> None:
    weights, exported = resunet
    for colorizer in (Colorizer.from_pretrained(weights, device="cpu", backend="torch"), Colorizer.from_pretrained(exported, backend="onnx")):
        assert colorizer.cond_channels == 0
        with pytest.raises(UserError, match="takes no conditioning"):
            colorizer.predict_ab(np.zeros((1, 1, 64, 64), np.float32), np.zeros((1, 1, 64, 64), np.float32))


def test_hints_give_the_same_colors_on_onnx_and_torch(tiny_hint_model: Path, gray_gradient, tmp_path: Path) -> None:
    from colorgan import Hint
    from colorgan.model.export import export_onnx

    exported = tmp_path / "hints.onnx"
    export_onnx(str(tiny_hint_model), exported)
    eager = Colorizer.from_pretrained(tiny_hint_model, device="cpu")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    assert runtime.takes_hints
    photo, hints = gray_gradient(96, 64), [Hint(x=0.3, y=0.4, color="#d03030"), Hint(x=70, y=50, color=(20, 160, 40))]
    for given in ([], hints):
        difference = np.abs(np.asarray(runtime.colorize(photo, hints=given)).astype(int) - np.asarray(eager.colorize(photo, hints=given)))
        assert difference.max() <= 1


# --- model.onnx beside the weights: what the base install runs ---------------------------------


def _backend(colorizer: Colorizer) -> str:
    from colorgan.model.onnx import OnnxModel

    return "onnx" if isinstance(colorizer._predict, OnnxModel) else "torch"


def test_a_model_folder_with_its_onnx_export_runs_on_onnx_runtime_and_a_stale_one_is_ignored(
        tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model.parent, folder)
    assert _backend(Colorizer.from_pretrained(folder)) == "torch"  # no model.onnx yet
    assert export_onnx(folder) == folder / "model.onnx"  # no out: beside the weights
    assert _backend(Colorizer.from_pretrained(folder)) == "onnx"
    assert _backend(Colorizer.from_pretrained(folder, backend="torch")) == "torch"
    with torch.no_grad():  # new weights (as a continued training run would publish): the export is stale now
        generator = build_generator("unet", base_channels=8, num_downs=6)
    save_pretrained(generator, folder, size=64)
    assert _backend(Colorizer.from_pretrained(folder)) == "torch"
    assert "was not exported from" in caplog.text and "colorgan export onnx" in caplog.text


def test_export_bundle_makes_a_model_folder_whose_two_forms_agree(tiny_model: Path, color_wheel, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "bundle", str(tiny_model.parent), str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["model.json", "model.onnx", "model.safetensors"]
    photo = color_wheel(70, 50)  # RGB: the stripes take its L* from its RGB pixels
    via_onnx = Colorizer.from_pretrained(tmp_path / "bundle")
    via_torch = Colorizer.from_pretrained(tmp_path / "bundle", backend="torch")
    assert (_backend(via_onnx), _backend(via_torch)) == ("onnx", "torch")
    assert np.abs(np.asarray(via_onnx.colorize(photo)).astype(int) - np.asarray(via_torch.colorize(photo))).max() <= 1


def test_the_bundled_default_ships_an_up_to_date_onnx_export_that_matches_its_weights() -> None:
    from colorgan.model.files import DEFAULT_MODEL, MODELS_DIR, weights_sha256
    from colorgan.model.onnx import OnnxModel

    folder = MODELS_DIR / DEFAULT_MODEL
    assert OnnxModel.load(folder / "model.onnx").weights_sha256 == weights_sha256(folder / "model.safetensors")
    runtime, eager = Colorizer.from_pretrained(), Colorizer.from_pretrained(backend="torch", device="cpu")
    assert _backend(runtime) == "onnx"
    l_norm, cond = random_l(1, 128), np.zeros((1, 3, 128, 128), np.float32)
    cond[:, :, 40:43, 60:63] = [[[12.0]], [[-9.0]], [[30.0]]]
    assert np.abs(runtime.predict_ab(l_norm) - eager.predict_ab(l_norm)).max() <= 1e-4
    assert np.abs(runtime.predict_ab(l_norm, cond) - eager.predict_ab(l_norm, cond)).max() <= 1e-4


def test_export_bundle_never_overwrites_what_is_not_a_model(tiny_model: Path, tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "model.safetensors").write_bytes(b"precious")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    for target, match in [(precious, "holds no model"), (a_file, "is a file")]:
        result = CliRunner().invoke(app, ["export", "bundle", str(tiny_model.parent), str(target)])
        assert result.exit_code != 0 and isinstance(result.exception, UserError) and match in str(result.exception)
    assert (precious / "model.safetensors").read_bytes() == b"precious" and a_file.read_text() == "keep"


def test_export_bundle_takes_weights_of_any_name(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_model, run / "best.safetensors")
    shutil.copy(tiny_model.with_name("model.json"), run / "model.json")
    result = CliRunner().invoke(app, ["export", "bundle", str(run / "best.safetensors"), str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bundle" / "model.safetensors").read_bytes() == tiny_model.read_bytes()


def test_a_foreign_or_damaged_onnx_file_is_refused_in_one_line(tmp_path: Path) -> None:
    import json

    from colorgan.model.onnx import META_KEY

    proto = onnx.load(str(Path(__import__("colorgan").__file__).parent / "assets/models/default/model.onnx"))
    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == META_KEY))
    for name, value in [("other_norm.onnx", json.dumps(meta | {"color": {"space": "YUV"}})), ("damaged.onnx", "{not json")]:
        next(p for p in proto.metadata_props if p.key == META_KEY).value = value
        onnx.save(proto, str(tmp_path / name))
        with pytest.raises(UserError, match=name):
            Colorizer.from_pretrained(tmp_path / name)


def test_an_onnx_model_of_the_wrong_input_shape_is_refused_in_one_line(tiny_model: Path, tmp_path: Path, cli, gray_gradient) -> None:
    from PIL import Image

    from colorgan.model.export import export_onnx

    out = export_onnx(tiny_model, tmp_path / "three.onnx")
    proto = onnx.load(str(out))
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3  # an RGB colorizer's input, say
    onnx.save(proto, str(out))
    photo = tmp_path / "a.png"
    Image.fromarray(gray_gradient(40, 30)).save(photo)
    code, _, err = cli("colorize", photo, "--model", out, "-o", tmp_path / "out.png")
    assert code == 2 and err.count("\n") == 1 and "does not take normalized L* (B, 1, H, W)" in err


def test_a_color_head_shapes_the_colors_the_same_on_onnx_runtime(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = build_generator("resunet", encoder="resnet18", color_head=True, chroma_gamma=1.0, annealed_blend=0.25)
    weights = save_pretrained(generator, tmp_path, size=64)
    exported = export_onnx(weights, tmp_path / "head.onnx")
    eager = Colorizer.from_pretrained(weights, device="cpu", backend="torch")
    runtime = Colorizer.from_pretrained(exported, backend="onnx")
    l_norm = random_l(2, 64)
    assert np.abs(runtime.predict_ab(l_norm) - eager.predict_ab(l_norm)).max() <= 1e-3


# --- int8 ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def int8_folder(resunet: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The resunet's folder with a model.int8.onnx beside its model.onnx, calibrated on a few gray ramps."""
    import shutil

    from colorgan.model.quantize import export_int8

    folder = tmp_path_factory.mktemp("int8")
    for name in ("model.safetensors", "model.json", "model.onnx"):
        shutil.copy(resunet[0].parent / name, folder / name)
    photos = tmp_path_factory.mktemp("calibration")
    for i in range(4):
        Image.fromarray(np.add.outer(np.arange(80) * (i + 1), np.arange(96)).astype(np.uint8)).save(photos / f"{i}.png")
    assert export_int8(folder, photos, photos=3) == folder / "model.int8.onnx"
    return folder


def test_export_int8_writes_an_int8_model_beside_the_fp32_one(int8_folder: Path) -> None:
    from colorgan.model.onnx import OnnxModel

    int8, fp32 = OnnxModel.load(int8_folder / "model.int8.onnx"), OnnxModel.load(int8_folder / "model.onnx")
    assert (int8.precision, fp32.precision) == ("int8", "fp32")
    assert int8.meta == fp32.meta and int8.weights_sha256 == fp32.weights_sha256  # in step with the same weights
    ops = {node.op_type for node in onnx.load(str(int8_folder / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    l_norm = random_l(1, 64)
    assert int8(l_norm).shape == fp32(l_norm).shape and np.isfinite(int8(l_norm)).all()


@pytest.mark.parametrize(("precision", "pays", "expected"), [
    ("int8", False, "int8"), ("fp32", True, "fp32"), ("auto", True, "int8"), ("auto", False, "fp32")])
def test_precision_picks_the_folders_int8_model_where_asked_or_where_it_pays(
        int8_folder: Path, precision: str, pays: bool, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from colorgan.model import backends

    monkeypatch.setattr(backends, "int8_pays", lambda: pays)
    assert Colorizer.from_pretrained(int8_folder, precision=precision)._predict.precision == expected


@pytest.mark.parametrize(("model", "options", "message"), [
    ("folder", {"precision": "int8"}, "has no up-to-date model.int8.onnx; `colorgan export int8 --model"),
    ("int8", {"precision": "int8", "backend": "torch"}, "--precision int8 runs a model.int8.onnx on ONNX Runtime"),
    ("int8_file", {"precision": "fp32"}, "is a int8 model, not fp32"),
    ("folder", {"precision": "fp16"}, "unknown precision 'fp16'; choose one of: auto, fp32, int8"),
])
def test_precision_mismatches_are_refused_in_one_line(int8_folder: Path, resunet: tuple[Path, Path], model: str,
                                                      options: dict, message: str) -> None:
    path = {"folder": resunet[0].parent, "int8": int8_folder, "int8_file": int8_folder / "model.int8.onnx"}[model]
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Colorizer.from_pretrained(path, **options)


def test_export_int8_refuses_a_generator_it_has_no_recipe_for(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from colorgan.model.quantize import export_int8

    folder = tmp_path / "unet"
    shutil.copytree(tiny_model.parent, folder)
    export_onnx(folder)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "photo.png")
    with pytest.raises(UserError, match="has no decoder the int8 recipe knows"):
        export_int8(folder, tmp_path, photos=1)
