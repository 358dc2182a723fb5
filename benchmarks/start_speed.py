"""Issue 31: the start, a 12 MP JPEG stage by stage, folders and the int8 network, against a
reference commit and a minimal script, in one run.

Every number is measured for both sides in the same run, each in its own process, as in
``light_speed.py``: the reference ("before") runs from a git worktree of ``--before``, this tree
("after") from its own sources, both through ``PYTHONPATH`` with this machine's packages.

- ``start``: ``colorgan colorize`` of the bundled 512 px sample as a whole process (median of
  ``--repeats``), against a minimal script: NumPy, Pillow and ONNX Runtime, the shipped
  model.onnx loaded and run once on the sample at the model's size, a JPEG written. Also
  ``colorgan --version`` and ``--help``.
- ``stages``: a 12 MP JPEG -> JPEG with a loaded ``Colorizer``, each stage timed (decode, model
  input, network, recombination, JPEG encoding, file write), best of ``--repeats``; then as a
  whole process (with its peak RSS), against a Pillow process that only decodes and re-encodes it.
- ``folder``: ``colorgan colorize DIR`` of ``--photos`` 12 MP JPEGs: photos per minute, peak RSS.
- ``network``: images/s at 256 px, batch 1, of the model's model.onnx and of ``--int8``'s
  model.int8.onnx (``colorgan export int8`` writes one), alternating in one process.

Usage: ``python benchmarks/start_speed.py [--before 3bb0746] [--parts start,stages,folder,network]
[--int8 MODEL_FOLDER] [--record]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_name, print_and_record
from light_speed import make_photos, median_run, run

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "src" / "colorgan" / "assets" / "models" / "default"
SAMPLE = ROOT / "src" / "colorgan" / "assets" / "samples" / "camera.jpg"
PARTS = ("start", "stages", "folder", "network")

MINIMAL = r"""
import json, sys
import numpy as np
import onnxruntime as ort
from PIL import Image
model, photo, out = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
size = json.loads(session.get_modelmeta().custom_metadata_map["colorgan"])["size"]  # the model's own size
gray = Image.open(photo).convert("L")
l = np.asarray(gray.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 127.5 - 1.0
feed = {"l": l[None, None]}
feed.update({node.name: np.zeros((1, node.shape[1], size, size), np.float32) for node in session.get_inputs()[1:]})
session.run(["ab"], feed)
Image.merge("RGB", [gray] * 3).save(out, quality=95)
"""

PILLOW = "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], quality=95)"

STAGES = r"""
import io, json, sys, time
from pathlib import Path
from colorgan import Colorizer
from colorgan.files.images import save_image
from colorgan.photo import read_photo
photo_path, out, repeats = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
colorizer = Colorizer.from_pretrained(device="cpu")
size = colorizer.size
def best(step):
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter(); result = step(); times.append(time.perf_counter() - start)
    return result, min(times[1:])
photo, decode = best(lambda: read_photo(photo_path))
l, model_input = best(lambda: colorizer.model_inputs([photo], size))
ab, network = best(lambda: colorizer.predict_ab(l))
image, recombine = best(lambda: colorizer.recombine(photo, ab[0], l[0]))
_, encode = best(lambda: image.save(io.BytesIO(), format="JPEG", quality=95))
_, save = best(lambda: save_image(image, out, fmt="jpg"))
_, total = best(lambda: save_image(colorizer.colorize(photo_path), out, fmt="jpg"))
print(json.dumps({"decode": decode, "model input": model_input, "network": network, "recombination": recombine,
                  "JPEG encoding": encode, "file write": max(0.0, save - encode), "total": total}))
"""

NETWORK = r"""
import json, sys, time
import numpy as np
from colorgan import Colorizer
models = {name: Colorizer.from_pretrained(path, device="cpu", precision=precision)
          for name, path, precision in json.loads(sys.argv[1])}
l = np.random.default_rng(0).uniform(-1, 1, (1, 1, 256, 256)).astype(np.float32)
rates = {name: [] for name in models}
for _ in range(3):  # alternating rounds, so that a load change touches both
    for name, colorizer in models.items():
        for _ in range(3):
            colorizer.predict_ab(l)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 3:
            colorizer.predict_ab(l)
            n += 1
        rates[name].append(n / (time.perf_counter() - start))
print(json.dumps({name: max(values) for name, values in rates.items()}))
"""


def python(code: str, *args: str, side: Path | None = None) -> str:
    """Run ``code`` in a fresh Python with ``side``'s sources; its last line of stdout."""
    env = dict(os.environ, PYTHONPATH=str(side / "src")) if side is not None else None
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def wall(code: str, *args: str, repeats: int) -> float:
    """Median wall seconds of a whole ``python -c code`` process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        python(code, *args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_start(sides: dict[str, Path], work: Path, repeats: int) -> dict[str, float]:
    r = {"minimal": wall(MINIMAL, str(MODEL / "model.onnx"), str(SAMPLE), str(work / "minimal.jpg"), repeats=repeats)}
    for name, side in sides.items():
        cwd = work / f"start_{name}"
        cwd.mkdir(exist_ok=True)
        r[name], r[f"{name}_mb"] = median_run(side, ["colorize"], cwd, repeats)
        r[f"{name}_version"], _ = median_run(side, ["--version"], cwd, repeats)
        r[f"{name}_help"], _ = median_run(side, ["--help"], cwd, repeats)
    r["minimal"] = min(r["minimal"], wall(MINIMAL, str(MODEL / "model.onnx"), str(SAMPLE), str(work / "minimal.jpg"), repeats=repeats))
    r["after_first"] = statistics.median(first_start(sides["after"], work / "start_after", work / f"cache{i}") for i in range(3))
    return r


def first_start(side: Path, cwd: Path, cache: Path) -> float:
    """Seconds of a ``colorgan colorize`` of the sample with an empty model cache (a first start)."""
    saved = os.environ.get("COLORGAN_CACHE")
    os.environ["COLORGAN_CACHE"] = str(cache)
    try:
        return median_run(side, ["colorize"], cwd, 1)[0]
    finally:
        if saved is None:
            del os.environ["COLORGAN_CACHE"]
        else:
            os.environ["COLORGAN_CACHE"] = saved


def measure_stages(sides: dict[str, Path], work: Path, photo: Path, repeats: int) -> dict[str, dict[str, float]]:
    r: dict[str, dict[str, float]] = {}
    for name, side in sides.items():
        r[name] = json.loads(python(STAGES, str(photo), str(work / f"stages_{name}.jpg"), str(repeats), side=side))
        cwd = work / f"stages_{name}"
        cwd.mkdir(exist_ok=True)
        r[name]["process"], r[name]["process_mb"] = median_run(side, ["colorize", str(photo), "-o", "colorized.jpg", "-q"], cwd, repeats)
    r["pillow"] = {"process": wall(PILLOW, str(photo), str(work / "pillow.jpg"), repeats=repeats)}
    r["minimal"] = {"process": wall(MINIMAL, str(MODEL / "model.onnx"), str(SAMPLE), str(work / "minimal.jpg"), repeats=repeats)}
    return r


def measure_folder(sides: dict[str, Path], work: Path, photos: Path, count: int) -> dict[str, float]:
    r = {}
    for name, side in sides.items():
        out = work / f"folder_{name}"
        seconds, mb = run(side, ["colorize", str(photos), "-o", str(out), "-q"], work)
        r[name], r[f"{name}_mb"] = count / seconds * 60, mb
        shutil.rmtree(out)
    return r


def measure_network(int8: Path | None) -> dict[str, float]:
    models = [("fp32", str(MODEL), "fp32")] + ([("int8", str(int8), "int8")] if int8 is not None else [])
    return json.loads(python(NETWORK, json.dumps(models), side=ROOT))


def markdown(part: str, r: dict, args: argparse.Namespace) -> str:
    """The part's results as a Markdown table, with the machine and the command."""
    command = f"python benchmarks/start_speed.py --before {args.before} --parts {part}"
    command += {"folder": f" --photos {args.photos}", "network": f" --int8 {args.int8}" if args.int8 else ""}.get(part, "")
    head = [f"### Issue 31 speed: {part}, before ({args.before}) vs after, {time.strftime('%Y-%m-%d')}", "",
            f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}. Command: `{command}`.", ""]
    if part == "start":
        rows = [("`colorgan colorize` (512 px sample), whole process, median of %d" % args.repeats, r["before"], r["after"]),
                ("minimal script (NumPy, Pillow, ONNX Runtime; model.onnx run once; a JPEG)", r["minimal"], r["minimal"]),
                ("ratio to the minimal script (target ≤ 1.25)", r["before"] / r["minimal"], r["after"] / r["minimal"]),
                ("`colorgan colorize`, first start (empty model cache), median of 3", r["before"], r["after_first"]),
                ("`colorgan --version`", r["before_version"], r["after_version"]),
                ("`colorgan --help`", r["before_help"], r["after_help"])]
        body = ["| measure | before | after |", "| --- | ---: | ---: |",
                *(f"| {m} | {x:.2f}{'' if 'ratio' in m else ' s'} | {y:.2f}{'' if 'ratio' in m else ' s'} |" for m, x, y in rows)]
    elif part == "stages":
        b, a = r["before"], r["after"]
        stages = ["decode", "model input", "network", "recombination", "JPEG encoding", "file write"]
        body = ["| 12 MP JPEG -> JPEG, loaded `Colorizer` (best of %d) | before | share | after | share |" % args.repeats,
                "| --- | ---: | ---: | ---: | ---: |",
                *(f"| {s_} | {b[s_] * 1e3:.0f} ms | {b[s_] / sum(b[k] for k in stages):.0%} | {a[s_] * 1e3:.0f} ms | "
                  f"{a[s_] / sum(a[k] for k in stages):.0%} |" for s_ in stages),
                f"| colorize + save, in one call (target ≤ 0.25 s) | {b['total']:.2f} s | | {a['total']:.2f} s | |",
                f"| whole `colorgan colorize` process | {b['process']:.2f} s | | {a['process']:.2f} s | |",
                f"| its peak RSS (target ≤ 400 MB) | {b['process_mb']:.0f} MB | | {a['process_mb']:.0f} MB | |",
                f"| target for the process: minimal script + 2 × Pillow decode/encode process | "
                f"{r['minimal']['process'] + 2 * r['pillow']['process']:.2f} s | | | |"]
    elif part == "folder":
        body = [f"| folder of {args.photos} × 12 MP JPEGs -> JPEG | before | after |", "| --- | ---: | ---: |",
                f"| photos per minute (target ≥ 300) | {r['before']:.0f} | {r['after']:.0f} |",
                f"| peak RSS (target ≤ 400 MB) | {r['before_mb']:.0f} MB | {r['after_mb']:.0f} MB |"]
    else:
        body = ["| network at 256 px, batch 1 (this tree) | images/s |", "| --- | ---: |",
                *(f"| {name} | {rate:.1f} |" for name, rate in r.items())]
        if "int8" in r:
            body.append(f"| int8 / fp32 (target ≥ 1.6) | {r['int8'] / r['fp32']:.2f}x |")
    return "\n".join([*head, *body, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="3bb0746", help="the reference commit")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--photos", type=int, default=100, help="12 MP photos in the folder run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--int8", type=Path, help="a model folder with a model.int8.onnx, for the network part")
    parser.add_argument("--work", type=Path, help="a folder to keep the generated photos in between runs")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()
    parts = args.parts.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="colorgan-start-"))
    photos = work / f"photos_{args.photos}"
    if not photos.is_dir() and {"stages", "folder"} & set(parts):
        make_photos(photos, args.photos)
    before = Path(tempfile.mkdtemp(prefix="colorgan-before-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before], check=True, capture_output=True)
    sides = {"before": before, "after": ROOT}
    try:
        for part in parts:
            with tempfile.TemporaryDirectory(prefix=f"colorgan-{part}-") as tmp:
                results = {"start": lambda: measure_start(sides, Path(tmp), args.repeats),
                           "stages": lambda: measure_stages(sides, Path(tmp), next(photos.iterdir()), args.repeats),
                           "folder": lambda: measure_folder(sides, Path(tmp), photos, args.photos),
                           "network": lambda: measure_network(args.int8)}[part]()
            print(part, json.dumps(results), flush=True)
            print_and_record(markdown(part, results, args), args.record)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
