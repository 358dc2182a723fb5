"""Choose the guided upsampling's radius and regularization on training photos (never on val).

The model runs once per photo; each (radius, eps) then only re-joins its colors to the photo,
scored at the photo's own size (PSNR and the edge a*b* error of :mod:`colorgan.evaluation.metrics`):

    python tools/tune_upsampling.py ../shared/data/train/bsds500 ../shared/data/train/packages --min-side 256
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from colorgan import Colorizer, render
from colorgan.evaluation.evaluate import color_pixels, gray_input
from colorgan.files.discovery import find_images
from colorgan.evaluation.metrics import edge_ab_error, psnr
from colorgan.photo import read_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--min-side", type=int, default=256)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--radii", default="1,2,3,4")
    parser.add_argument("--eps-lightness", default="3,5,7,10,15", help="sqrt(eps) in L* units")
    parser.add_argument("--model")
    args = parser.parse_args()
    colorizer = Colorizer.from_pretrained(args.model)
    cases = []
    for folder in args.folders:
        for path in find_images(folder):
            photo = read_photo(path)
            if min(photo.image.size) < args.min_side:
                continue
            rgb = color_pixels(photo)
            if rgb is None:
                continue
            gray = read_photo(gray_input(rgb))
            model_l = render.model_input(gray, colorizer.size)
            ab = colorizer.predict_ab(model_l[None])[0]
            cases.append((gray, rgb, model_l, ab))
            if len(cases) >= args.limit:
                break
    print(f"{len(cases)} photos")

    def score(guide_of, **kwargs):
        p, e = [], []
        for gray, rgb, model_l, ab in cases:
            out = np.asarray(render.recombine(gray, ab, guide=guide_of(model_l), **kwargs))
            p.append(psnr(out[None], rgb[None])[0])
            e.append(edge_ab_error(out[None], rgb[None])[0])
        return np.mean(p), np.nanmean(e)

    base_p, base_e = score(lambda _: None)
    print(f"bilinear: PSNR {base_p:.3f}  edge {base_e:.3f}")
    for r, el in itertools.product([int(x) for x in args.radii.split(",")], [float(x) for x in args.eps_lightness.split(",")]):
        render.GUIDE_RADIUS, render.GUIDE_EPS = r, (el / 116.0) ** 2  # what recombine's guided filter reads
        p, e = score(lambda l: l)
        print(f"r={r} eps=({el}/116)^2: PSNR {p:.3f} ({p - base_p:+.3f})  edge {e:.3f} ({(e / base_e - 1) * 100:+.1f} %)")

if __name__ == "__main__":
    main()
