"""``colorgan serve``: the plain HTTP API, the Gradio API, limits and behaviour under load.

One real server (``colorgan serve`` in a subprocess, tiny random model, loopback only, started
by conftest's ``start_server``) is shared by the module; the limiter and the capped upload
stream are also tested directly. Slow, greedy and hostile clients: ``test_serve_abuse.py``.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="colorgan serve needs the web extra (gradio)")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx")
psutil = pytest.importorskip("psutil", reason="the load test reads the server's RSS with psutil")

from colorgan.serve import Limiter, RequestError  # noqa: E402
from colorgan.serve.uploads import _capped_receive  # noqa: E402

if TYPE_CHECKING:
    from conftest import Server  # for annotations only: servers come from the start_server fixture

MAX_UPLOAD_MB = 1
MAX_MEGAPIXELS = 4


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's server: two photos at once, and limits small enough to reach in a test."""
    limits = ("--max-upload-mb", str(MAX_UPLOAD_MB), "--max-megapixels", str(MAX_MEGAPIXELS))
    with start_server(tmp_path_factory.mktemp("serve"), "--concurrency", "2", *limits) as running:
        yield running


def post(server: Server, content: bytes, filename: str = "photo.jpg", **fields: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/colorize", files={"image": (filename, content)}, data=fields, timeout=60)


def assert_error(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert words in response.json()["error"]


# --- the plain HTTP API --------------------------------------------------------------------

def test_health(server: Server) -> None:
    body = httpx.get(f"{server.url}/api/health", timeout=10).json()
    assert body["status"] == "ok"
    assert body["concurrency"] == 2
    assert body["max_upload_mb"] == MAX_UPLOAD_MB


@pytest.mark.parametrize(("size", "mode", "fields"), [((200, 150), "L", {}), ((97, 61), "RGB", {"size": "128"})])
def test_photo_comes_back_as_png_of_the_same_size(server: Server, jpeg_bytes, size, mode, fields) -> None:
    # a path-like file name must not matter: names from the request never touch the disk
    response = post(server, jpeg_bytes(size, mode=mode), filename="../../evil.jpg", **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    result = Image.open(io.BytesIO(response.content))
    assert (result.format, result.size, result.mode) == ("PNG", size, "RGB")
    assert not list(server.tmpdir.rglob("evil*"))


def test_corrupt_image_is_400(server: Server, jpeg_bytes) -> None:
    truncated = jpeg_bytes((400, 300))[:1500]
    assert_error(post(server, truncated), 400, "truncated")


@pytest.mark.parametrize("content", [b"just some text, not a photo\n", b""])
def test_non_image_is_400(server: Server, content: bytes) -> None:
    assert_error(post(server, content, filename="notes.png"), 400, "empty file" if not content else "not an image")


def test_missing_field_and_bad_size_are_400(server: Server, jpeg_bytes) -> None:
    response = httpx.post(f"{server.url}/api/colorize", files={"photo": ("a.jpg", jpeg_bytes())}, timeout=30)
    assert_error(response, 400, "named 'image'")
    assert_error(post(server, jpeg_bytes(), size="100"), 400, "the render size must be a positive multiple of 32")  # the library's own words
    assert_error(post(server, jpeg_bytes(), size="big"), 400, "whole number")


def test_hints_for_a_model_without_hint_channels_are_400(server: Server, jpeg_bytes) -> None:
    hints = '[{"x": 0.5, "y": 0.5, "color": "#fff"}]'
    assert_error(post(server, jpeg_bytes((64, 64)), hints=hints), 400, "takes no color hints")
    editor = httpx.post(f"{server.url}/api/photos", files={"image": ("p.jpg", jpeg_bytes((64, 64)))}, timeout=30)
    assert_error(editor, 400, "takes no color hints")


def test_oversize_upload_is_413(server: Server) -> None:
    big = os.urandom(MAX_UPLOAD_MB * 1024 * 1024 + 200_000)
    assert_error(post(server, big), 413, "too large")  # refused on its Content-Length

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused while it streams in
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]
        yield b"\r\n" + boundary + b"--\r\n"

    response = httpx.post(f"{server.url}/api/colorize", content=chunked(), timeout=30,
                          headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert_error(response, 413, "too large")


def test_too_many_megapixels_is_413_before_decoding(server: Server) -> None:
    buf = io.BytesIO()
    Image.new("L", (3000, 2000)).save(buf, format="PNG")  # 6 MP in a few kB
    assert len(buf.getvalue()) < 100_000
    assert_error(post(server, buf.getvalue(), filename="flat.png"), 413, "megapixels")


def test_gradio_api(server: Server, jpeg_bytes, tmp_path: Path) -> None:
    gradio_client = pytest.importorskip("gradio_client")
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes((123, 77)))
    client = gradio_client.Client(f"{server.url}/", verbose=False, download_files=str(tmp_path / "dl"))
    (before, after), png = client.predict(gradio_client.handle_file(str(path)), 64, api_name="/colorize")
    assert Image.open(before).size == Image.open(after).size == (123, 77)
    assert Image.open(png).format == "PNG"
    # Gradio's cache lies inside the server's own folder: a server killed with kill -9 leaves it
    # where the next start removes it (test_folders_of_killed_servers_are_removed_at_start)
    cached = server.gradio_files()
    assert cached and all(p.relative_to(server.tmpdir).parts[0].startswith("colorgan-serve-") for p in cached)


def test_load_all_succeed_and_memory_stays_bounded(server: Server, jpeg_bytes) -> None:
    photos = [jpeg_bytes((320, 240), seed=i) for i in range(20)]
    started = time.perf_counter()
    assert post(server, photos[0]).status_code == 200
    rss_first = psutil.Process(server.process.pid).memory_info().rss
    with ThreadPoolExecutor(len(photos)) as pool:
        responses = list(pool.map(lambda content: post(server, content), photos))
    rss_after = psutil.Process(server.process.pid).memory_info().rss
    assert [r.status_code for r in responses] == [200] * len(photos), [r.text for r in responses if r.status_code != 200]
    assert all(Image.open(io.BytesIO(r.content)).size == (320, 240) for r in responses)
    assert rss_after <= 1.5 * rss_first, f"RSS grew from {rss_first >> 20} MB to {rss_after >> 20} MB"
    assert server.api_files() == []  # uploads and results are gone once answered
    health = httpx.get(f"{server.url}/api/health", timeout=10).json()
    assert (health["running"], health["waiting"]) == (0, 0)
    print(f"\n21 requests in {time.perf_counter() - started:.1f} s; RSS {rss_first >> 20} -> {rss_after >> 20} MB")


# --- the pieces, directly ------------------------------------------------------------------

def test_limiter_queues_then_refuses() -> None:
    async def scenario() -> list[str]:
        limiter = Limiter(slots=1, max_waiting=1)
        release = asyncio.Event()
        events: list[str] = []

        async def job(name: str) -> None:
            try:
                async with limiter.slot():
                    events.append(f"{name} runs")
                    await release.wait()
            except RequestError as exc:
                events.append(f"{name} {exc.status}")

        first, second = asyncio.create_task(job("a")), asyncio.create_task(job("b"))
        await asyncio.sleep(0)
        assert (limiter.running, limiter.waiting) == (1, 1)
        await job("c")  # one running, one waiting: the third is refused at once
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert (limiter.running, limiter.waiting) == (0, 0)
        return events

    assert asyncio.run(scenario()) == ["a runs", "c 503", "b runs"]


def test_capped_receive_stops_big_bodies() -> None:
    # slow ones are the connection's to stop: test_serve_abuse.py
    async def scenario() -> None:
        async def endless() -> dict:
            return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

        capped = _capped_receive(endless, limit=2500, too_large=RequestError(413, "too large"))
        await capped()
        await capped()
        with pytest.raises(RequestError) as big:
            await capped()
        assert big.value.status == 413

    asyncio.run(scenario())


# --- start-up: a taken port, and what killed servers left behind ---------------------------

def test_busy_port_is_a_clear_error_with_exit_2(tiny_model: Path, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-c", "from colorgan.cli import main; main()", "serve", "--model", str(tiny_model),
             "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"port {port} is already in use; pick another with --port" in run.stderr
    assert "serving on" not in run.stdout + run.stderr  # no URL is announced for a server that never listens
    assert "Traceback" not in run.stderr and "Errno" not in run.stderr


def test_listening_socket_refuses_a_taken_port_and_a_bad_address() -> None:
    import socket

    from colorgan.errors import UserError
    from colorgan.serve.server import listening_socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} is already in use; pick another with --port"):
            listening_socket("127.0.0.1", port)
    with pytest.raises(UserError, match="cannot listen on"):
        listening_socket("no-such-host.invalid", 0)
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


_KILLED_SERVER = """
import os, signal, sys
from colorgan.serve.workdir import make_workdir
(make_workdir(sys.argv[1]) / "upload.jpg").write_bytes(b"x" * 1000)  # the upload in flight
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_folders_of_killed_servers_are_removed_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import tempfile

    from colorgan.serve import ColorizeService, ServeSettings
    from colorgan.serve.workdir import make_workdir, remove_stale_workdirs

    killed = subprocess.run([sys.executable, "-c", _KILLED_SERVER, str(tmp_path)], capture_output=True, check=False)
    assert killed.returncode == -9
    (dead,) = tmp_path.glob("colorgan-serve-*")
    assert (dead / "upload.jpg").exists()
    live = make_workdir(tmp_path)  # a server still running (this process)
    dead_pid = dead.name.removeprefix("colorgan-serve-").split("@")[0]
    other_host = tmp_path / f"colorgan-serve-{dead_pid}@00000000-abc"  # another machine's, sharing the folder
    old_style = tmp_path / "colorgan-serve-k3j4l5m6"  # no owner recorded: not ours to judge
    unrelated = tmp_path / "someone-else-123"
    for folder in (other_host, old_style, unrelated):
        folder.mkdir()
        (folder / "file").write_text("keep")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    service = ColorizeService(object(), ServeSettings())  # type: ignore[arg-type]
    try:
        assert not dead.exists()
        assert live.is_dir() and service.workdir.is_dir() and service.workdir.parent == tmp_path
        assert all((folder / "file").exists() for folder in (other_host, old_style, unrelated))
        assert remove_stale_workdirs(tmp_path) == []  # nothing more: every other folder is alive or not ours
    finally:
        service.close()
    assert not service.workdir.exists()


def test_a_16_bit_scan_six_times_the_render_size_is_colorized(server: Server) -> None:
    ramp = (np.linspace(0, 65535, 420 * 400).reshape(400, 420)).astype(np.uint16)  # past 6 x the tiny model's 64 px
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="TIFF")
    response = post(server, buffer.getvalue(), filename="scan.tif")
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (420, 400)
