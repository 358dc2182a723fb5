"""The networks: generators behind a registry (each declaring its interface), the PatchGAN
discriminator (critic) and the color head's classification view of color.

A model on disk (its files, their PyTorch and ONNX forms) is :mod:`colorgan.model`.
"""

from colorgan.networks import resunet, unet  # noqa: F401  (importing registers the generators)
from colorgan.networks.patchgan import D_NORMS, PatchGAN, load_critic, save_critic
from colorgan.networks.registry import (
    GENERATORS,
    Generator,
    add_cond_channels,
    build_generator,
    complete_spec,
    generator_options,
    generator_spec,
    register_generator,
)
from colorgan.networks.resunet import ENCODERS

__all__ = [
    "D_NORMS",
    "ENCODERS",
    "GENERATORS",
    "Generator",
    "PatchGAN",
    "add_cond_channels",
    "build_generator",
    "complete_spec",
    "generator_options",
    "generator_spec",
    "load_critic",
    "register_generator",
    "save_critic",
]
