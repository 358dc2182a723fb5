"""The ``colorgan`` command: thin Typer wrappers around the library.

Every command turns a :class:`~colorgan.errors.UserError` into one ``error: ...`` line on
stderr and exit code 2; the work itself lives in the library modules.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from .errors import UserError

app = typer.Typer(
    name="colorgan",
    help="Colorize grayscale photos, and train and evaluate the models that do it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False, markup=False)],
        force=True,
    )


@app.callback()
def _root() -> None:
    """colorgan: conditional-GAN colorization in L*a*b* space."""


# --- train -----------------------------------------------------------------------------

@app.command()
def train(
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file with any of the keys below; flags override it.")] = None,
    stage: Annotated[Optional[str], typer.Option(help="pretrain (L1 only) or gan (adversarial + lambda*L1).")] = None,
    generator: Annotated[Optional[str], typer.Option(help="unet or resunet.")] = None,
    encoder: Annotated[Optional[str], typer.Option(help="resunet encoder: efficientnet_lite0 or resnet18.")] = None,
    encoder_weights: Annotated[Optional[str], typer.Option(help="imagenet, a weights file, or none for random init.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Folder of color photos (searched recursively).")] = None,
    val: Annotated[Optional[Path], typer.Option(help="Folder of validation photos.")] = None,
    first: Annotated[Optional[int], typer.Option(help="Use only the first N photos (sorted by path).")] = None,
    last: Annotated[Optional[int], typer.Option(help="Use only the last M photos (sorted by path).")] = None,
    file_list: Annotated[Optional[Path], typer.Option(help="Text file listing the photos to use, one path per line.")] = None,
    val_limit: Annotated[Optional[int], typer.Option(help="Score at most this many validation photos per epoch.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Training resolution (square).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Photos per step (per process).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Total epochs of this stage.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default 1e-4 pretrain, 2e-4 gan).")] = None,
    lambda_l1: Annotated[Optional[float], typer.Option("--lambda-l1", help="Weight of the L1 term.")] = None,
    gan_mode: Annotated[Optional[str], typer.Option(help="vanilla (BCE) or lsgan.")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Start the generator from this model (e.g. a pretrain run).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Data loader processes.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    mixed_precision: Annotated[Optional[str], typer.Option(help="auto, no, fp16 or bf16 (auto: bf16/fp16 on GPUs, no on CPU).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder, e.g. runs/NAME.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's last checkpoint.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    """Train a colorizer (stage pretrain or gan) on a folder of color photos."""
    from .train import TrainConfig, run_training

    _setup_logging(quiet)
    flags = {k: v for k, v in locals().items() if k not in ("config", "quiet") and v is not None}
    if not resume:
        flags.pop("resume")
    run_training(TrainConfig.from_sources(yaml_path=config, overrides=flags))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
