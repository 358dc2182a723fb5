"""Choose how a model's color head shapes its colors (``chroma_gamma``, ``annealed_blend``), on
training photos (never on val), and write the chosen model:

    python tools/tune_color_head.py runs/head --data pack/train --per-folder 40 \
        --gammas 0,0.5,1,2 --blends 0,0.25 --out runs/head_tuned --choose 1,0

Each setting colorizes the same photos through ``colorgan evaluate``'s scoring path (256 px
protocol); the table shows PSNR, colorfulness (and ΔCF), spurious and blotched rates. With
``--choose GAMMA,BLEND`` the model is written to ``--out`` with those settings in its model.json.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
from pathlib import Path

from colorgan.errors import UserError
from colorgan.evaluation.evaluate import score_colorizer
from colorgan.files.discovery import find_images, top_folder
from colorgan.colorizer import Colorizer
from colorgan.model.backends import torch_predictor
from colorgan.model.files import CRITIC_NAME
from colorgan.model.artifact import load_pretrained, save_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="training photos (not the validation set)")
    parser.add_argument("--per-folder", type=int, default=40)
    parser.add_argument("--gammas", default="0,0.5,1,2")
    parser.add_argument("--blends", default="0,0.25")
    parser.add_argument("--choose", help="GAMMA,BLEND to write to --out")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    generator, meta = load_pretrained(args.model)
    if generator.color_head is None:
        raise UserError(f"{args.model} has no color head (train one with --color-head)")
    taken: dict[str, int] = {}
    paths = []
    for path in find_images(args.data)[::7]:  # spread over each folder's photos, the same every run
        folder = top_folder(path.relative_to(args.data))
        if taken.get(folder, 0) < args.per_folder:
            taken[folder] = taken.get(folder, 0) + 1
            paths.append(path)
    print(f"{len(paths)} photos from {len(taken)} folders of {args.data}")
    print("| gamma | blend | PSNR | CF | ΔCF | spurious % | blotched % |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for gamma, blend in itertools.product(*(map(float, s.split(",")) for s in (args.gammas, args.blends))):
        generator.color_head.gamma, generator.color_head.blend = gamma, blend
        colorizer = Colorizer(predict=torch_predictor(generator, "cpu"), size=meta["size"], size_multiple=generator.size_multiple,
                              meta=meta, cond_channels=generator.cond_channels)
        result, _ = score_colorizer(colorizer, paths, data=args.data)
        m = result.summary()
        print(f"| {gamma:g} | {blend:g} | {m['psnr']:.2f} | {m['cf_pred']:.2f} | {m['delta_cf']:.2f} | {m['spurious']:.3f} | {m['blotched']:.2f} |")
    if args.choose:
        if args.out is None:
            raise UserError("--choose needs --out")
        gamma, blend = map(float, args.choose.split(","))
        generator.color_head.gamma, generator.color_head.blend = gamma, blend
        generator.config |= {"chroma_gamma": gamma, "annealed_blend": blend}
        save_pretrained(generator, args.out, size=meta["size"], training=meta.get("training"))
        critic = args.model / CRITIC_NAME if args.model.is_dir() else args.model.with_name(CRITIC_NAME)
        if critic.is_file():  # the critic goes with the model, for the next GAN sitting
            shutil.copyfile(critic, args.out / CRITIC_NAME)
        print(f"wrote {args.out} (chroma_gamma {gamma:g}, annealed_blend {blend:g}); `colorgan export bundle` makes its ONNX")


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        sys.exit(f"error: {exc}")
