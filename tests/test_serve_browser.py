"""``colorgan serve`` end to end in a real browser: Debian's headless Chromium driven by Playwright.

Playwright's own browser download is not used (``executable_path`` points at the system
Chromium); ``.ci/run`` installs Chromium where apt is available, and the test is skipped
with its reason where it is not.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root in a container, on a machine with no outside network: no sandbox, no GPU,
# and none of Chromium's background connections (which would be refused, over and over).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--no-first-run",
]
TIMEOUT_MS = 60_000

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the browser test",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")


def test_upload_shows_the_colorized_photo_at_its_size(start_server, jpeg_bytes, bad_file, tmp_path: Path) -> None:
    photo = tmp_path / "old photo.jpg"
    photo.write_bytes(jpeg_bytes((300, 200)))
    not_an_image = bad_file("text", tmp_path)

    with start_server(tmp_path) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            sync_api.expect.set_options(timeout=TIMEOUT_MS)
            page.goto(f"{server.url}/")
            upload = page.locator("#photo input[type=file]")

            # A file that is not an image: a clear message, once, and the page keeps working.
            upload.set_input_files(not_an_image)
            sync_api.expect(page.locator(".toast-body").first).to_contain_text("not an image")
            page.wait_for_timeout(1500)  # a second toast for the same file would have come by now
            sync_api.expect(page.locator(".toast-body")).to_have_count(1)
            assert "(2)" not in page.locator(".toast-wrap").inner_text()

            upload.set_input_files(photo)
            images = page.locator("#compare img")
            sync_api.expect(images).to_have_count(2)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#compare img')].every(i => i.complete && i.naturalWidth > 0)"
            )
            sizes = images.evaluate_all("els => els.map(e => [e.naturalWidth, e.naturalHeight])")
            assert sizes == [[300, 200], [300, 200]]  # before and after, both the photo's own size
            assert images.nth(1).is_visible()

            with page.expect_download() as download:
                page.locator("#download").click()
            png = Image.open(io.BytesIO(Path(download.value.path()).read_bytes()))
            assert (png.format, png.size) == ("PNG", (300, 200))

            # After an example was loaded (Gradio then rebuilds the photo component for the session),
            # a non-image still gets the same plain message, and the server logs no traceback.
            page.locator(".gallery-item").first.click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('#compare img')].some(i => i.complete && i.src.includes('colorized'))"
            )
            for close in page.locator(".toast-close").all():  # earlier messages out of the way
                close.click()
            sync_api.expect(page.locator(".toast-body")).to_have_count(0)
            upload.set_input_files(not_an_image)
            page.locator("#colorize").click()
            sync_api.expect(page.locator(".toast-body").first).to_contain_text("cannot read this photo: not an image")
            assert "Could not preprocess" not in page.content()
            assert "Traceback" not in (tmp_path / "server.log").read_text()
        finally:
            browser.close()


# --- the hint editor ----------------------------------------------------------------------

RESULT_COLOR_AT = """([x, y]) => {
  const img = document.getElementById('result');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const d = context.getImageData(Math.floor(x * canvas.width) - 3, Math.floor(y * canvas.height) - 3, 7, 7).data;
  const mean = [0, 1, 2].map(c => { let s = 0; for (let i = c; i < d.length; i += 4) s += d[i]; return s / (d.length / 4); });
  return mean;
}"""


def _lab_ab(rgb) -> tuple[float, float]:
    from colorgan.color import rgb_to_lab

    lab = rgb_to_lab(np.array(rgb, dtype=np.uint8))
    return float(lab[1]), float(lab[2])


def test_a_point_of_color_moves_the_result_toward_it_and_every_edit_updates_live(start_server, tmp_path: Path) -> None:
    """The shipped (hint-capable) default model behind the editor: a blue point on a plain gray area turns it blue."""
    from colorgan.model.files import DEFAULT_MODEL, MODELS_DIR

    photo = tmp_path / "wall.png"
    Image.new("L", (320, 240), 150).save(photo)  # a plain wall: the model has no reason to paint it blue
    blue = "#2a5bd7"
    spot = (0.3, 0.5)

    with start_server(tmp_path, model=MODELS_DIR / DEFAULT_MODEL) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{server.url}/")
            link = page.get_by_role("link", name="Guide the colors with a few clicks")  # the automatic page links the editor
            assert link.get_attribute("href") == "guide"
            page.goto(f"{server.url}/guide")
            sync_api.expect(page.locator("#result")).to_be_hidden()  # no empty, broken image before a photo is open

            def updates_reach(n: int) -> None:
                page.wait_for_function(f"() => Number(document.getElementById('stage').dataset.updates || 0) >= {n}")

            page.locator("#file").set_input_files(photo)
            updates_reach(1)
            before = page.evaluate(RESULT_COLOR_AT, list(spot))

            page.locator("#color").fill(blue)
            box = page.locator("#result").bounding_box()
            page.mouse.click(box["x"] + spot[0] * box["width"], box["y"] + spot[1] * box["height"])
            updates_reach(2)  # no button: the click alone brought a new result
            after = page.evaluate(RESULT_COLOR_AT, list(spot))
            target, start, end = _lab_ab((0x2A, 0x5B, 0xD7)), _lab_ab(before), _lab_ab(after)
            distance = lambda ab: ((ab[0] - target[0]) ** 2 + (ab[1] - target[1]) ** 2) ** 0.5  # noqa: E731
            assert distance(end) < distance(start) - 10, (before, after)
            assert end[1] < start[1] - 5  # bluer: b* went down

            with page.expect_download() as download:
                page.locator("#download-hints").click()
            hints = json.loads(Path(download.value.path()).read_text())
            assert len(hints) == 1 and hints[0]["color"] == blue
            assert abs(hints[0]["x"] - spot[0]) < 0.02 and abs(hints[0]["y"] - spot[1]) < 0.02

            page.locator("#undo").click()  # back to no points: the automatic result again
            updates_reach(3)
            assert _lab_ab(page.evaluate(RESULT_COLOR_AT, list(spot))) == pytest.approx(start, abs=1.5)

            hints_file = tmp_path / "hints.json"
            hints_file.write_text(json.dumps(hints))
            page.locator("#upload-hints").set_input_files(hints_file)  # the same point, from the file
            updates_reach(4)
            assert _lab_ab(page.evaluate(RESULT_COLOR_AT, list(spot))) == pytest.approx(end, abs=1.5)

            with page.expect_download() as download:
                page.locator("#download").click()
            full = Image.open(io.BytesIO(Path(download.value.path()).read_bytes()))
            assert (full.format, full.size) == ("PNG", (320, 240))

            page.locator("#clear").click()
            updates_reach(5)
            assert page.locator("#points circle").count() == 0
            assert page.locator("#error").inner_text() == ""
        finally:
            browser.close()
