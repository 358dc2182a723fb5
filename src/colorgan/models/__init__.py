"""Generators (behind a registry), the PatchGAN discriminator and the model artifact."""

from . import resunet, unet  # noqa: F401  (importing registers the generators)
from .patchgan import PatchGAN
from .registry import (
    CONFIG_NAME,
    GENERATORS,
    WEIGHTS_NAME,
    build_generator,
    generator_spec,
    load_pretrained,
    load_state_dict_checked,
    read_model_json,
    read_weights,
    save_pretrained,
)
from .resunet import ENCODERS, load_encoder_weights

__all__ = [
    "CONFIG_NAME",
    "ENCODERS",
    "GENERATORS",
    "PatchGAN",
    "WEIGHTS_NAME",
    "build_generator",
    "generator_spec",
    "load_encoder_weights",
    "load_pretrained",
    "load_state_dict_checked",
    "read_model_json",
    "read_weights",
    "save_pretrained",
]
