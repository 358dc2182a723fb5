"""`colorgan colorize --engine ray`: the folder job on a local Ray instance (2 CPUs) gives the same
files as the plain job, reports bad photos without stopping, and a killed worker costs nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")



@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray instance for the in-process jobs of this module (starting one takes seconds)."""
    yield
    if ray.is_initialized():
        ray.shutdown()


def photos(folder: Path, n: int, size: tuple[int, int] = (96, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        small = rng.random((6, 8)) * 200 + 20
        Image.fromarray(small.astype(np.float32)).resize(size, Image.Resampling.BICUBIC).convert("L").save(folder / f"p{i:03d}.png")
    return folder


def same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in b.iterdir() if not p.name.startswith("."))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_ray_gives_the_plain_jobs_files_and_reports_bad_photos(tmp_path: Path, cli) -> None:
    source = photos(tmp_path / "scans", 12)
    (source / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert cli("colorize", source, "-o", tmp_path / "plain", "-q")[0] == 1
    code, out, err = cli("colorize", source, "-o", tmp_path / "ray", "--engine", "ray", "--actors", "2",
                            "--report", tmp_path / "report.json")
    assert code == 1  # one photo failed; the run went on
    assert "12 done, 0 skipped, 1 failed" in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "torn.png" in errors[0]
    same_files(tmp_path / "plain", tmp_path / "ray")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"] == {"done": 12, "skipped": 0, "failed": 1}
    assert [f["status"] for f in report["files"] if f["source"].endswith("torn.png")] == ["failed"]
    code, out, _ = cli("colorize", source, "-o", tmp_path / "ray", "--engine", "ray")
    assert "0 done, 12 skipped, 1 failed" in out  # a rerun skips what exists


def test_ray_flags_without_the_engine_and_videos_on_ray_are_refused(tmp_path: Path, cli) -> None:
    source = photos(tmp_path / "scans", 1)
    (source / "reel.mp4").write_bytes(b"\x00" * 64)
    code, _, err = cli("colorize", source, "--engine", "ray")
    assert code == 2 and "is a video: colorize videos without it" in err
    (source / "reel.mp4").unlink()
    code, _, err = cli("colorize", source, "--actors", "2")
    assert code == 2 and "go with --engine ray" in err
    code, _, err = cli("colorize", source, "--engine", "spark")
    assert code == 2 and "unknown --engine" in err
    code, _, err = cli("colorize", source, "--engine", "ray", "--actors", "0")
    assert code == 2 and "--actors must be at least 1" in err


def _worker_pids() -> list[int]:
    """The processes of colorgan's Ray actors (Ray names them after the actor class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ColorizeActor" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker through /proc")
def test_a_worker_killed_mid_run_and_a_rerun_leave_every_output_correct(tmp_path: Path, cli) -> None:
    source = photos(tmp_path / "scans", 48, size=(640, 480))
    assert cli("colorize", source, "-o", tmp_path / "plain", "-q")[0] == 0
    out = tmp_path / "ray"
    command = [sys.executable, "-c", "from colorgan.cli import main; main()", "colorize", str(source), "-o", str(out),
               "--engine", "ray", "-q"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
        killed = _worker_pids()
        assert killed, "no colorgan worker found to kill"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        done_when_killed = len(list(out.glob("*.png")))
        _, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
    assert done_when_killed < 48  # the worker died mid-run
    assert len(list(out.glob("*.png"))) == 48 and job.returncode == 0  # Ray restarted it and the job finished
    said = err.decode(errors="replace")
    assert not any(w in said for w in ("Traceback", "raylet", "core_worker", "logging.cc")), said[-2000:]  # -q: Ray's logs stay Ray's
    rerun = subprocess.run([c for c in command if c != "-q"], capture_output=True, text=True, timeout=180, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ray_lines = [line for line in rerun.stderr.splitlines() if any(w in line for w in ("core_worker", "raylet", "Traceback", "logging.cc"))]
    assert not ray_lines, rerun.stderr[-2000:]
    assert "48 skipped" in rerun.stdout  # quiet by default, and still the job's own summary
    same_files(tmp_path / "plain", out)  # every output whole and correct, none missing or extra


def test_the_python_form_returns_each_files_outcome(tmp_path: Path) -> None:
    from colorgan.colorize.job import colorize_folder_on_ray

    source = photos(tmp_path / "scans", 3)
    outcomes = colorize_folder_on_ray([source], tmp_path / "out", actors=1, fmt="jpg")
    assert [o.status for o in outcomes] == ["done"] * 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p000.jpg", "p001.jpg", "p002.jpg"]


def test_storage_uris_are_read_and_written_through_pyarrow(tmp_path: Path, cli) -> None:
    source = photos(tmp_path / "scans" / "box1", 4)
    (source / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert cli("colorize", tmp_path / "scans", "-o", tmp_path / "plain", "-q")[0] == 1
    code, out, err = cli("colorize", f"file://{tmp_path / 'scans'}", "-o", f"file://{tmp_path / 'remote'}",
                            "--engine", "ray", "--report", tmp_path / "report.json")
    assert code == 1 and "4 done, 0 skipped, 1 failed" in out and "torn.png" in err
    same_files(tmp_path / "plain" / "box1", tmp_path / "remote" / "box1")  # the same bytes, mirrored alike
    assert not [p for p in (tmp_path / "remote" / "box1").iterdir() if p.name.startswith(".")]  # no temporaries left
    code, out, _ = cli("colorize", f"file://{tmp_path / 'scans'}", "-o", f"file://{tmp_path / 'remote'}", "--engine", "ray")
    assert "0 done, 4 skipped, 1 failed" in out
    code, _, err = cli("colorize", f"file://{tmp_path / 'scans'}", "-o", tmp_path / "local")
    assert code == 2 and "add it" in err  # URIs need --engine ray


def test_storage_uris_keep_odd_names_mirror_like_the_folder_job_and_never_overwrite_inputs(tmp_path: Path, cli) -> None:
    scans = tmp_path / "scans"
    photos(scans / "box #2", 1)
    (scans / "box #2" / "p000.png").rename(scans / "box #2" / "50% gray.png")
    photos(scans, 2)
    Image.open(scans / "p000.png").save(scans / "p000.bmp")  # p000.png and p000.bmp: the same stem
    code, out, err = cli("colorize", f"file://{scans}", "-o", f"file://{scans}/color", "--engine", "ray", "-q")
    assert code == 0, err
    written = sorted(str(p.relative_to(scans / "color")) for p in (scans / "color").rglob("*") if p.is_file())
    assert written == ["box #2/50% gray.png", "p000.bmp.png", "p000.png.png", "p001.png"]
    code, out, _ = cli("colorize", f"file://{scans}", "-o", f"file://{scans}/color", "--engine", "ray")
    assert "0 done, 4 skipped" in out and not (scans / "color" / "color").exists()  # outputs are not inputs
    before = (scans / "p001.png").read_bytes()
    code, _, err = cli("colorize", f"file://{scans}", "-o", f"file://{scans}", "--engine", "ray", "--format", "png",
                          "--overwrite")
    assert code == 2 and "refusing to write over" in err and "choose another output (-o) or --format" in err
    assert (scans / "p001.png").read_bytes() == before
    code, _, err = cli("colorize", f"file://{scans}", "-o", f"file://{tmp_path}/one.png", "--engine", "ray")
    assert code == 2 and "names a folder" in err
