"""Colorization as a pretext task (paper §V, Table 5.1): do a colorizer's features help classification?

The classifier is a colorization generator's encoder (same architecture, same input: the
normalized L channel) + global average pooling + a linear head. It is trained on labelled
photos either from N(0, 0.02) init (the paper's baseline) or from the encoder of a colorizer
that was itself trained from scratch, so any gain comes from colorization alone and never
from ImageNet labels. With colorization init the encoder is first frozen (head only, lr
1e-4), then every layer trains; both arms get the same number of epochs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .training.lab import rgb_to_model_space, uint8_to_unit
from .data import EpochSampler, PhotoDataset, collate
from .files import find_images
from .errors import UserError
from .files import write_report
from .models import Generator, build_generator, load_pretrained, read_model_json
from .models.registry import init_normal

log = logging.getLogger(__name__)

INITS = ("scratch", "colorization")
FROZEN_LR = 1e-4
ROW_NAMES = {"scratch": "Random init, N(0, 0.02)", "colorization": "Colorization weights"}
PRECISIONS = ("auto", "no", "bf16")  # no fp16: it would need loss scaling
METRIC_TITLES = {"top1": "Classification accuracy (top-1)", "mAP": "Classification mAP"}


@dataclass
class PretextConfig:
    """One pretext experiment: plain data, the CLI's options."""

    data: Path
    val: Path
    colorizer: Path
    init: str = "both"
    label_fraction: float = 1.0
    epochs: int = 20
    freeze_epochs: int = 5
    size: int = 128
    seeds: int = 3
    lr: float = 2e-4
    batch_size: int = 32
    workers: int = 2
    multilabel: tuple[Path, ...] = field(default_factory=tuple)
    mixed_precision: str = "auto"
    out: Path = Path("runs/pretext")

    @property
    def arms(self) -> list[str]:
        return list(INITS) if self.init == "both" else [self.init]

    def validate(self) -> None:
        """Reject impossible settings before any work starts."""
        checks = [
            (self.init in (*INITS, "both"), f"--init must be scratch, colorization or both, got {self.init!r}"),
            (0 < self.label_fraction <= 1, f"--label-fraction must be in (0, 1], got {self.label_fraction:g}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (0 <= self.freeze_epochs <= self.epochs, f"--freeze-epochs must be from 0 to --epochs ({self.epochs}), got {self.freeze_epochs}"),
            (self.size > 0, f"--size must be positive, got {self.size}"),
            (self.seeds > 0, f"--seeds must be positive, got {self.seeds}"),
            (self.lr > 0, "--lr must be positive"),
            (self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}"),
            (self.workers >= 0, "--workers cannot be negative"),
            (self.mixed_precision in PRECISIONS, f"--mixed-precision must be one of {', '.join(PRECISIONS)}"),
            (len(self.multilabel) <= 2, "--multilabel takes one label file (for both folders) or two (train, then val)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


# --- labelled photos ------------------------------------------------------------------

@dataclass
class LabeledPhotos:
    """Photos and their targets: class indices ``(N,)``, or 0/1 rows ``(N, C)`` for multilabel."""

    paths: list[Path]
    targets: torch.Tensor
    classes: list[str]

    @property
    def multilabel(self) -> bool:
        return self.targets.ndim == 2

    def subset(self, indices: Sequence[int]) -> LabeledPhotos:
        return LabeledPhotos([self.paths[i] for i in indices], self.targets[list(indices)], self.classes)

    def strata(self) -> list[int]:
        """Each photo's class for stratified sampling; a multilabel photo counts under its rarest label (-1: none)."""
        if not self.multilabel:
            return self.targets.tolist()
        positive = self.targets > 0
        rarest = torch.where(positive, self.targets.sum(0), torch.inf).argmin(1)
        return torch.where(positive.any(1), rarest, -1).tolist()


def stratified_subset(strata: Sequence[int], fraction: float, seed: int) -> list[int]:
    """Indices of ``fraction`` of each stratum (at least one photo each), drawn reproducibly from ``seed``."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, stratum in enumerate(strata):
        members[stratum].append(i)
    g = torch.Generator().manual_seed(seed)
    keep: list[int] = []
    for stratum in sorted(members):
        idx = members[stratum]
        take = max(1, round(fraction * len(idx)))
        keep += [idx[j] for j in torch.randperm(len(idx), generator=g)[:take].tolist()]
    return sorted(keep)


def _class_folders(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise UserError(f"photo folder not found: {root}")
    folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not folders:
        raise UserError(f"{root} has no class folders: give one sub-folder of photos per class (ImageFolder layout), or use --multilabel")
    return folders


def read_image_folders(train_root: Path, val_root: Path) -> tuple[LabeledPhotos, LabeledPhotos]:
    """ImageFolder layout: one sub-folder per class (sorted names); validation must have the same classes."""
    train, val = _class_folders(train_root), _class_folders(val_root)
    if len(train) < 2:
        raise UserError(f"{train_root} has only one class folder ({next(iter(train))}); a classifier needs at least two")
    if missing := sorted(train.keys() - val.keys()):
        raise UserError(f"classes missing from the validation folder {val_root}: {', '.join(missing)}")
    if extra := sorted(val.keys() - train.keys()):
        raise UserError(f"the validation folder {val_root} has classes that {train_root} lacks: {', '.join(extra)}")
    classes = sorted(train)

    def photos(folders: dict[str, Path]) -> LabeledPhotos:
        paths, targets = [], []
        for index, name in enumerate(classes):
            found = find_images(folders[name])
            paths += found
            targets += [index] * len(found)
        return LabeledPhotos(paths, torch.tensor(targets), classes)

    return photos(train), photos(val)


def read_multilabel(files: Sequence[Path], train_root: Path, val_root: Path) -> tuple[LabeledPhotos, LabeledPhotos]:
    """``--multilabel``: one label file for both folders, or two (train, then val).

    A file is a CSV (``path,label1;label2``, paths relative to the photo folder) or a COCO
    ``instances_*.json``; the photos are its entries found in the folder. The classes are
    those of the training label file.
    """
    tables = [_read_label_file(Path(f)) for f in files]
    (train_table, classes), (val_table, _) = tables[0], tables[-1]
    return _labeled(train_root, train_table, classes), _labeled(val_root, val_table, classes)


def _labeled(root: Path, table: dict[str, list[str]], classes: list[str]) -> LabeledPhotos:
    if not root.is_dir():
        raise UserError(f"photo folder not found: {root}")
    present = sorted(rel for rel in table if (root / rel).is_file())
    if not present:
        raise UserError(f"none of the photos named in the label file are in {root}")
    index = {name: i for i, name in enumerate(classes)}
    if unknown := sorted({label for rel in present for label in table[rel]} - index.keys()):
        raise UserError(f"photos in {root} carry labels the training labels never use: {', '.join(unknown[:10])}")
    targets = torch.zeros(len(present), len(classes))
    for row, rel in enumerate(present):
        targets[row, [index[label] for label in table[rel]]] = 1.0
    log.info("%s: %d labelled photos, %d classes", root, len(present), len(classes))
    return LabeledPhotos([root / rel for rel in present], targets, classes)


def _read_label_file(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    """``{relative path: labels}`` and the sorted class names."""
    if not path.is_file():
        raise UserError(f"label file not found: {path}")
    if path.suffix.lower() == ".json":
        return _read_coco(path)
    try:
        with path.open(newline="") as fh:
            rows = [(n, r) for n, r in enumerate(csv.reader(fh), 1) if r and not r[0].lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read label file {path}: {exc}") from None
    if rows and rows[0][1][0].strip().lower() == "path":
        rows = rows[1:]
    if bad := [n for n, r in rows if len(r) > 2]:
        raise UserError(f"{path} line {bad[0]}: expected 'path,label1;label2'")
    table = {r[0].strip(): sorted({s.strip() for s in (r[1:] or [""])[0].split(";") if s.strip()}) for _, r in rows}
    return table, sorted({label for labels in table.values() for label in labels})


def _read_coco(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise UserError(f"reading COCO annotations ({path.name}) needs pycocotools: pip install pycocotools") from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
            coco = COCO(str(path))
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise UserError(f"cannot read COCO annotations {path}: {exc}") from None
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    table = {img["file_name"]: sorted({names[a["category_id"]] for a in coco.imgToAnns[i]}) for i, img in coco.imgs.items()}
    return table, sorted(names.values())


class _LabeledDataset(PhotoDataset):
    """:class:`PhotoDataset` items with their ``target`` added (skip records stay as they are)."""

    def __init__(self, photos: LabeledPhotos, size: int) -> None:
        super().__init__(photos.paths, size=size)
        self.targets = photos.targets

    def __getitem__(self, key: int | tuple[int, bool]) -> dict[str, Any]:
        item = super().__getitem__(key)
        if "rgb" in item:
            item["target"] = self.targets[key[0] if isinstance(key, tuple) else key]
        return item


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch = collate(items)
    targets = [it["target"] for it in items if "rgb" in it]
    batch["target"] = torch.stack(targets) if targets else None
    return batch


def _loader(photos: LabeledPhotos, cfg: PretextConfig, *, seed: int, train: bool) -> DataLoader:
    """Training: shuffled with random flips (by seed and epoch); validation: every photo in order."""
    return DataLoader(
        _LabeledDataset(photos, cfg.size),
        batch_size=cfg.batch_size,
        sampler=EpochSampler(len(photos.paths), seed=seed, shuffle=train, flip=train),
        collate_fn=_collate,
        num_workers=cfg.workers,
        # a last batch of one photo would break BatchNorm in training where the features are 1x1
        drop_last=train and len(photos.paths) > cfg.batch_size,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
    )


def _batches(loader: DataLoader, skipped: dict[str, str]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Usable ``(rgb, target)`` batches; gray or unreadable photos are collected in ``skipped``."""
    for batch in loader:
        skipped.update((s["skip"], s["reason"]) for s in batch["skipped"])
        if batch["target"] is not None:
            yield batch["rgb"], batch["target"]


def _warn_skipped(skipped: dict[str, str], what: str, total: int) -> None:
    if skipped:
        path, reason = next(iter(skipped.items()))
        log.warning("skipped %d of %d %s photos (grayscale or unreadable), e.g. %s: %s", len(skipped), total, what, path, reason)


# --- the classifier -------------------------------------------------------------------

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


# --- training and scoring -------------------------------------------------------------

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
    for rgb, target in _batches(loader, skipped):
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
    train_loader, val_loader = _loader(train, cfg, seed=seed, train=True), _loader(val, cfg, seed=seed, train=False)
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
        for rgb, target in _batches(train_loader, skipped_train):
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
            _warn_skipped(skipped_train, "training", len(train.paths))
            _warn_skipped(skipped_val, "validation", len(val.paths))
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


def table_row(report: dict[str, Any]) -> tuple[str, str, str]:
    """One row of the Table 5.1 layout: initialization | mean ± std | per-seed values (percent)."""
    per_seed = ", ".join(f"{100 * r[report['metric']]:.1f}" for r in report["per_seed"])
    return ROW_NAMES[report["init"]], f"{100 * report['mean']:.1f} ± {100 * report['std']:.1f} %", per_seed
