"""``colorgan serve``: the plain HTTP API, the Gradio API, limits and behaviour under load.

One real server (``colorgan serve`` in a subprocess, tiny random model, loopback only, started
by conftest's ``start_server``) is shared by the module; the limiter and the capped upload
stream are also tested directly.
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
