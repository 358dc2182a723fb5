"""The ``colorgan`` commands as Typer declares them: their help, their types, every refusal of a
flag. :mod:`colorgan.cli` starts an ordinary ``colorgan colorize`` without them; the work itself
lives in the library modules.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

try:  # typer 0.2x carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError

from colorgan import __version__
from colorgan.errors import one_line, require_extra
from colorgan.flags import BACKEND_HELP, COLORIZE, DEVICE_HELP, MODEL_HELP, PRECISION_HELP, QUIET_HELP, RENDER_SIZE_HELP, Flag
from colorgan.messages import setup_logging
from colorgan.training.config import TrainConfig


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


# The options every command that runs a model shares, with one wording (colorgan.flags).
ModelOption = Annotated[Optional[str], typer.Option(help=MODEL_HELP, show_default="the bundled default")]
DeviceOption = Annotated[str, typer.Option(help=DEVICE_HELP)]
BackendOption = Annotated[str, typer.Option(help=BACKEND_HELP)]
PrecisionOption = Annotated[str, typer.Option(help=PRECISION_HELP)]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)]


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

    setup_logging(quiet)
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
    precision: Annotated[str, typer.Option(help=PRECISION_HELP + " Scores are of the fp32 model unless asked.")] = "fp32",
    out: Annotated[Optional[Path], typer.Option(help="Write the JSON report to this file.")] = None,
    per_image: Annotated[Optional[Path], typer.Option("--per-image", help="Write one CSV row of scores per photo.")] = None,
    save_grid: Annotated[Optional[Path], typer.Option("--save-grid", help="Write a PNG: gray | prediction | ground truth for a few photos.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Score a colorizer (or the gray baseline) against a folder of color photos: PSNR, SSIM, CF, ΔCF, AuC, FID."""
    from colorgan.evaluation import evaluate as ev
    from colorgan.files.atomic import write_report

    setup_logging(quiet)
    result = ev.evaluate(ev.EvalSettings(data=data, model=model, baseline=baseline, size=size, limit=limit,
                                         native=native, fid=fid, batch_size=batch_size, device=device, backend=backend,
                                         precision=precision, hints=hints, min_side=min_side, upsample=upsample))
    if out is not None:
        write_report(out, result.report)
    if per_image is not None:
        ev.write_per_image_csv(result.per_image, per_image)
    if save_grid is not None:
        ev.save_grid(result.grid, save_grid)
    Console().print(ev.markdown_table(result.report), markup=False, highlight=False, soft_wrap=True)


# --- colorize ---------------------------------------------------------------------------

def _typer_command(flags: Sequence[Flag], run: Callable[[dict[str, Any]], int], doc: str) -> Callable[..., None]:
    """A Typer command of ``flags`` (plain data, which :func:`colorgan.flags.parse_plainly` also
    reads) that hands their values to ``run`` and exits with its code."""

    def command(**values: Any) -> None:
        code = run(values)
        if code:
            raise typer.Exit(code)

    parameters = [inspect.Parameter(flag.name, inspect.Parameter.KEYWORD_ONLY, default=flag.default,
                                    annotation=Annotated[_annotation(flag), _typer_info(flag)]) for flag in flags]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    command.__doc__ = doc
    return command


def _annotation(flag: Flag) -> Any:
    kind = list[flag.kind] if flag.many else flag.kind
    return Optional[kind] if flag.default is None else kind


def _typer_info(flag: Flag) -> Any:
    extra = {key: value for key, value in (("show_default", flag.show_default), ("metavar", flag.metavar)) if value is not None}
    if not flag.decls:
        return typer.Argument(help=flag.help, **extra)
    return typer.Option(*flag.decls, help=flag.help, **extra)


def _colorize(values: dict[str, Any]) -> int:
    from colorgan.colorize.command import colorize

    return colorize(values)


app.command("colorize")(_typer_command(
    COLORIZE, _colorize, "Colorize black-and-white photos and videos at full resolution (exit 1 if any file or the report failed)."))


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

    setup_logging(quiet)
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

    setup_logging(quiet)
    done = bundle(model, folder)
    typer.echo(f"wrote {done}: model.safetensors, model.json and model.onnx")


@export_app.command("int8")
def export_int8(
    data: Annotated[Path, typer.Option(help="Training photos to calibrate on (searched recursively): the int8 ranges come from them.")],
    model: ModelOption = None,
    photos: Annotated[int, typer.Option(help="Photos drawn from --data for the calibration.")] = 300,
    out: Annotated[Optional[Path], typer.Option(help="The .onnx file to write.", show_default="model.int8.onnx beside the model's model.onnx, where --precision finds it")] = None,
    quiet: QuietOption = False,
) -> None:
    """Make an int8 model from a model's ONNX export, for CPUs with int8 dot products (needs the train extra)."""
    require_extra("train", "colorgan export int8")
    from colorgan.model.quantize import export_int8 as quantize

    setup_logging(quiet)
    typer.echo(f"wrote {quantize(model, data, photos=photos, out=out)}")


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
    precision: PrecisionOption = "auto",
    trusted_proxy: Annotated[Optional[list[str]], typer.Option("--trusted-proxy", metavar="ADDRESS", help="A reverse proxy's address or network (e.g. 10.0.0.0/8) whose X-Forwarded-For names the client. Repeatable; without it, every request counts for the address it comes from.")] = None,
    quiet: QuietOption = False,
) -> None:
    """Serve a web page and an HTTP API that colorize photos (needs the web extra)."""
    setup_logging(quiet)
    require_extra("web", "colorgan serve")
    from colorgan.serve import ServeSettings, serve as run_server

    settings = ServeSettings(model=model, device=device, backend=backend, precision=precision, max_upload_mb=max_upload_mb,
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

    setup_logging(quiet)
    reports = run_pretext(PretextConfig(
        data=data, val=val, colorizer=colorizer, init=init, label_fraction=label_fraction, epochs=epochs,
        freeze_epochs=freeze_epochs, size=size, seeds=seeds, lr=lr, batch_size=batch_size, workers=workers,
        multilabel=tuple(multilabel or ()), mixed_precision=mixed_precision, out=out,
    ))
    Console().print(results_table(reports))


def run_app() -> int:
    """Run the Typer app on ``sys.argv``: its exit code; a bad flag or value is one ``error:`` line (exit 2)."""
    try:
        code = app(prog_name="colorgan", standalone_mode=False)  # without standalone mode, click hands back what typer.Exit asked for
    except UsageError as exc:  # a bad flag or value (--size abc): one line, as every other refusal
        if not exc.format_message():  # a group called without a command: its help, as usual
            exc.show()
            return exc.exit_code
        command = exc.ctx.command_path if exc.ctx is not None else "colorgan"
        print(f"error: {one_line(exc.format_message())} (see {command} --help)", file=sys.stderr)
        return 2
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0
