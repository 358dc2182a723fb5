"""Training and scoring the pretext classifier: one arm over its seeds, both arms, and the rows of the paper's Table 5.1."""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from colorgan.training.lab import rgb_to_model_space, uint8_to_unit
from colorgan.errors import UserError
from colorgan.files.atomic import write_report
from colorgan.model.files import read_model_json

from colorgan.experiments.pretext.classifier import EncoderClassifier, build_classifier, colorizer_encoder_state
from colorgan.experiments.pretext.config import FROZEN_LR, METRIC_TITLES, ROW_NAMES, PretextConfig
from colorgan.experiments.pretext.labels import LabeledPhotos, labelled_batches, labelled_loader, warn_skipped, read_image_folders, read_multilabel, stratified_subset

log = logging.getLogger(__name__)


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-class AP of ``(N, C)`` scores: the mean precision at each positive's rank; NaN where a class has no positive."""
    hits = targets.gather(0, scores.argsort(dim=0, descending=True, stable=True)).float()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.float32).unsqueeze(1)
    return (precision * hits).sum(0) / hits.sum(0)

def score(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy, or mAP over the classes with a positive for multilabel targets."""
    if targets.ndim == 2:
        return average_precision(logits, targets).nanmean().item()
    return (logits.argmax(1) == targets).float().mean().item()

def _l_channel(rgb: torch.Tensor) -> torch.Tensor:
    # channels-last: oneDNN's fastest layout for this encoder (78 vs 59 photos/s at 96 px on 2 cores)
    return rgb_to_model_space(uint8_to_unit(rgb))[0].contiguous(memory_format=torch.channels_last)

def _autocast(device: torch.device, choice: str) -> torch.autocast:
    """bf16 autocast with ``bf16``, or with ``auto`` on a GPU that has bf16; else a no-op.

    Unlike ``colorgan train``, ``auto`` stays fp32 on CPUs even with native bf16: this small
    encoder's training step measured slower in bf16 there (56 vs 78 photos/s at 96 px, 2 cores).
    """
    bf16 = choice == "bf16" or (choice == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, skipped: dict[str, str], *, precision: str = "no") -> float:
    """Score ``model`` on every usable photo of ``loader``."""
    device = next(model.parameters()).device
    model.eval()
    logits, targets = [], []
    for rgb, target in labelled_batches(loader, skipped):
        with _autocast(device, precision):
            logits.append(model(_l_channel(rgb.to(device))).float().cpu())
        targets.append(target)
    if not logits:
        raise UserError("no usable color photos in the validation set")
    return score(torch.cat(logits), torch.cat(targets))

def fit(model: EncoderClassifier, train: LabeledPhotos, val: LabeledPhotos, cfg: PretextConfig, *,
        seed: int, freeze_epochs: int = 0) -> list[dict[str, Any]]:
    """Train for ``cfg.epochs`` epochs with Adam and score ``val`` after each; returns one row per epoch.

    The first ``freeze_epochs`` train only the head at lr 1e-4: the encoder gets no
    gradient and its BatchNorm layers stay in eval mode, so not even their running
    statistics move. Then every layer trains at ``cfg.lr``.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device, memory_format=torch.channels_last)
    criterion = nn.BCEWithLogitsLoss() if train.multilabel else nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)  # frozen parameters have no grad: Adam skips them
    train_loader, val_loader = labelled_loader(train, cfg, seed=seed, train=True), labelled_loader(val, cfg, seed=seed, train=False)
    skipped_train: dict[str, str] = {}
    skipped_val: dict[str, str] = {}
    metric = "mAP" if train.multilabel else "top1"
    history = []
    for epoch in range(cfg.epochs):
        tic = time.perf_counter()
        frozen = epoch < freeze_epochs
        model.train()
        model.encoder.requires_grad_(not frozen)
        if frozen:
            model.encoder.eval()
        for group in optimizer.param_groups:
            group["lr"] = FROZEN_LR if frozen else cfg.lr
        train_loader.sampler.set_position(epoch)
        loss_sum, photos = 0.0, 0
        for rgb, target in labelled_batches(train_loader, skipped_train):
            with _autocast(device, cfg.mixed_precision):
                loss = criterion(model(_l_channel(rgb.to(device))).float(), target.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(rgb)
            photos += len(rgb)
        if not photos:
            raise UserError("no usable color photos in the training set")
        value = evaluate(model, val_loader, skipped_val, precision=cfg.mixed_precision)
        if epoch == 0:
            warn_skipped(skipped_train, "training", len(train.paths))
            warn_skipped(skipped_val, "validation", len(val.paths))
        row = {"epoch": epoch + 1, "encoder_frozen": frozen, "loss": loss_sum / photos, metric: value,
               "seconds": round(time.perf_counter() - tic, 1)}
        history.append(row)
        log.info("seed %d epoch %d/%d%s: loss %.4f, val %s %.2f %%, %.0f s", seed, epoch + 1, cfg.epochs,
                 " (encoder frozen)" if frozen else "", row["loss"], metric, 100 * value, row["seconds"])
    return history

def run_arm(cfg: PretextConfig, init: str, train: LabeledPhotos, val: LabeledPhotos,
            colorizer_meta: dict[str, Any], encoder_state: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Every seed of one arm (``scratch`` or ``colorization``); returns its report."""
    tic = time.perf_counter()
    metric = "mAP" if train.multilabel else "top1"
    runs = []
    for seed in range(cfg.seeds):
        torch.manual_seed(seed)
        model = build_classifier(colorizer_meta, len(train.classes))
        if init == "colorization":
            model.encoder.load_state_dict(encoder_state)
        subset = train if cfg.label_fraction == 1 else train.subset(stratified_subset(train.strata(), cfg.label_fraction, seed))
        log.info("%s init, seed %d: %d training photos, %d validation photos", init, seed, len(subset.paths), len(val.paths))
        history = fit(model, subset, val, cfg, seed=seed, freeze_epochs=cfg.freeze_epochs if init == "colorization" else 0)
        runs.append({"seed": seed, metric: history[-1][metric], "train_photos": len(subset.paths), "history": history})
    values = [r[metric] for r in runs]
    return {
        "init": init,
        "metric": metric,
        "per_seed": runs,
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,  # sample std over seeds
        "classes": train.classes,
        "val_photos": len(val.paths),
        "colorizer": {"path": str(cfg.colorizer), "generator": colorizer_meta["generator"],
                      "config": colorizer_meta.get("config", {}),
                      "encoder_weights": (colorizer_meta.get("training") or {}).get("encoder_weights")},
        "config": cfg.to_dict(),
        "seconds": round(time.perf_counter() - tic, 1),
    }

def run_pretext(cfg: PretextConfig) -> list[dict[str, Any]]:
    """Run the requested arm(s) and write ``cfg.out/pretext_<init>.json`` for each; returns the reports."""
    cfg.validate()
    _, meta = read_model_json(cfg.colorizer)
    encoder_state = colorizer_encoder_state(cfg.colorizer) if "colorization" in cfg.arms else None
    if cfg.size % (multiple := build_classifier(meta, 2).size_multiple):
        raise UserError(f"--size {cfg.size} does not fit the colorizer's {meta['generator']} encoder: use a multiple of {multiple}")
    if cfg.multilabel:
        train, val = read_multilabel(cfg.multilabel, cfg.data, cfg.val)
        if absent := [c for c, n in zip(val.classes, val.targets.sum(0).tolist()) if n == 0]:
            log.warning("%d classes have no positive validation photo and do not count in the mAP: %s",
                        len(absent), ", ".join(absent[:10]))
    else:
        train, val = read_image_folders(cfg.data, cfg.val)
    reports = []
    for init in cfg.arms:
        report = run_arm(cfg, init, train, val, meta, encoder_state)
        write_report(cfg.out / f"pretext_{init}.json", report)
        log.info("wrote %s", cfg.out / f"pretext_{init}.json")
        reports.append(report)
    return reports

def results_table(reports: list[dict[str, Any]]) -> Any:
    """The reports as the paper's Table 5.1 (a rich Table: model initialization, the metric, each seed)."""
    from rich.table import Table

    table = Table(title="Classification from colorization features (paper Table 5.1)")
    for column in ("Model initialization", METRIC_TITLES[reports[0]["metric"]], "Per seed (%)"):
        table.add_column(column)
    for report in reports:
        table.add_row(*table_row(report))
    return table


def table_row(report: dict[str, Any]) -> tuple[str, str, str]:
    """One row of the Table 5.1 layout: initialization | mean ± std | per-seed values (percent)."""
    per_seed = ", ".join(f"{100 * r[report['metric']]:.1f}" for r in report["per_seed"])
    return ROW_NAMES[report["init"]], f"{100 * report['mean']:.1f} ± {100 * report['std']:.1f} %", per_seed
