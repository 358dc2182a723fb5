"""What a new user pays to install colorgan and colorize the sample (issue 15).

Why: the README's first line is ``pip install -e . && colorgan colorize``; its cost is the
size of the environment it builds and the time until the first colorized photo. Issue 15
targets at most 400 MB for the base environment.

How: a fresh ``python -m venv`` in a temporary folder, with the venv's bundled pip, not
upgraded, and this machine's pip configuration and cache as they are (nothing cleared), as
a new user on this machine would have them. Timed, in wall seconds: ``pip install -e
SOURCE[EXTRAS]``, then one whole run of ``colorgan colorize`` (the bundled sample) in a
temporary working directory. Then the venv's size on disk (apparent bytes, each inode once,
as ``du -sb``; MB = 1e6 bytes) and its largest distributions (the files listed in each
``*.dist-info/RECORD``). Prints a Markdown block; ``--record`` adds it to
``benchmarks/RESULTS.md`` under "## Install size and time (issue 15)". Uses the standard
library only, so it runs from any Python >= 3.11.

    python benchmarks/install.py --source PATH --label TEXT [--extras train] [--record]
    python benchmarks/install.py --packages "onnxruntime>=1.18" "numpy>=1.26" --label TEXT

``--packages`` measures a plain set of requirements instead of a checkout (no colorize step).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Install size and time (issue 15)"
TARGET_MB = 400
TOP = 12
# Variables of this shell that a new user's shell would not have; they change what pip
# writes (no .pyc files) or where Python looks for packages.
DROP_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE",
            "VIRTUAL_ENV", "PYTHONNOUSERSITE")


@dataclass
class Step:
    command: str
    seconds: float
    returncode: int
    log_tail: str = ""


@dataclass
class Measurement:
    label: str
    what: str
    venv: Step
    install: Step
    colorize: Step | None
    venv_bytes: int
    distributions: list[tuple[str, str, int]]  # (name, version, bytes), largest first
    unattributed_bytes: int
    pip_version: str
    pip_cache: str
    load_before: float
    load_after: float
    notes: list[str] = field(default_factory=list)


def clean_env(venv: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: list[str], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 3600) -> Step:
    """Run ``cmd`` with its output in ``log``; wall seconds and exit code."""
    t0 = time.perf_counter()
    with log.open("wb") as out:
        try:
            rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    seconds = time.perf_counter() - t0
    tail = log.read_text(errors="replace")[-3000:] if rc else ""
    return Step(" ".join(cmd), seconds, rc, tail)


def du_bytes(path: Path) -> int:
    """Apparent size of everything under ``path``, each inode once (``du -sb``)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [".", *dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"no site-packages under {venv}")
    return found[0]


def distributions(site: Path) -> list[tuple[str, str, int]]:
    """(name, version, bytes on disk) of each installed distribution, from its RECORD."""
    seen: set[tuple[int, int]] = set()
    dists = []
    for info in sorted(site.glob("*.dist-info")):
        name, version = info.name.removesuffix(".dist-info"), ""
        meta = info / "METADATA"
        if meta.exists():
            for line in meta.read_text(errors="replace").splitlines():
                if line.startswith("Name: "):
                    name = line[6:].strip()
                elif line.startswith("Version: "):
                    version = line[9:].strip()
                elif not line:
                    break
        size = 0
        record = info / "RECORD"
        rows = list(csv.reader(record.read_text(errors="replace").splitlines())) if record.exists() else []
        for row in rows:
            if not row:
                continue
            path = Path(os.path.normpath(site / row[0]))
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                size += st.st_size
        dists.append((name, version, size))
    return sorted(dists, key=lambda d: -d[2])


def measure(label: str, what: str, install_args: list[str], source: Path | None,
            keep: bool) -> Measurement:
    tmp = Path(tempfile.mkdtemp(prefix="colorgan-install-"))
    venv, work = tmp / "venv", tmp / "work"
    work.mkdir()
    load_before = os.getloadavg()[0]
    try:
        print(f"[install] venv in {venv}", file=sys.stderr)
        venv_step = run([sys.executable, "-m", "venv", str(venv)], tmp / "venv.log", env=clean_env())
        if venv_step.returncode:
            raise SystemExit(f"python -m venv failed:\n{venv_step.log_tail}")
        py, env = str(venv / "bin" / "python"), clean_env(venv)
        pip_version = subprocess.run([py, "-m", "pip", "--version"], env=env, capture_output=True,
                                     text=True, check=True).stdout.split()[1]
        cache = subprocess.run([py, "-m", "pip", "cache", "dir"], env=env, capture_output=True,
                               text=True, check=False).stdout.strip() or "(none)"
        print(f"[install] pip {pip_version}, cache {cache}: pip install {' '.join(install_args)}",
              file=sys.stderr)
        install = run([py, "-m", "pip", "install", *install_args], tmp / "pip.log", cwd=work, env=env)
        install.command = "pip install " + " ".join(install_args)
        if install.returncode:
            print(f"[install] pip failed ({install.returncode}):\n{install.log_tail}", file=sys.stderr)
        colorize = None
        if source is not None and install.returncode == 0:
            print("[install] colorgan colorize", file=sys.stderr)
            colorize = run([str(venv / "bin" / "colorgan"), "colorize"], tmp / "colorize.log",
                           cwd=work, env=env)
            colorize.command = "colorgan colorize"
            outputs = sorted(p.name for p in (work / "colorized").glob("*")) if (work / "colorized").is_dir() else []
            if colorize.returncode:
                print(f"[install] colorize failed ({colorize.returncode}):\n{colorize.log_tail}",
                      file=sys.stderr)
        # The size of the environment as installed: measured after the first run, which is
        # what a user has on disk (the run itself adds nothing to the venv beyond caches).
        venv_bytes = du_bytes(venv)
        dists = distributions(site_packages(venv))
        measured = Measurement(
            label=label, what=what, venv=venv_step, install=install, colorize=colorize,
            venv_bytes=venv_bytes, distributions=dists,
            unattributed_bytes=venv_bytes - sum(d[2] for d in dists), pip_version=pip_version,
            pip_cache=cache, load_before=load_before, load_after=os.getloadavg()[0])
        if colorize is not None:
            measured.notes.append(f"`colorgan colorize` wrote `colorized/{', '.join(outputs) or '(nothing)'}`")
        return measured
    finally:
        if keep:
            print(f"[install] kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def git_describe(source: Path) -> str:
    head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    if head.returncode:
        return "not a git checkout"
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f}"


def status(step: Step) -> str:
    return "" if step.returncode == 0 else f" (**exit {step.returncode}**)"


def shown_command(argv: list[str]) -> str:
    """The command line as run, less the notes (listed below it; they may hold backticks)."""
    shown, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--note="):
            skip = False
            continue
        if arg == "--note":
            skip = True
            continue
        shown.append(arg)
    return shlex.join(["python", "benchmarks/install.py", *shown])


def markdown(m: Measurement, argv: list[str], extra_notes: list[str]) -> str:
    verdict = "met" if m.venv_bytes <= TARGET_MB * 1e6 else "not met"
    lines = [
        f"### {m.label}",
        "",
        (f"{dt.date.today().isoformat()}, `{shown_command(argv)}`: {m.what}. "
         f"A fresh venv of Python {platform.python_version()} ({platform.machine()}, {os.cpu_count()} cores) "
         f"with its bundled pip {m.pip_version}, not upgraded; this machine's pip configuration "
         f"and its normal pip cache (`{m.pip_cache}`, not cleared), so wheels already downloaded "
         f"once are not downloaded again. Load average {m.load_before:.2f} before, {m.load_after:.2f} after."),
        "",
    ]
    for note in [*extra_notes, *m.notes]:
        lines += [f"- {note}"]
    if extra_notes or m.notes:
        lines.append("")
    lines += [
        "| step | result |",
        "| --- | ---: |",
        f"| `python -m venv` | {m.venv.seconds:.1f} s |",
        f"| `{m.install.command}` | **{m.install.seconds:.0f} s**{status(m.install)} |",
    ]
    if m.colorize is not None:
        lines.append(f"| `{m.colorize.command}` (bundled sample, first run) | **{m.colorize.seconds:.1f} s**{status(m.colorize)} |")
    lines += [
        f"| venv on disk (`du -sb`) | **{mb(m.venv_bytes)} MB** (target ≤ {TARGET_MB} MB: {verdict}) |",
        f"| distributions installed | {len(m.distributions)} |",
        "",
        "| largest distributions | version | MB |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| {name} | {version} | {mb(size)} |" for name, version, size in m.distributions[:TOP]]
    rest = m.distributions[TOP:]
    lines.append(f"| the other {len(rest)} | | {mb(sum(d[2] for d in rest))} |")
    lines.append(f"| not in any RECORD (the interpreter's links, folders, caches) | | {mb(m.unattributed_bytes)} |")
    return "\n".join(lines) + "\n"


def record(block: str, path: Path = RESULTS) -> None:
    """Add ``block`` at the end of the issue-15 section (made after the title if absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    if not text.endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == HEADING), None)
    if start is None:
        # newest section first, as in the rest of the file: right after the "# ..." title
        title = next((i for i, line in enumerate(lines) if line.startswith("# ")), -1)
        new = ["\n", HEADING + "\n", "\n", block]
        lines[title + 1:title + 1] = new if title >= 0 else new[1:] + ["\n"]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        lines[end:end] = ["\n", block] + (["\n"] if end < len(lines) and lines[end].strip() else [])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", type=Path, help="a checkout of colorgan to install with pip install -e")
    what.add_argument("--packages", nargs="+", metavar="SPEC", help="requirements to install instead (no colorize step)")
    parser.add_argument("--label", required=True, help="heading of the result, e.g. 'before (c6604e6)'")
    parser.add_argument("--extras", default="", help="extras of colorgan, comma-separated ('' for the base install)")
    parser.add_argument("--note", action="append", default=[], help="a line to add to the result (repeatable)")
    parser.add_argument("--record", action="store_true", help=f"add the result to {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary venv")
    args = parser.parse_args()

    if args.source is not None:
        source = args.source.resolve()
        if not (source / "pyproject.toml").exists():
            parser.error(f"{source} has no pyproject.toml")
        target = f"{source}[{args.extras}]" if args.extras else str(source)
        install_args = ["-e", target]
        what = (f"colorgan at {git_describe(source)}"
                + (f" with the extras [{args.extras}]" if args.extras else ", base install"))
    else:
        source, install_args = None, list(args.packages)
        what = "a plain set of requirements, no colorgan"
    m = measure(args.label, what, install_args, source, args.keep)
    block = markdown(m, sys.argv[1:], args.note)
    print(block)
    if args.record:
        record(block)
        print(f"[install] recorded in {RESULTS}", file=sys.stderr)
    failed = m.install.returncode or (m.colorize is not None and m.colorize.returncode)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
