"""``colorgan serve`` end to end in a real browser: Debian's headless Chromium driven by Playwright.

Playwright's own browser download is not used (``executable_path`` points at the system
Chromium); ``.ci/run`` installs Chromium where apt is available, and the test is skipped
with its reason where it is not.
"""

from __future__ import annotations

import io
from pathlib import Path

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

            # A file that is not an image: a clear message, and the page keeps working.
            upload.set_input_files(not_an_image)
            sync_api.expect(page.locator(".toast-body").first).to_contain_text("not an image")

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
        finally:
            browser.close()
