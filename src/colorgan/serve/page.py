"""The Gradio page at ``/``: drop, paste or pick a photo; before/after slider; full-resolution PNG download.

Its function is also the Gradio API's ``/colorize`` (for ``gradio_client``). Refusals become
a ``gr.Error`` toast with the same wording as the HTTP API, and the page stays usable.
"""

from __future__ import annotations

import logging
import math
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import gradio as gr
from gradio.exceptions import ComponentProcessingError

from colorgan.photo import pillow_errors
from colorgan.serve.service import ColorizeService
from colorgan.serve.settings import RequestError

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent.parent / "assets" / "examples"
# Formats a browser shows as they are: the "before" side of the slider uses the upload itself.
BROWSER_FORMATS = {"JPEG", "PNG", "WEBP", "GIF"}
# Gradio's cache (its uploads and our results) is swept every minute of files over 15 minutes
# old, and emptied when the server stops: long enough to view and download a result.
GRADIO_CACHE_SWEEP = (60, 15 * 60)


def example_photos() -> list[Path]:
    """The bundled example photos (see ``assets/examples/LICENSE.md``)."""
    return sorted(EXAMPLES_DIR.glob("*.jpg"))


def _with_plain_errors(page: gr.Blocks, service: ColorizeService) -> gr.Blocks:
    """Make ``page`` answer an unreadable upload with a plain message, and return it.

    Gradio opens an uploaded image before our function runs; its own error for a file that is
    not an image names its internals and the server's cache path. The page's
    ``preprocess_data`` (which preprocesses every input of every event) is wrapped, not one
    component's ``preprocess``: Gradio rebuilds a component per session when an event updates
    it (loading an example does), and the rebuilt one would lack a wrapper. Components are not
    subclassed either: Gradio writes a ``.pyi`` stub beside any module that defines one.
    """
    preprocess_data = page.preprocess_data

    async def plain_preprocess_data(*args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess_data(*args, **kwargs)
        except ComponentProcessingError as exc:
            message = _photo_refusal(exc.__cause__, service)
            if message is None:
                raise
            raise gr.Error(message, print_exception=False) from None

    page.preprocess_data = plain_preprocess_data  # type: ignore[method-assign]
    return page


def _photo_refusal(error: BaseException | None, service: ColorizeService) -> str | None:
    """The page's wording for ``error`` if it is a photo that cannot be read (None otherwise):
    the same words the HTTP API uses, through the one Pillow-error mapping."""
    if error is None:
        return None
    try:
        with service.photo_errors(), pillow_errors("upload"):
            raise error
    except RequestError as refused:
        return refused.message
    except BaseException:  # noqa: BLE001 - not a photo problem: Gradio reports it as it does
        return None


def _page_handler(service: ColorizeService) -> Callable[[str | None, float | None], Awaitable[tuple[Any, Any]]]:
    """The page's (and the Gradio API's) function: photo path + size -> ((before, after), PNG path).

    Errors become a ``gr.Error`` message; the page stays usable for the next photo.
    """

    async def colorize_photo(photo: str | None, size: float | None = None) -> tuple[Any, Any]:
        if photo is None:
            return None, None
        source = Path(photo)
        # Results go into Gradio's own cache, which serves them and sweeps them (GRADIO_CACHE_SWEEP).
        out = Path(gr.utils.get_upload_folder()) / uuid.uuid4().hex / "colorized.png"
        out.parent.mkdir(parents=True)
        try:
            render = service.render_size(None if size is None else int(size))
            _, _, fmt = await anyio.to_thread.run_sync(service.inspect, source)
            before = source if fmt in BROWSER_FORMATS else out.with_name("photo.png")
            await service.colorize(source, render, out, preview=None if before == source else before)
        except RequestError as exc:
            shutil.rmtree(out.parent, ignore_errors=True)
            log.info("page: refused a photo: %s", exc.message)
            raise gr.Error(exc.message, print_exception=False) from None
        return (str(before), str(out)), str(out)

    return colorize_photo


def build_page(service: ColorizeService) -> gr.Blocks:
    """The Gradio page: photo in, before/after slider and a PNG download out."""
    colorizer = service.colorizer
    step = colorizer.size_multiple
    with gr.Blocks(title="colorgan: colorize old photos", analytics_enabled=False, delete_cache=GRADIO_CACHE_SWEEP) as page:
        gr.Markdown(
            "# colorgan\nDrop, paste or pick a black-and-white photo: it comes back in color at its full "
            f"resolution. Up to {service.settings.max_upload_mb:g} MB and {service.settings.max_megapixels:g} megapixels."
            + ("\n\nA color came out wrong? [Guide the colors with a few clicks](guide) in the hint editor."
               if colorizer.takes_hints else "")
        )
        with gr.Row(equal_height=False):
            with gr.Column():
                photo = gr.Image(
                    label="Black-and-white photo", type="filepath", image_mode=None,
                    sources=["upload", "clipboard"], elem_id="photo",
                )
                size = gr.Slider(
                    minimum=step * math.ceil(64 / step), maximum=service.max_render_size, step=step, value=colorizer.size,
                    label="Render size", info="The resolution the model sees: its training size is usually best; larger gives finer color edges but can over-saturate.",
                    elem_id="render-size",
                )
                button = gr.Button("Colorize", variant="primary", elem_id="colorize")
            with gr.Column():
                compare = gr.ImageSlider(
                    label="Before / after (drag the slider)", type="filepath", format="png",
                    interactive=False, elem_id="compare", buttons=["fullscreen"],
                )
                download = gr.DownloadButton("Download full-resolution PNG", elem_id="download")
        handler = _page_handler(service)
        gr.on(
            triggers=[photo.upload, button.click], fn=handler, inputs=[photo, size],
            outputs=[compare, download], api_name="colorize", trigger_mode="always_last",
        )
        photo.clear(lambda: (None, None), outputs=[compare, download], api_visibility="private")
        gr.Examples(
            examples=[[str(p)] for p in example_photos()], inputs=[photo], label="Try an example",
            fn=handler, outputs=[compare, download], run_on_click=True, cache_examples=False,
            api_visibility="private",
        )
    page.queue(max_size=service.settings.max_queue, default_concurrency_limit=service.settings.concurrency)
    return _with_plain_errors(page, service)
