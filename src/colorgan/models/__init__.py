"""Generators (behind a registry, each declaring its interface), the PatchGAN discriminator and
the model artifact (model.safetensors + model.json)."""

from . import resunet, unet  # noqa: F401  (importing registers the generators)
from .artifact import (
    CONFIG_NAME,
    DEFAULT_MODEL,
    MODELS_DIR,
    WEIGHTS_NAME,
    bundled_models,
    load_pretrained,
    load_state_dict_checked,
    read_model_json,
    read_weights,
    resolve_model,
    save_pretrained,
)
from .patchgan import D_NORMS, PatchGAN, load_critic, save_critic
from .registry import (
    GENERATORS,
    Generator,
    add_cond_channels,
    build_generator,
    complete_spec,
    generator_options,
    generator_spec,
    register_generator,
)
from .resunet import ENCODERS

__all__ = [
    "CONFIG_NAME",
    "D_NORMS",
    "DEFAULT_MODEL",
    "ENCODERS",
    "GENERATORS",
    "MODELS_DIR",
    "WEIGHTS_NAME",
    "Generator",
    "PatchGAN",
    "add_cond_channels",
    "build_generator",
    "bundled_models",
    "complete_spec",
    "generator_options",
    "generator_spec",
    "load_critic",
    "load_pretrained",
    "load_state_dict_checked",
    "read_model_json",
    "read_weights",
    "register_generator",
    "resolve_model",
    "save_critic",
    "save_pretrained",
]
