"""Labelled photos for the pretext classifier: class folders (ImageFolder), a CSV or COCO label file, and their loaders."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from colorgan.training.data import EpochSampler, PhotoDataset, collate
from colorgan.files.discovery import find_images
from colorgan.errors import UserError

from colorgan.experiments.pretext.config import PretextConfig

log = logging.getLogger(__name__)


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

def labelled_loader(photos: LabeledPhotos, cfg: PretextConfig, *, seed: int, train: bool) -> DataLoader:
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

def labelled_batches(loader: DataLoader, skipped: dict[str, str]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Usable ``(rgb, target)`` batches; gray or unreadable photos are collected in ``skipped``."""
    for batch in loader:
        skipped.update((s["skip"], s["reason"]) for s in batch["skipped"])
        if batch["target"] is not None:
            yield batch["rgb"], batch["target"]

def warn_skipped(skipped: dict[str, str], what: str, total: int) -> None:
    if skipped:
        path, reason = next(iter(skipped.items()))
        log.warning("skipped %d of %d %s photos (grayscale or unreadable), e.g. %s: %s", len(skipped), total, what, path, reason)
