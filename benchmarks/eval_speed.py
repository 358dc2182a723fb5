"""How long ``colorgan evaluate`` takes on 1,000 photos at 256 px (issue 4), without FID.

Runs the gray baseline (reading, gray conversion and scoring alone) and then the model
with each backend, and prints one Markdown row per run for ``benchmarks/RESULTS.md``:
wall time, this process's CPU time and the machine's load average, because a machine
shared with other jobs stretches wall time (OpenMP threads wait on each other).
The model is the bundled default when there is one, else a freshly built ``resunet``:
the time does not depend on the weights, only on the architecture and input size.

    python benchmarks/eval_speed.py [--data ../shared/data/val] [--limit 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from colorgan.evaluation.evaluate import EvalSettings, evaluate
from colorgan.model.files import DEFAULT_MODEL, MODELS_DIR, bundled_models
from colorgan.model.artifact import save_pretrained
from colorgan.networks import build_generator

ROOT = Path(__file__).resolve().parents[1]


def model_for_benchmark(workdir: Path) -> tuple[str, str]:
    """(path, description) of the model to time: the bundled default, or an untrained resunet."""
    if DEFAULT_MODEL in bundled_models():
        return str(MODELS_DIR / DEFAULT_MODEL), "bundled default"
    save_pretrained(build_generator("resunet"), workdir / "resunet", size=256)
    return str(workdir / "resunet"), "untrained resunet (no bundled default yet), size 256"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch threads {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        model, description = model_for_benchmark(Path(tmp))
        runs = [("gray baseline", EvalSettings(data=args.data, baseline="gray", limit=args.limit))]
        runs += [(f"{description}, {backend}", EvalSettings(data=args.data, model=model, limit=args.limit, device="cpu", backend=backend))
                 for backend in args.backends]
        print("| run | photos | wall s | ms / photo | CPU s (this process) | load average before |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, settings in runs:
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            report = evaluate(settings).report
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"| {name} | {report['n']} | {seconds:.1f} | {1000 * seconds / report['n']:.0f} | {cpu:.1f} | {load:.1f} |", flush=True)


if __name__ == "__main__":
    main()
