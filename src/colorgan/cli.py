"""The ``colorgan`` command: thin Typer wrappers around the library.

Every command turns a :class:`~colorgan.errors.UserError` into one ``error: ...`` line on
stderr and exit code 2; the work itself lives in the library modules.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

# OpenMP threads that sleep instead of spin while waiting: several times faster whenever other
# processes share the cores (a laptop, a server with other jobs), about the same on an idle one.
# Must be set before torch is first imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

try:  # typer 0.2x carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError

from colorgan import __version__
from colorgan.errors import UserError, extra_of_module, install_line, require_extra
from colorgan.training.config import TrainConfig
from colorgan.video.settings import DEFAULT_CRF, DEFAULT_SEGMENT_SECONDS, DEFAULT_STRENGTH, VideoSettings


def _flags_take_no_value() -> None:
    """Typer's rich help prints every option's type, so an on/off flag (``--quiet``, even ``--help``)
    reads ``<bool>`` as if it took a value; a flag gets no type column, as in click's plain help."""
    option = getattr(typer.core, "TyperOption", None)
    display = getattr(option, "display_type_rich", None)
    if display is None or getattr(display, "_colorgan", False):
        return

    def display_type_rich(self, ctx):  # typer's signature
        return None if getattr(self, "is_flag", False) else display(self, ctx)

    display_type_rich._colorgan = True
    option.display_type_rich = display_type_rich


_flags_take_no_value()

app = typer.Typer(
    name="colorgan",
    help="Colorize grayscale photos, and train and evaluate the models that do it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


# The options every command that runs a model shares, with one wording.
ModelOption = Annotated[Optional[str], typer.Option(
    help="A model.safetensors (model.json beside it), its folder, an exported .onnx, or a bundled model's name.",
    show_default="the bundled default")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
BackendOption = Annotated[str, typer.Option(help="auto (ONNX Runtime where the model has its model.onnx, as the bundled default does; else torch), onnx (ONNX Runtime on the CPU) or torch (needs the train extra).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")]
RENDER_SIZE_HELP = ("The render size: the resolution the model sees, up to 1024 (a multiple of 32 for the bundled "
                    "default). Its training size is usually best; larger ones over-saturate.")


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False, markup=False)],
        force=True,
    )


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"colorgan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print colorgan's version and exit.")] = False,
) -> None:
    """colorgan: conditional-GAN colorization in L*a*b* space."""


# --- train -----------------------------------------------------------------------------

# TrainConfig's defaults, for the help: the flags themselves default to None so that a --config file
# can set what a flag leaves out. (training/config.py imports no torch, so the help stays quick.)
TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not None}


def _train_default(name: str) -> str:
    return str(TRAIN_DEFAULTS[name])


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML file with any of the keys below; flags override it.")] = None,
    stage: Annotated[Optional[str], typer.Option(show_default=_train_default("stage"), help="pretrain (L1 only) or gan (adversarial + lambda*L1).")] = None,
    generator: Annotated[Optional[str], typer.Option(show_default=_train_default("generator"), help="unet or resunet.")] = None,
    encoder: Annotated[Optional[str], typer.Option(show_default=_train_default("encoder"), help="resunet encoder: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 (the encoders extra) or resnet18.")] = None,
    encoder_weights: Annotated[Optional[str], typer.Option(show_default=_train_default("encoder_weights"), help="imagenet, a weights file, or none for random init.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Folder of color photos (searched recursively).")] = None,
    val: Annotated[Optional[Path], typer.Option(help="Folder of validation photos.")] = None,
    first: Annotated[Optional[int], typer.Option(help="Use only the first N photos (sorted by path).")] = None,
    last: Annotated[Optional[int], typer.Option(help="Use only the last M photos (sorted by path).")] = None,
    file_list: Annotated[Optional[Path], typer.Option(help="Text file listing the photos to use, one path per line.")] = None,
    val_limit: Annotated[Optional[int], typer.Option(show_default=_train_default("val_limit"), help="Score at most this many validation photos per epoch.")] = None,
    size: Annotated[Optional[int], typer.Option(show_default=_train_default("size"), help="Training resolution (square).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(show_default=_train_default("batch_size"), help="Photos per step (per process).")] = None,
    epochs: Annotated[Optional[int], typer.Option(show_default=_train_default("epochs"), help="Total epochs of this stage.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.", show_default="1e-4 pretrain, 2e-4 gan")] = None,
    lambda_l1: Annotated[Optional[float], typer.Option("--lambda-l1", show_default=_train_default("lambda_l1"), help="Weight of the L1 term.")] = None,
    lambda_perceptual: Annotated[Optional[float], typer.Option("--lambda-perceptual", show_default=_train_default("lambda_perceptual"), help="Weight of a perceptual loss through a frozen ImageNet EfficientNet-Lite0 (0: none).")] = None,
    gan_mode: Annotated[Optional[str], typer.Option(show_default=_train_default("gan_mode"), help="vanilla (BCE) or lsgan.")] = None,
    d_norm: Annotated[Optional[str], typer.Option(show_default=_train_default("d_norm"), help="The PatchGAN's normalization: batch (pix2pix) or spectral.")] = None,
    color_head: Annotated[Optional[bool], typer.Option("--color-head/--no-color-head", show_default=_train_default("color_head"), help="Add a classification view of color (Zhang et al. 2016: rebalanced color bins), which tells where the model is unsure of a hue.")] = None,
    lambda_color: Annotated[Optional[float], typer.Option(show_default=_train_default("lambda_color"), help="Weight of the color head's cross-entropy.")] = None,
    fresh_critic: Annotated[Optional[bool], typer.Option("--fresh-critic/--no-fresh-critic", show_default=_train_default("fresh_critic"), help="In a gan run from --init-from: start a new PatchGAN instead of the critic saved beside that model (critic.safetensors).")] = None,
    critic_warmup: Annotated[Optional[int], typer.Option(metavar="STEPS", show_default=_train_default("critic_warmup"), help="Train only the critic for the first STEPS steps of a gan run, on the generator's outputs (DeOldify's NoGAN schedule).")] = None,
    min_colorfulness: Annotated[Optional[float], typer.Option(show_default=_train_default("min_colorfulness"), help="Leave out training photos whose colorfulness (as evaluate scores it) is below this, e.g. 15 (0: keep all).")] = None,
    target_saturation: Annotated[Optional[float], typer.Option(show_default=_train_default("target_saturation"), help="Scale the training targets' chroma by this factor, e.g. 1.2 (1: the photos' own).")] = None,
    degrade: Annotated[Optional[float], typer.Option(show_default=_train_default("degrade"), help="Damage this share of the training photos' lightness as old scans are (grain, blur, JPEG blocks, fading, dust, scratches); their colors stay clean.")] = None,
    hints: Annotated[Optional[bool], typer.Option("--hints/--no-hints", show_default=_train_default("hints"), help="Train a hint-capable model: simulated color hints as extra input channels (Zhang et al. 2017).")] = None,
    cond_lr_scale: Annotated[Optional[float], typer.Option(show_default=_train_default("cond_lr_scale"), help="Learning-rate multiplier of the layers that exist only for the hints (new, zero-initialized).")] = None,
    freeze_base: Annotated[Optional[bool], typer.Option("--freeze-base/--no-freeze-base", show_default=_train_default("freeze_base"), help="With --init-from: train only the color head (with --color-head), else only the hint layers (with --hints); the automatic colorization stays exactly the --init-from model's.")] = None,
    balance: Annotated[Optional[float], typer.Option(show_default=_train_default("balance"), help="Even out the data's top-level folders: 0 natural mix, 0.5 square-root, 1 equal.")] = None,
    crop_scale: Annotated[Optional[float], typer.Option(help="Random square crops of this fraction (up to all) of the short side.", show_default="whole photos")] = None,
    ema: Annotated[Optional[float], typer.Option(help="Publish an exponential moving average of the generator with this decay, e.g. 0.999.", show_default="no average")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes of training, checkpointed (--resume goes on).", show_default="no limit")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Start the generator from this model (e.g. a pretrain run).")] = None,
    workers: Annotated[Optional[int], typer.Option(show_default=_train_default("workers"), help="Data loader processes.")] = None,
    seed: Annotated[Optional[int], typer.Option(show_default=_train_default("seed"), help="Random seed.")] = None,
    mixed_precision: Annotated[Optional[str], typer.Option(show_default=_train_default("mixed_precision"), help="auto, no, fp16 or bf16 (auto: bf16/fp16 on GPUs, bf16 on CPUs with native bf16, else no).")] = None,
    out: Annotated[Optional[Path], typer.Option(show_default=_train_default("out"), help="Run folder, e.g. runs/NAME.")] = None,
    save_every: Annotated[Optional[int], typer.Option(show_default=_train_default("save_every"), help="Also checkpoint every N steps within an epoch (0: only at epoch ends).")] = None,
    samples: Annotated[Optional[int], typer.Option(show_default=_train_default("samples"), help="Validation photos drawn into each epoch's sample grid (0: none).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last intact checkpoint, with the options in its config.yaml (flags such as --epochs or --max-minutes override them).")] = False,
    quiet: QuietOption = False,
) -> None:
    """Train a colorizer (stage pretrain or gan) on a folder of color photos."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "quiet") and v is not None}
    if not resume:
        flags.pop("resume")
    require_extra("train", "colorgan train")
    from colorgan.training.config import TrainConfig
    from colorgan.training.loop import run_training

    _setup_logging(quiet)
    if resume:  # the run folder's config.yaml is the base: --resume --out RUN needs nothing else
        cfg = TrainConfig.for_resume(out=flags.pop("out", TrainConfig.out), yaml_path=config, overrides=flags)
    else:
        cfg = TrainConfig.from_sources(yaml_path=config, overrides=flags)
    run_training(cfg)


# --- evaluate --------------------------------------------------------------------------

@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Folder of color photos (searched recursively).")],
    model: ModelOption = None,
    baseline: Annotated[Optional[str], typer.Option(help="Score a trivial answer instead of a model: gray (the gray input itself).")] = None,
    size: Annotated[Optional[int], typer.Option(help=RENDER_SIZE_HELP, show_default="the model's training size")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N photos (sorted by path).")] = None,
    native: Annotated[bool, typer.Option("--native", help="Score at each photo's own size instead of 256x256.")] = False,
    fid: Annotated[bool, typer.Option("--fid", help="Also compute FID (needs the eval extra).")] = False,
    batch_size: Annotated[int, typer.Option(help="Photos colorized and scored at once.")] = 16,
    hints: Annotated[int, typer.Option("--hints", metavar="N", help="Guide a hint-capable model with this many hints of the true colors per photo, at random places fixed per photo (Zhang et al. 2017's measure).")] = 0,
    min_side: Annotated[Optional[int], typer.Option("--min-side", metavar="PX", help="Score only photos whose short side is at least this many pixels (with --native: color bleeding on big photos).")] = None,
    upsample: Annotated[Optional[str], typer.Option(help="How colors reach the full-size photo: bilinear, or guided (a guided filter by the photo's own L*).", show_default="bilinear")] = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
    out: Annotated[Optional[Path], typer.Option(help="Write the JSON report to this file.")] = None,
    per_image: Annotated[Optional[Path], typer.Option("--per-image", help="Write one CSV row of scores per photo.")] = None,
    save_grid: Annotated[Optional[Path], typer.Option("--save-grid", help="Write a PNG: gray | prediction | ground truth for a few photos.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Score a colorizer (or the gray baseline) against a folder of color photos: PSNR, SSIM, CF, ΔCF, AuC, FID."""
    from colorgan.evaluation import evaluate as ev
    from colorgan.files.atomic import write_report

    _setup_logging(quiet)
    result = ev.evaluate(ev.EvalSettings(data=data, model=model, baseline=baseline, size=size, limit=limit,
                                         native=native, fid=fid, batch_size=batch_size, device=device, backend=backend,
                                         hints=hints, min_side=min_side, upsample=upsample))
    if out is not None:
        write_report(out, result.report)
    if per_image is not None:
        ev.write_per_image_csv(result.per_image, per_image)
    if save_grid is not None:
        ev.save_grid(result.grid, save_grid)
    Console().print(ev.markdown_table(result.report), markup=False, highlight=False, soft_wrap=True)


# --- colorize ---------------------------------------------------------------------------

@app.command()
def colorize(
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Files, folders (recursive) and globs; none: the bundled sample photo.", show_default=False)] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder (mirrors the inputs' subfolders), or a file name for one input; with --engine ray also a storage URI (s3://, gs://, file://).", show_default="colorized")] = None,
    model: ModelOption = None,
    size: Annotated[Optional[int], typer.Option(help=RENDER_SIZE_HELP, show_default="the model's training size")] = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(help="Photos per model batch (each held in memory at full size).")] = 1,
    backend: BackendOption = "auto",
    fmt: Annotated[Optional[str], typer.Option("--format", help="One output format for every photo: png, jpg (or jpeg), webp or tif (or tiff); png and tif keep a 16-bit scan's 16 bits.", show_default="each input's own format if jpg, png, tif or webp, else png; or the -o file's suffix")] = None,
    quality: Annotated[Optional[int], typer.Option(help="JPEG/WebP quality, 1-100 (a lossless WebP input gets a lossless WebP).", show_default="95 jpg, 90 webp")] = None,
    keep_color: Annotated[bool, typer.Option("--keep-color", help="Colorize only gray and toned (one hue, as sepia) photos; leave photos in color untouched. The report says which rule each photo met.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist (default: skip them, so a killed run resumes).")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Write each file's outcome to this JSON file.")] = None,
    hint: Annotated[Optional[list[str]], typer.Option("--hint", metavar="X,Y,COLOR", help="Pin a color to a point of the one input photo (or the first frame of the one video): X,Y,COLOR with X, Y fractions of the width and height (or integer pixels) and a hex color, e.g. 0.41,0.62,#f2efe9. Repeatable.", show_default=False)] = None,
    hints_file: Annotated[Optional[Path], typer.Option("--hints", metavar="FILE", help="A JSON hint file (the web page's \"download hints\"): a list of {\"x\", \"y\", \"color\"} (and \"frame\", for a video).", show_default=False)] = None,
    temporal: Annotated[bool, typer.Option("--temporal/--no-temporal", help="Videos: keep colors stable from frame to frame along the optical flow (--no-temporal: each frame on its own).")] = True,
    strength: Annotated[float, typer.Option(help="Videos: how strongly colors carry from frame to frame where the motion is reliable, 0 to below 1.")] = DEFAULT_STRENGTH,
    video_codec: Annotated[Optional[str], typer.Option("--video-codec", help="Videos: the encoder, e.g. libx264, libx265, libvpx-vp9.", show_default="libx264 (mp4, mkv, mov, avi, ts), libvpx-vp9 (webm), mpeg2video (mpeg)")] = None,
    crf: Annotated[int, typer.Option(help="Videos: constant rate factor of the encoder (lower is better and bigger).")] = DEFAULT_CRF,
    segment_seconds: Annotated[float, typer.Option("--segment-seconds", help="Videos: seconds per resumable part (what a killed job redoes at most).")] = DEFAULT_SEGMENT_SECONDS,
    engine: Annotated[str, typer.Option(help="local: this process; ray: spread the photos over a Ray cluster (the cluster extra).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="--engine ray: the cluster (auto, or ray://host:10001).", show_default="a new local Ray instance")] = None,
    actors: Annotated[int, typer.Option(help="--engine ray: workers, each holding one model.")] = 1,
    gpus_per_actor: Annotated[float, typer.Option("--gpus-per-actor", help="--engine ray: the GPU share of each worker (0: CPU workers).")] = 0.0,
    verbose: Annotated[bool, typer.Option("--verbose", help="--engine ray: also show Ray's own log lines (hidden by default).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors: no progress bar, no summary line.")] = False,
) -> None:
    """Colorize black-and-white photos and videos at full resolution (exit 1 if any file or the report failed)."""
    from colorgan.colorize.job import SAMPLE, ColorizeJob
    from colorgan.colorize.outcomes import ReportNotWritten, count
    from colorgan.colorize.ray_engine import ray_options
    from colorgan.hints import parse_hint_option, read_hints_file

    _setup_logging(quiet)
    hints = (read_hints_file(hints_file) if hints_file is not None else []) + [parse_hint_option(h) for h in hint or []]
    job = ColorizeJob(
        inputs=inputs or [str(SAMPLE)], out=out, model=model, size=size, device=device, backend=backend,
        batch_size=batch_size, fmt=fmt, quality=quality, keep_color=keep_color, overwrite=overwrite, report=report,
        hints=hints, video=VideoSettings(temporal=temporal, strength=strength, codec=video_codec, crf=crf,
                                         segment_seconds=segment_seconds),
        ray=ray_options(engine, address=address, actors=actors, gpus_per_actor=gpus_per_actor, verbose=verbose),
    )
    report_error = None
    try:
        outcomes = job.run(err_console, progress=not quiet)
    except ReportNotWritten as exc:
        outcomes, report_error = exc.outcomes, exc
    counts = count(outcomes)
    if not quiet:
        where = outcomes[0].output if len(outcomes) == 1 else (out or "colorized")
        typer.echo(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed -> {where}")
    if report_error is not None:
        err_console.print(f"error: {report_error}", markup=False, highlight=False, soft_wrap=True)
    if counts["failed"] or report_error is not None:
        raise typer.Exit(1)


# --- export -----------------------------------------------------------------------------

export_app = typer.Typer(help="Export a model for other runtimes.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx(
    out: Annotated[Optional[Path], typer.Option(help="The .onnx file to write.", show_default="model.onnx beside the model's weights, where every command finds it")] = None,
    model: ModelOption = None,
    quiet: QuietOption = False,
) -> None:
    """Export a model to ONNX (dynamic batch and size), to run without PyTorch (needs the train extra)."""
    require_extra("train", "colorgan export")
    from colorgan.model.export import export_onnx as export

    _setup_logging(quiet)
    export(model, out)


@export_app.command("bundle")
def export_bundle(
    model: Annotated[str, typer.Argument(help="A run folder or its model.safetensors (model.json beside it).", show_default=False)],
    folder: Annotated[Path, typer.Argument(help="The model folder to write, e.g. src/colorgan/assets/models/default.", show_default=False)],
    quiet: QuietOption = False,
) -> None:
    """Make a complete model folder: the PyTorch weights, model.json and their ONNX export, in step (needs the train extra)."""
    require_extra("train", "colorgan export")
    from colorgan.model.export import export_bundle as bundle

    _setup_logging(quiet)
    done = bundle(model, folder)
    typer.echo(f"wrote {done}: model.safetensors, model.json and model.onnx")


# --- serve ------------------------------------------------------------------------------

@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every network interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    model: ModelOption = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest upload accepted, in MB (413 beyond).")] = 25.0,
    max_megapixels: Annotated[float, typer.Option("--max-megapixels", help="Largest photo accepted, in megapixels, read from its header before decoding (413 beyond).")] = 50.0,
    concurrency: Annotated[int, typer.Option(help="Photos colorized at once; more requests wait in the queue.")] = 1,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Requests allowed to wait for a free slot (503 beyond).")] = 32,
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
    trusted_proxy: Annotated[Optional[list[str]], typer.Option("--trusted-proxy", metavar="ADDRESS", help="A reverse proxy's address or network (e.g. 10.0.0.0/8) whose X-Forwarded-For names the client. Repeatable; without it, every request counts for the address it comes from.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Serve a web page and an HTTP API that colorize photos (needs the web extra)."""
    _setup_logging(quiet)
    require_extra("web", "colorgan serve")
    from colorgan.serve import ServeSettings, serve as run_server

    settings = ServeSettings(model=model, device=device, backend=backend, max_upload_mb=max_upload_mb,
                             max_megapixels=max_megapixels, concurrency=concurrency, max_queue=max_queue,
                             trusted_proxies=tuple(trusted_proxy or ()))
    run_server(settings, host=host, port=port,
               on_ready=lambda url: typer.echo(f"colorgan is serving on {url}  (Ctrl+C stops it)"))


# --- pretext ----------------------------------------------------------------------------

@app.command()
def pretext(
    data: Annotated[Path, typer.Option(help="Training photos: one sub-folder per class (with --multilabel: the label file's paths).")],
    val: Annotated[Path, typer.Option(help="Validation photos, with the same classes.")],
    init: Annotated[str, typer.Option(help="scratch (N(0, 0.02)), colorization (the colorizer's encoder), or both.")],
    colorizer: Annotated[Path, typer.Option(help="A colorizer trained from scratch (run folder, model.safetensors or model.json): the classifier takes its encoder.")],
    label_fraction: Annotated[float, typer.Option(help="Train on this stratified fraction of the labelled photos, in (0, 1].")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Epochs per run (the same for both arms).")] = 20,
    freeze_epochs: Annotated[int, typer.Option(help="Colorization init: epochs with the encoder frozen (head only, lr 1e-4).")] = 5,
    size: Annotated[int, typer.Option(help="Training and validation resolution (square).")] = 128,
    seeds: Annotated[int, typer.Option(help="Runs per arm, with seeds 0..N-1.")] = 3,
    lr: Annotated[float, typer.Option(help="Adam learning rate once every layer trains.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Photos per step.")] = 32,
    workers: Annotated[int, typer.Option(help="Data loader processes.")] = 2,
    multilabel: Annotated[Optional[list[Path]], typer.Option(help="Multilabel (BCE, mAP): a CSV 'path,label1;label2' or a COCO instances_*.json; once for both folders, or twice (train, then val).")] = None,
    mixed_precision: Annotated[str, typer.Option(help="auto, no or bf16 (auto: bf16 on GPUs that have it, fp32 on CPUs).")] = "auto",
    out: Annotated[Path, typer.Option(help="Folder for pretext_<init>.json.")] = Path("runs/pretext"),
    quiet: QuietOption = False,
) -> None:
    """Colorization as self-supervision (paper Table 5.1): classify from the colorizer's encoder vs from scratch."""
    require_extra("train", "colorgan pretext")
    from colorgan.experiments.pretext.config import PretextConfig
    from colorgan.experiments.pretext.run import results_table, run_pretext

    _setup_logging(quiet)
    reports = run_pretext(PretextConfig(
        data=data, val=val, colorizer=colorizer, init=init, label_fraction=label_fraction, epochs=epochs,
        freeze_epochs=freeze_epochs, size=size, seeds=seeds, lr=lr, batch_size=batch_size, workers=workers,
        multilabel=tuple(multilabel or ()), mixed_precision=mixed_precision, out=out,
    ))
    Console().print(results_table(reports))


def _one_line(message: str) -> str:
    """A refusal as one line, whatever a library put in its message."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(standalone_mode=False)  # without standalone mode, click hands back what typer.Exit asked for
        if isinstance(code, int) and code:
            sys.exit(code)
    except UsageError as exc:  # a bad flag or value (--size abc): one line, as every other refusal
        if not exc.format_message():  # a group called without a command: its help, as usual
            exc.show()
            sys.exit(exc.exit_code)
        command = exc.ctx.command_path if exc.ctx is not None else "colorgan"
        err_console.print(f"error: {_one_line(exc.format_message())} (see {command} --help)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
    except UserError as exc:
        err_console.print(f"error: {_one_line(str(exc))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:  # a path that needs an extra, reached without it
        extra = extra_of_module(exc.name or "")
        if extra is None:
            raise
        err_console.print(f"error: this needs {exc.name}, which this install lacks: {install_line(extra)}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
