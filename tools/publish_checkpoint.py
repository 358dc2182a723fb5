"""Publish one checkpoint of a run as a model, to compare runs at the same step.

Takes the checkpoint's weight average (``ema.safetensors``; with ``--raw`` the plain generator)
under the run's architecture and provenance, and writes ``model.safetensors`` + ``model.json``
(and the checkpoint's critic as ``critic.safetensors``, for a GAN run):

    python tools/publish_checkpoint.py runs/cpu2/control runs/cpu2/control/checkpoint/step-000000400 runs/cpu2/m400
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from colorgan.errors import UserError
from colorgan.model.files import CRITIC_NAME
from colorgan.model.artifact import load_pretrained, load_state_dict_checked, read_weights, save_pretrained
from colorgan.networks import load_critic, save_critic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder (its model.json gives the architecture)")
    parser.add_argument("checkpoint", type=Path, help="a checkpoint folder (step-N) of that run")
    parser.add_argument("out", type=Path, help="folder for the published model")
    parser.add_argument("--raw", action="store_true", help="the plain generator instead of the EMA")
    args = parser.parse_args()
    generator, meta = load_pretrained(args.run)
    if args.raw:
        state = read_weights(args.checkpoint / "generator.safetensors")
    else:  # AveragedModel's state: the averaged module's tensors under "module.", plus a counter
        ema = read_weights(args.checkpoint / "ema.safetensors")
        state = {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
    load_state_dict_checked(generator, state, source=str(args.checkpoint))
    step = torch.load(args.checkpoint / "state.pt", map_location="cpu", weights_only=True)["global_step"]
    batch = yaml.safe_load((args.run / "config.yaml").read_text())["batch_size"]  # one process: photos per step
    training = meta.get("training", {}) | {"photos_seen": step * batch, "weights": f"{'raw' if args.raw else 'EMA'} at step {step}"}
    save_pretrained(generator, args.out, size=meta["size"], training=training)
    critic_weights = args.checkpoint / "discriminator.safetensors"
    if critic_weights.is_file():
        critic = load_critic(args.run / CRITIC_NAME)  # the run's critic gives the architecture
        load_state_dict_checked(critic, read_weights(critic_weights), source=str(critic_weights))
        save_critic(critic, args.out / CRITIC_NAME)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        sys.exit(f"error: {exc}")
