"""The pretext classifier: a colorization generator's encoder (same architecture, same L* input), global average pooling and a linear head."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorgan.errors import UserError
from colorgan.model.artifact import load_pretrained
from colorgan.model.files import read_model_json
from colorgan.networks import Generator, build_generator
from colorgan.networks.registry import init_normal


log = logging.getLogger(__name__)


class EncoderClassifier(nn.Module):
    """A colorization generator's encoder + global average pooling + a linear head; input: normalized L."""

    def __init__(self, generator: Generator, num_classes: int) -> None:
        super().__init__()
        self.encoder = generator.encoder  # shares the generator's parameters and state-dict keys
        self.head = nn.Linear(generator.encoder_channels, num_classes)
        self.size_multiple: int = generator.size_multiple

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        features = self.encoder(l)
        if isinstance(features, list | tuple):  # smp encoders return every scale; the last is the deepest
            features = features[-1]
        return self.head(features.mean(dim=(2, 3)))

def build_classifier(colorizer_meta: dict[str, Any], num_classes: int) -> EncoderClassifier:
    """A classifier with the colorizer's encoder architecture (from its model.json), every layer N(0, 0.02)."""
    try:
        generator = build_generator(colorizer_meta["generator"], **colorizer_meta.get("config", {}))
    except TypeError as exc:
        raise UserError(f"the colorizer's model.json has an invalid generator config: {exc}") from None
    model = EncoderClassifier(generator, num_classes)
    model.apply(init_normal)
    return model

def colorizer_encoder_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The encoder weights of a colorizer trained from scratch; rejects one whose encoder saw ImageNet weights.

    The provenance is model.json's ``training.encoder_weights``, which follows ``--init-from`` chains.
    """
    weights, meta = read_model_json(path)
    training = meta.get("training") or {}
    if "encoder_weights" not in training:
        raise UserError(f"colorizer {weights}: its model.json does not record where its encoder's weights came from; "
                        "the pretext experiment needs a colorizer trained from scratch: train one with --encoder-weights none")
    if training["encoder_weights"] is not None:
        raise UserError(f"colorizer {weights}: its encoder started from ImageNet weights ({training['encoder_weights']}); "
                        "the pretext experiment needs a colorizer trained from scratch: train one with --encoder-weights none")
    generator, _ = load_pretrained(weights)  # a model.json that does not fit its weights is a UserError here
    return generator.encoder.state_dict()
