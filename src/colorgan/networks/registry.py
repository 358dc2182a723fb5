"""Generators by name, the interface every generator declares, and pix2pix's weight init.

A generator is a :class:`Generator`: a keyword-only constructor whose arguments are captured
as ``config`` automatically (as diffusers' ``register_to_config`` does), so the artifact's
``model.json`` always holds every argument needed to rebuild it, and a declared interface
(input and output channels, size multiple, encoder) that training, export and the pretext
experiment read instead of switching on generator names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from colorgan.errors import UserError

GENERATORS: dict[str, type[Generator]] = {}


def _plain(value: Any) -> Any:
    """JSON-ready: tuples become lists (model.json stores what the constructor received)."""
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


class Generator(nn.Module):
    """Base of colorgan's generators: normalized L* (+ optional conditioning channels) in, ab out.

    Subclasses implement :meth:`predict` on the stacked input and set, in their constructor,
    ``size_multiple`` (input sides must be multiples of it). ``cond_channels`` extra input
    channels (for example color hints) are optional: with none, the network sees L* alone;
    with some, a missing condition means all zeros ("no hints"), so one model serves both.
    """

    registry_name: str = ""
    out_channels: int = 2
    size_multiple: int = 1
    #: Whether :meth:`load_encoder_weights` can start the encoder from ImageNet weights.
    has_pretrained_encoder: bool = False
    #: Submodules that exist only for the conditioning channels (zero-initialized, so a model
    #: without conditioning can be widened into this one: :func:`add_cond_channels`).
    cond_modules: tuple[str, ...] = ()
    #: Submodules of an optional head that reads the network's features (the color head): a model
    #: without one is given a fresh one to train (:func:`add_head_modules`).
    head_modules: tuple[str, ...] = ()
    #: Constructor arguments that only say how the published model answers (not its weights).
    inference_options: tuple[str, ...] = ()
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _capture_config(cls.__init__)

    def __init__(self, *, cond_channels: int = 0) -> None:
        super().__init__()
        if cond_channels < 0:
            raise UserError(f"cond_channels cannot be negative, got {cond_channels}")
        self.cond_channels = cond_channels

    @property
    def in_channels(self) -> int:
        """Channels the network itself takes: L* and the conditioning channels."""
        return 1 + self.cond_channels

    @property
    def encoder(self) -> nn.Module:
        """The down path (sharing this generator's parameters), for the pretext experiment."""
        raise UserError(f"the {self.registry_name} generator declares no encoder")

    @property
    def encoder_channels(self) -> int:
        """Channels of the encoder's deepest features."""
        raise UserError(f"the {self.registry_name} generator declares no encoder")

    def load_encoder_weights(self, weights: str) -> None:
        """Start the encoder from pretrained weights (only where ``has_pretrained_encoder``)."""
        raise UserError(f"the {self.registry_name} generator has no pretrained encoder to load {weights} into")

    def forward(self, l: torch.Tensor, cond: torch.Tensor | None = None,
                with_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """Normalized L* (B, 1, H, W) and optional conditioning (B, cond_channels, H, W) -> ab (B, 2, H, W);
        ``with_logits`` (training): the regression answer and the color head's logits instead."""
        x = self.stacked(l, cond)
        return self.predict_with_logits(x) if with_logits else self.predict(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The network on its stacked input (B, in_channels, H, W)."""
        raise NotImplementedError

    def predict_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The regression answer and a color head's logits (None for a generator without one); for training."""
        return self.predict(x), None

    def stacked(self, l: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The network's input: L* and the conditioning channels (zeros: none given), checked."""
        h, w = l.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(
                f"the {self.registry_name} generator needs height and width that are multiples of "
                f"{self.size_multiple}, got {h}x{w}"
            )
        if cond is not None and cond.shape[1] != self.cond_channels:
            raise ValueError(f"the {self.registry_name} generator takes {self.cond_channels} conditioning channels, got {cond.shape[1]}")
        if self.cond_channels:
            cond = cond if cond is not None else l.new_zeros(l.shape[0], self.cond_channels, h, w)
            l = torch.cat([l, cond.to(l.dtype)], dim=1)
        return l


def _capture_config(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a constructor so ``self.config`` holds all its keyword arguments, defaults included.

    Only the outermost constructor of an instance records: a subclass calling its parent's
    ``__init__`` keeps its own arguments as the config.
    """
    signature = inspect.signature(init)
    positional = [p.name for p in list(signature.parameters.values())[1:] if p.kind is not p.KEYWORD_ONLY and p.kind is not p.VAR_KEYWORD]
    if positional:
        raise TypeError(f"{init.__qualname__}: generator constructors take keyword-only arguments, not {positional}")

    @functools.wraps(init)
    def wrapped(self: Generator, **kwargs: Any) -> None:
        outermost = "_recording_config" not in self.__dict__
        if outermost:
            object.__setattr__(self, "_recording_config", True)
        try:
            init(self, **kwargs)
            if outermost:
                bound = signature.bind(self, **kwargs)
                bound.apply_defaults()
                object.__setattr__(self, "config", {k: _plain(v) for k, v in list(bound.arguments.items())[1:]})
        finally:
            if outermost:
                object.__delattr__(self, "_recording_config")

    return wrapped


def register_generator(name: str) -> Callable[[type[Generator]], type[Generator]]:
    """Class decorator: make a :class:`Generator` buildable by ``name`` from plain keyword arguments."""

    def add(cls: type[Generator]) -> type[Generator]:
        if not issubclass(cls, Generator):
            raise TypeError(f"{cls.__name__} must subclass colorgan.networks.Generator")
        GENERATORS[name] = cls
        cls.registry_name = name
        return cls

    return add


def build_generator(name: str, **config: Any) -> Generator:
    """A freshly initialized generator; ``config`` is its keyword-only constructor arguments."""
    if name not in GENERATORS:
        raise UserError(f"unknown generator {name!r}; choose one of: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name](**config)


def generator_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` (for example training flags) that ``name``'s constructor takes."""
    if name not in GENERATORS:
        raise UserError(f"unknown generator {name!r}; choose one of: {', '.join(sorted(GENERATORS))}")
    accepted = inspect.signature(GENERATORS[name]).parameters
    return {k: v for k, v in options.items() if k in accepted}


def generator_spec(generator: Generator) -> dict[str, Any]:
    """The plain-data description that rebuilds ``generator``'s architecture."""
    return {"generator": generator.registry_name, "config": dict(generator.config)}


def complete_spec(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """:func:`generator_spec` of the generator ``name`` with ``config`` would have, without building
    it: arguments left out (as by model.json files older than an argument) take their defaults."""
    if name not in GENERATORS:
        raise UserError(f"unknown generator {name!r}; choose one of: {', '.join(sorted(GENERATORS))}")
    try:
        bound = inspect.signature(GENERATORS[name]).bind(**config)
    except TypeError as exc:
        raise UserError(f"invalid {name} generator config: {exc}") from None
    bound.apply_defaults()
    return {"generator": name, "config": {k: _plain(v) for k, v in bound.arguments.items()}}


def add_cond_channels(state: dict[str, torch.Tensor], generator: Generator, *, source: str) -> dict[str, torch.Tensor]:
    """The weights ``state`` of ``generator``'s architecture with fewer conditioning channels,
    made to fit it: each input kernel gets zero kernels for the new channels, and the
    generator's conditioning-only modules (:attr:`Generator.cond_modules`) keep their initial
    (zero) weights, so the widened network computes exactly what the original did (how a
    hint-capable model starts from an automatic one). Tensors that differ otherwise are left
    for the load to refuse."""
    own = generator.state_dict()
    state = state | {k: v for k, v in own.items() if k.split(".")[0] in generator.cond_modules and k not in state}
    widened, changed = dict(state), 0
    for key, tensor in state.items():
        mine = own.get(key)
        if (mine is not None and tensor.dim() == mine.dim() >= 2 and tensor.shape[0] == mine.shape[0]
                and tensor.shape[2:] == mine.shape[2:] and 0 < tensor.shape[1] < mine.shape[1]):
            extra = tensor.new_zeros(tensor.shape[0], mine.shape[1] - tensor.shape[1], *tensor.shape[2:])
            widened[key] = torch.cat([tensor, extra], dim=1)
            changed += 1
    if not changed:
        raise UserError(f"{source} has no input kernel to widen for {generator.cond_channels} conditioning channels")
    return widened


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """pix2pix init: conv weights N(0, std), BatchNorm gamma N(1, std), biases 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)
