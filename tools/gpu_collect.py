"""Pack a finished run's models for the trip back from a GPU machine (files of at most 16 MB).

Writes ``DST/NAME.tar`` holding ``NAME/model.safetensors`` (fp16) and ``NAME/model.json``:
the run's published model, or with ``--raw`` the plain (not averaged) generator of its
latest checkpoint under the same architecture and provenance.

    python tools/gpu_collect.py runs/a/gan $OUT/a_gan.tar [--raw]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

from colorgan.errors import UserError
from colorgan.model.artifact import load_pretrained, load_state_dict_checked, read_weights, save_pretrained
from colorgan.training.checkpoint import latest_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("tar", type=Path)
    parser.add_argument("--raw", action="store_true", help="the latest checkpoint's generator instead of the EMA")
    args = parser.parse_args()
    generator, meta = load_pretrained(args.run)
    training = meta.get("training", {})
    if args.raw:
        checkpoint = latest_checkpoint(args.run)
        load_state_dict_checked(generator, read_weights(checkpoint / "generator.safetensors"), source=str(checkpoint))
        training = training | {"weights": "raw generator (no EMA)"}
    name = args.tar.name.removesuffix(".tar")
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(generator, Path(tmp) / name, size=meta["size"], training=training, dtype=torch.float16)
        with tarfile.open(args.tar, "w") as tar:
            tar.add(Path(tmp) / name, arcname=name)


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # e.g. the run has not published a model yet
        sys.exit(f"error: {exc}")
