"""Hints over HTTP: the ``hints`` form field of ``/api/colorize`` and the hint editor's routes (``/api/photos``)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="colorgan serve needs the web extra (gradio)")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx")

from colorgan.serve.guided import PhotoStore  # noqa: E402

if TYPE_CHECKING:
    from conftest import Server

HINT = {"x": 0.5, "y": 0.5, "color": "#2060d0"}


@pytest.fixture(scope="module")
def server(start_server, tiny_hint_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("serve_hints"), "--max-megapixels", "4", model=tiny_hint_model) as running:
        yield running


def colorize(server: Server, content: bytes, **fields: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/colorize", files={"image": ("photo.jpg", content)}, data=fields, timeout=60)


def open_photo(server: Server, content: bytes) -> dict:
    response = httpx.post(f"{server.url}/api/photos", files={"image": ("photo.jpg", content)}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def update(server: Server, key: str, body: object, what: str = "colorize") -> httpx.Response:
    return httpx.post(f"{server.url}/api/photos/{key}/{what}", content=json.dumps(body), timeout=60)


def pixels(response: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)


def test_the_hints_field_guides_api_colorize(server: Server, jpeg_bytes) -> None:
    photo = jpeg_bytes((160, 120))
    automatic, guided = colorize(server, photo), colorize(server, photo, hints=json.dumps([HINT]))
    assert automatic.status_code == guided.status_code == 200
    assert guided.headers["content-type"] == "image/png"
    assert np.abs(pixels(guided) - pixels(automatic)).max() > 0
    assert np.array_equal(pixels(colorize(server, photo, hints="[]")), pixels(automatic))


@pytest.mark.parametrize("hints,words", [
    ("[1, 2", "not valid JSON"),
    ('[{"x": 1.5, "y": 0.5, "color": "#fff"}]', "outside the photo"),
    ('[{"x": 500, "y": 5, "color": "#fff"}]', "outside the photo (160x120 pixels)"),
    ('[{"x": 0.5, "y": 0.5, "color": "teal"}]', "not a hex color"),
    (json.dumps([HINT] * 1001), "more than the 1000 allowed"),
])
def test_bad_hints_are_400_with_one_clear_line(server: Server, jpeg_bytes, hints: str, words: str) -> None:
    response = colorize(server, jpeg_bytes((160, 120)), hints=hints)
    assert response.status_code == 400
    assert words in response.json()["error"]
    assert not server.api_files()  # nothing written, nothing left


def test_the_editor_colorizes_a_photo_again_after_each_hint_change(server: Server, jpeg_bytes) -> None:
    photo = jpeg_bytes((300, 200))
    info = open_photo(server, photo)
    assert (info["width"], info["height"]) == (300, 200)
    automatic = update(server, info["id"], {"hints": []})
    assert automatic.status_code == 200 and automatic.headers["content-type"] == "image/jpeg"
    assert int(automatic.headers["x-colorize-ms"]) >= 0
    guided = update(server, info["id"], {"hints": [HINT]})
    full = update(server, info["id"], {"hints": [HINT]}, "download")
    assert full.headers["content-type"] == "image/png"
    assert np.array_equal(pixels(full), pixels(colorize(server, photo, hints=json.dumps([HINT]))))  # exactly the API's result
    assert np.abs(pixels(full) - pixels(update(server, info["id"], {"hints": []}, "download"))).max() > 0  # the hint did something
    assert pixels(guided).shape == (200, 300, 3)
    assert np.abs(pixels(guided) - pixels(full)).mean() < 2  # the live JPEG shows that result


def test_editor_refusals(server: Server, jpeg_bytes) -> None:
    key = open_photo(server, jpeg_bytes((64, 64)))["id"]
    assert update(server, "0" * 32, {"hints": []}).status_code == 404
    response = httpx.post(f"{server.url}/api/photos/{key}/colorize", content=b"{oops", timeout=30)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    assert update(server, key, [HINT]).status_code == 400  # a list, not {"hints": [...]}
    assert "outside the photo" in update(server, key, {"hints": [{"x": 64, "y": 0, "color": "#fff"}]}).json()["error"]
    refused = httpx.post(f"{server.url}/api/photos", files={"image": ("x.jpg", b"not a photo")}, timeout=30)
    assert refused.status_code == 400 and "not an image" in refused.json()["error"]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_json_is_a_one_line_400(server: Server, jpeg_bytes, depth: int) -> None:
    nested = "[" * depth + "]" * depth  # past json's recursion limit: RecursionError, not ValueError
    responses = [colorize(server, jpeg_bytes((64, 64)), hints=nested)]
    key = open_photo(server, jpeg_bytes((64, 64)))["id"]
    for what in ("colorize", "download"):
        for body in (nested, f'{{"hints": {nested}}}'):
            responses.append(httpx.post(f"{server.url}/api/photos/{key}/{what}", content=body, timeout=30))
    for response in responses:
        assert response.status_code == 400, response.text[:200]
        assert "\n" not in response.json()["error"]


def test_the_editor_page_is_served(server: Server) -> None:
    page = httpx.get(f"{server.url}/guide", timeout=30)
    assert page.status_code == 200 and "guide the colors" in page.text


def test_the_store_forgets_the_least_recently_used_and_idle_photos(tmp_path: Path) -> None:
    store = PhotoStore(capacity=2, idle_s=3600)
    uploads = [tmp_path / f"{i}.upload" for i in range(3)]
    for path in uploads:
        path.write_bytes(b"x")
    keys = [store.add(object(), path) for path in uploads[:2]]  # type: ignore[arg-type]
    store.get(keys[0])  # used: now the most recent
    store.add(object(), uploads[2])  # type: ignore[arg-type]
    assert len(store) == 2 and not uploads[1].exists() and uploads[0].exists()
    with pytest.raises(Exception, match="no longer on the server"):
        store.get(keys[1])
    store.idle_s = 0.0
    with pytest.raises(Exception, match="no longer on the server"):
        store.get(keys[0])
    assert not uploads[0].exists() and not uploads[2].exists()


def test_a_client_filling_the_store_pushes_out_its_own_photos_not_others(tmp_path: Path) -> None:
    store = PhotoStore(capacity=3, idle_s=3600)
    uploads = [tmp_path / f"{i}.upload" for i in range(6)]
    for path in uploads:
        path.write_bytes(b"x")
    other = store.add(object(), uploads[0], client="10.0.0.2")  # type: ignore[arg-type]
    greedy = [store.add(object(), path, client="10.0.0.9") for path in uploads[1:]]  # type: ignore[arg-type]
    assert len(store) == 3
    store.get(other)  # still there, although it is the oldest photo in the store
    assert uploads[0].exists()
    assert [path.exists() for path in uploads[1:]] == [False, False, False, True, True]
    store.get(greedy[-1])


def test_the_editor_opens_a_16_bit_scan_six_times_the_render_size(server: Server) -> None:
    import io

    from PIL import Image

    ramp = (np.linspace(0, 65535, 420 * 400).reshape(400, 420)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="TIFF")
    opened = httpx.post(f"{server.url}/api/photos", files={"image": ("scan.tif", buffer.getvalue())}, timeout=60)
    assert opened.status_code == 200, opened.text
    assert (opened.json()["width"], opened.json()["height"]) == (420, 400)
