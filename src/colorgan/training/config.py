"""The training options: plain data, read from YAML with the CLI's key names, checked before any work starts."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from colorgan.errors import UserError, check_range

STAGES = ("pretrain", "gan")
# What makes a run the run it is: a resume may change how long it trains, never these.
IDENTITY = ("stage", "generator", "encoder", "size", "hints", "color_head")
PRECISIONS = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """Everything a training run depends on: plain data, readable from YAML with the CLI's key names."""

    stage: str = "gan"
    generator: str = "resunet"
    encoder: str = "efficientnet_lite0"
    encoder_weights: str | None = "imagenet"
    data: Path | None = None
    val: Path | None = None
    first: int | None = None
    last: int | None = None
    file_list: Path | None = None
    val_limit: int = 64
    size: int = 256
    batch_size: int = 16
    epochs: int = 20
    lr: float | None = None
    lambda_l1: float = 100.0
    lambda_perceptual: float = 0.0
    color_head: bool = False
    lambda_color: float = 1.0
    hints: bool = False
    cond_lr_scale: float = 10.0
    freeze_base: bool = False
    gan_mode: str = "vanilla"
    d_norm: str = "batch"
    fresh_critic: bool = False
    critic_warmup: int = 0
    min_colorfulness: float = 0.0
    target_saturation: float = 1.0
    degrade: float = 0.0
    balance: float = 0.0
    crop_scale: float | None = None
    ema: float | None = None
    max_minutes: float | None = None
    init_from: Path | None = None
    workers: int = 2
    seed: int = 0
    mixed_precision: str = "auto"
    out: Path = Path("runs/colorgan")
    resume: bool = False
    save_every: int = 500
    samples: int = 4

    @classmethod
    def from_sources(cls, *, yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Defaults, then the YAML file's keys, then ``overrides`` (the command-line flags)."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            values.update(_read_yaml(Path(yaml_path)))
        values.update(overrides or {})
        return cls._from_values(values, source=yaml_path)

    @classmethod
    def for_resume(cls, *, out: str | Path, yaml_path: str | Path | None = None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
        """The options of a resumed run: the run folder's ``config.yaml`` (written when it started),
        then ``yaml_path``'s keys, then ``overrides``. A change of the run's identity (:data:`IDENTITY`)
        is a :class:`UserError`; e.g. ``epochs`` and ``max_minutes`` may change."""
        saved_file = Path(out) / "config.yaml"
        requested = (_read_yaml(Path(yaml_path)) if yaml_path is not None else {}) | (overrides or {}) | {"out": Path(out)}
        if not saved_file.is_file() and requested.get("data") is None:
            raise UserError(f"--resume: {out} holds no run to continue (no config.yaml); start one without --resume")
        if not saved_file.is_file():  # a run killed before it started: --resume then says there is no checkpoint
            return cls.from_sources(yaml_path=yaml_path, overrides=requested)
        saved = _read_yaml(saved_file)
        changed = [k for k in IDENTITY if requested.get(k) is not None and k in saved and str(requested[k]) != str(saved[k])]
        if changed:
            asked = ", ".join(f"--{k.replace('_', '-')} {requested[k]} (the run has {saved[k]})" for k in changed)
            raise UserError(f"--resume cannot change what {out} trains: {asked}; drop the option, or start a new run with another --out")
        return cls._from_values(saved | requested, source=saved_file)

    @classmethod
    def _from_values(cls, values: dict[str, Any], *, source: str | Path | None) -> TrainConfig:
        yaml_path = source
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise UserError(f"unknown training option(s) {', '.join(unknown)} in {yaml_path or 'the options'}")
        if str(values.get("encoder_weights", "")).lower() in ("none", "null", "random"):
            values["encoder_weights"] = None
        hints = typing.get_type_hints(cls)
        return cls(**{key: _typed(key, value, hints[key], yaml_path) for key, value in values.items()})

    @property
    def gan(self) -> bool:
        """Whether this is stage 2 (a discriminator trains too)."""
        return self.stage == "gan"

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.stage == "pretrain" else 2e-4)

    @property
    def betas(self) -> tuple[float, float]:
        # pix2pix's (0.5, 0.999) steadies the adversarial game; plain L1 regression uses Adam's defaults.
        return (0.5, 0.999) if self.gan else (0.9, 0.999)

    def generator_kwargs(self) -> dict[str, Any]:
        """The training options that the chosen generator's constructor takes (e.g. ``encoder``;
        ``hints`` gives it the hint channels of :mod:`colorgan.hints`)."""
        from colorgan.networks import generator_options  # here, not at the top: ``colorgan train --help`` reads this module's defaults

        from colorgan.hints import HINT_CHANNELS

        return generator_options(self.generator, {"encoder": self.encoder, "cond_channels": HINT_CHANNELS if self.hints else 0,
                                                  "color_head": self.color_head})

    def validate(self) -> None:
        """Reject impossible settings before any work starts."""
        from colorgan.model.files import MAX_TRAINING_SIZE
        from colorgan.networks import D_NORMS, GENERATORS
        from colorgan.training.losses import GAN_MODES

        choices = [
            (self.stage in STAGES, f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}"),
            (self.generator in GENERATORS, f"unknown generator {self.generator!r}; choose one of: {', '.join(sorted(GENERATORS))}"),
            (self.gan_mode in GAN_MODES, f"--gan-mode must be one of {', '.join(GAN_MODES)}, got {self.gan_mode!r}"),
            (self.d_norm in D_NORMS, f"--d-norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}"),
            (self.mixed_precision in PRECISIONS, f"--mixed-precision must be one of {', '.join(PRECISIONS)}"),
            (self.data is not None, "--data is required: a folder of color photos"),
            (not self.freeze_base or ((self.hints or self.color_head) and self.init_from is not None),
             "--freeze-base trains only the layers a run adds to a model: it needs --init-from, and --hints or --color-head"),
            (not self.color_head or self.generator == "resunet", "--color-head is a layer of the resunet generator"),
            (self.gan or not self.critic_warmup, "--critic-warmup trains the critic of --stage gan; a pretrain run has none"),
        ]
        for ok, message in choices:
            if not ok:
                raise UserError(message)
        for name, value, bounds in [
            ("--size", self.size, {"low": 1, "high": MAX_TRAINING_SIZE}), ("--batch-size", self.batch_size, {"low": 1}),
            ("--epochs", self.epochs, {"low": 1}), ("--lr", self.learning_rate, {"above": 0}),
            ("--lambda-perceptual", self.lambda_perceptual, {"low": 0}), ("--lambda-color", self.lambda_color, {"low": 0}),
            ("--cond-lr-scale", self.cond_lr_scale, {"above": 0}), ("--workers", self.workers, {"low": 0}),
            ("--val-limit", self.val_limit, {"low": 1}), ("--samples", self.samples, {"low": 0}),
            ("--save-every", self.save_every, {"low": 0}), ("--balance", self.balance, {"low": 0, "high": 1}),
            ("--crop-scale", self.crop_scale, {"above": 0, "high": 1}), ("--ema", self.ema, {"above": 0, "below": 1}),
            ("--max-minutes", self.max_minutes, {"above": 0}), ("--critic-warmup", self.critic_warmup, {"low": 0}),
            ("--min-colorfulness", self.min_colorfulness, {"low": 0}), ("--degrade", self.degrade, {"low": 0, "high": 1}), ("--target-saturation", self.target_saturation, {"above": 0, "high": 2}),
        ]:
            if value is not None:
                check_range(name, value, **bounds)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def _typed(key: str, value: Any, kind: Any, source: str | Path | None) -> Any:
    """``value`` as the option's declared type, or a :class:`UserError` naming the option.

    YAML reads ``1e-4`` and ``1.5e9`` (no dot) as strings, so numbers written as strings are
    read as numbers; a whole-number option takes only a whole number.
    """
    kinds = set(typing.get_args(kind)) if isinstance(kind, types.UnionType) else {kind}
    if value is None and type(None) in kinds:
        return None
    flag = f"--{key.replace('_', '-')}"
    where = f" (in {source})" if source else ""
    if Path in kinds and isinstance(value, str | Path):
        return Path(value)
    if bool in kinds:
        if isinstance(value, bool):
            return value
        raise UserError(f"{flag} must be true or false, got {value!r}{where}")
    if int in kinds or float in kinds:
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, int | float) or math.isnan(number):
            raise UserError(f"{flag} must be a number, got {value!r}{where}")
        if int in kinds and float not in kinds:
            if not math.isfinite(number) or number != int(number):
                raise UserError(f"{flag} must be a whole number, got {value!r}{where}")
            return int(number)
        return float(number)
    if str in kinds and isinstance(value, str):
        return value
    raise UserError(f"{flag} must be a single value, got {value!r}{where}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except RecursionError:
        raise UserError(f"cannot read config {path}: it is nested too deeply to be a colorgan config") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UserError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in content.items()}
