"""``colorgan serve``: a web page and a plain HTTP API around one shared :class:`~colorgan.colorizer.Colorizer`.

One FastAPI app serves both:

- ``/``: a Gradio page (:mod:`.page`: drop, paste or pick a photo; before/after slider;
  full-resolution PNG download; render size; example photos). Its Gradio API works with
  ``gradio_client`` (endpoint ``/colorize``).
- ``POST /api/colorize`` (:mod:`.api`: multipart field ``image``, optional ``size``) answers
  ``image/png``; errors are JSON ``{"error": "..."}`` with 400, 408, 413 or 503. ``GET /api/health``.

Both call one :class:`ColorizeService` (:mod:`.service`) with one :class:`Limiter`
(:mod:`.limiter`): at most ``concurrency`` photos are colorized at once, at most ``max_queue``
more wait, and anything beyond is refused at once (503) rather than piling up memory. Slow,
idle or greedy clients get deadlines (a stalled upload is a 408) and per-client caps on what
they have in flight (503 with Retry-After), counted per address or, behind a trusted reverse
proxy, per ``X-Forwarded-For`` client (:mod:`.connections`), so they cannot crowd out the
others. Gradio's upload route takes photos only, a limited number per client, and no answer
names a server path (:mod:`.gradio_guard`). Uploads are capped while they stream in
(:mod:`.uploads`) and photos are checked for their pixel count from the header, before
anything is decoded. The API keeps its files in a private temporary
folder under names it makes up itself (never one from the request) and deletes each as soon
as it is no longer needed; a server that starts removes the folders of servers that were
killed (:mod:`.workdir`). :mod:`.server` puts the pieces together and runs them.
"""

from colorgan.serve.limiter import Limiter
from colorgan.serve.server import create_app, serve, url_for
from colorgan.serve.service import ColorizeService
from colorgan.serve.settings import RequestError, ServeSettings

__all__ = ["ColorizeService", "Limiter", "RequestError", "ServeSettings", "create_app", "serve", "url_for"]
