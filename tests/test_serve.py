"""``colorgan serve``: the plain HTTP API, the Gradio API, limits and behaviour under load.

One real server (``colorgan serve`` in a subprocess, tiny random model, loopback only) is
shared by the module; the limiter and the capped upload stream are also tested directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="colorgan serve needs the web extra (gradio)")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx")
psutil = pytest.importorskip("psutil", reason="the load test reads the server's RSS with psutil")

from colorgan.app import Limiter, RequestError, _capped_receive  # noqa: E402

MAX_UPLOAD_MB = 1
MAX_MEGAPIXELS = 4
STARTUP_TIMEOUT_S = 90.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    tmpdir: Path  # the server's TMPDIR: its API folder and Gradio's cache live here

    def api_files(self) -> list[Path]:
        """Files in the API's private folders (colorgan-serve-*)."""
        return [p for d in self.tmpdir.glob("colorgan-serve-*") for p in d.rglob("*") if p.is_file()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(root: Path, *extra: str) -> Iterator[Server]:
    """``colorgan serve`` with a tiny random model on a free loopback port, stopped on exit."""
    import torch

    from colorgan.models import build_generator, save_pretrained

    torch.manual_seed(0)
    model = save_pretrained(build_generator("unet", base_channels=8, num_downs=5), root / "m", size=64)
    tmpdir = root / "tmp"
    tmpdir.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmpdir), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", "from colorgan.cli import main; main()", "serve", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB),
           "--max-megapixels", str(MAX_MEGAPIXELS), "-q", *extra]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"colorgan serve exited with {process.returncode}:\n{(root / 'server.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"colorgan serve did not answer within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.3)
        yield Server(url=url, process=process, tmpdir=tmpdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("serve"), "--concurrency", "2") as running:
        yield running


def photo(size: tuple[int, int] = (200, 150), seed: int = 0) -> Image.Image:
    """A small gray photo-like image: a gradient with a disc, different for each seed."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(size)
    rng = np.random.default_rng(seed)
    cy, cx, r = rng.uniform(0.2, 0.8, 3) * (1, 1, 0.3)
    gray = 40 + 150 * x + 60 * y - 80 * ((y - cy) ** 2 + (x - cx) ** 2 < r**2)
    return Image.fromarray(gray.clip(0, 255).astype(np.uint8), "L")


def jpeg_bytes(size: tuple[int, int] = (200, 150), seed: int = 0, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    photo(size, seed).convert(mode).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


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
def test_photo_comes_back_as_png_of_the_same_size(server: Server, size, mode, fields) -> None:
    # a path-like file name must not matter: names from the request never touch the disk
    response = post(server, jpeg_bytes(size, mode=mode), filename="../../evil.jpg", **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    result = Image.open(io.BytesIO(response.content))
    assert (result.format, result.size, result.mode) == ("PNG", size, "RGB")
    assert not list(server.tmpdir.rglob("evil*"))


def test_corrupt_image_is_400(server: Server) -> None:
    truncated = jpeg_bytes((400, 300))[:1500]
    assert_error(post(server, truncated), 400, "truncated")


@pytest.mark.parametrize("content", [b"just some text, not a photo\n", b""])
def test_non_image_is_400(server: Server, content: bytes) -> None:
    assert_error(post(server, content, filename="notes.png"), 400, "empty file" if not content else "not an image")


def test_missing_field_and_bad_size_are_400(server: Server) -> None:
    response = httpx.post(f"{server.url}/api/colorize", files={"photo": ("a.jpg", jpeg_bytes())}, timeout=30)
    assert_error(response, 400, "named 'image'")
    assert_error(post(server, jpeg_bytes(), size="100"), 400, "multiple of 32")
    assert_error(post(server, jpeg_bytes(), size="big"), 400, "whole number")


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


def test_gradio_api(server: Server, tmp_path: Path) -> None:
    gradio_client = pytest.importorskip("gradio_client")
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes((123, 77)))
    client = gradio_client.Client(f"{server.url}/", verbose=False, download_files=str(tmp_path / "dl"))
    (before, after), png = client.predict(gradio_client.handle_file(str(path)), 64, api_name="/colorize")
    assert Image.open(before).size == Image.open(after).size == (123, 77)
    assert Image.open(png).format == "PNG"


def test_load_all_succeed_and_memory_stays_bounded(server: Server) -> None:
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


def test_capped_receive_stops_big_and_slow_bodies() -> None:
    async def scenario() -> None:
        async def endless() -> dict:
            return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

        capped = _capped_receive(endless, limit=2500, timeout_s=5)
        await capped()
        await capped()
        with pytest.raises(RequestError) as big:
            await capped()
        assert big.value.status == 413

        async def trickle() -> dict:
            await asyncio.sleep(1)
            return {"type": "http.request", "body": b"x", "more_body": True}

        with pytest.raises(RequestError) as slow:
            await _capped_receive(trickle, limit=10**6, timeout_s=0.05)()
        assert slow.value.status == 408

    asyncio.run(scenario())
