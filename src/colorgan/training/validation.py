"""Validation during training, scored through ``colorgan evaluate``'s own path.

A run's ``val_psnr``, ``val_cf``, ``val_delta_cf`` and ``val_auc`` after an epoch equal what
``colorgan evaluate --data VAL --limit VAL_LIMIT --model RUN/model.safetensors`` reports for the
model published at that epoch (on the same device, at evaluate's default batch size): the same
first ``val_limit`` files, each made gray with :func:`colorgan.evaluation.evaluate.gray_input`, colorized
by a :class:`colorgan.Colorizer` at the training size, stretched to 256×256 and scored by
:func:`colorgan.evaluation.evaluate.score_colorizer`. ``tests/test_train.py`` checks the equality.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from colorgan.training.lab import rgb_to_model_space, uint8_to_unit
from colorgan.training.data import PhotoDataset
from colorgan.files.discovery import find_images
from colorgan.errors import UserError
from colorgan.evaluation.evaluate import score_colorizer
from colorgan.colorizer import Colorizer
from colorgan.model.backends import torch_predictor
from colorgan.training.losses import l1_loss
from colorgan.networks import Generator, build_generator, generator_spec
from colorgan.training.config import TrainConfig


class Validator:
    """Scores the published generator on the photos of ``cfg.val`` once per epoch (main process only).

    The scoring runs on an fp32 twin of the published generator, rebuilt from its spec as
    ``Colorizer.from_pretrained`` rebuilds the published file: the trained module itself runs
    under accelerate's autocast wrapper (with ``--mixed-precision``), so it would not score
    as the published model does.

    ``val_Loss_G_L1`` keeps its meaning, the training loss's L1 on validation photos prepared
    as training prepares them (comparable with ``Loss_G_L1``): one extra forward pass over
    the at most ``val_limit`` photos, held in memory, since the evaluation path only hands
    back finished images.
    """

    def __init__(self, *, cfg: TrainConfig, generator: Generator, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.paths = find_images(cfg.val, first=cfg.val_limit)  # as `colorgan evaluate --limit` selects them
        self.photos = _training_views(self.paths, cfg)
        spec = generator_spec(generator)
        with torch.random.fork_rng(devices=[]):  # its throwaway initialization must not shift the training's random stream
            self.twin = build_generator(spec["generator"], **spec["config"]).to(device).eval()
        self.colorizer = Colorizer(
            predict=torch_predictor(self.twin, device),
            size=cfg.size,
            size_multiple=self.twin.size_multiple,
            meta=spec | {"size": cfg.size},
            cond_channels=self.twin.cond_channels,
            generator=self.twin,
        )

    def __call__(self, published: Generator) -> tuple[dict[str, float], list[tuple[Image.Image, Image.Image, Image.Image]]]:
        """The epoch's validation columns, and ``cfg.samples`` (gray, prediction, truth) triples for the sample grid."""
        self.twin.load_state_dict(published.state_dict())
        result, _ = score_colorizer(self.colorizer, self.paths, data=self.cfg.val, grid_rows=self.cfg.samples)
        summary = result.summary()
        row = {
            "val_Loss_G_L1": self._l1(),
            "val_psnr": summary["psnr"],
            "val_cf": summary["cf_pred"],
            "val_delta_cf": summary["delta_cf"],
            "val_auc": summary["auc"],
        }
        return row, result.grid

    @torch.inference_mode()
    def _l1(self) -> float:
        """lambda * mean |ab - truth| over the validation photos, as ``Loss_G_L1`` is computed in training."""
        total = 0.0
        for chunk in self.photos.split(self.cfg.batch_size):
            l, ab = rgb_to_model_space(uint8_to_unit(chunk.to(self.device)))
            total += l1_loss(self.twin(l).float(), ab, weight=self.cfg.lambda_l1).item() * len(chunk)
        return total / len(self.photos)


def _training_views(paths: list[Path], cfg: TrainConfig) -> torch.Tensor:
    """The usable ones among ``paths`` as training sees them: one uint8 (N, 3, size, size) batch."""
    dataset = PhotoDataset(paths, size=cfg.size)
    photos = [item["rgb"] for item in (dataset[i] for i in range(len(dataset))) if "rgb" in item]
    if not photos:
        raise UserError(f"no usable color photos in validation folder {cfg.val}")
    return torch.stack(photos)
