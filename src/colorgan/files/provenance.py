"""Which files are colorgan's own outputs: the Software tag every photo output carries (a video's
container comment), so an output found among the inputs of a later run is never taken for a photo."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from colorgan.files.discovery import VIDEO_SUFFIXES

# Every colorized photo says in its EXIF Software tag that colorgan wrote it, so a folder job whose
# outputs sit among its inputs tells them apart from photos (see :func:`written_by_colorgan`).
SOFTWARE_TAG, SOFTWARE = 0x0131, "colorgan"


def written_by_colorgan(path: Path) -> bool:
    """Whether ``path`` is a photo :func:`save_image` wrote (it reads only the file's header):
    its EXIF Software tag (a TIFF's own Software tag) says colorgan; or a video colorgan wrote
    (its container's comment says so, see :func:`colorgan.video.encode.join`)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        try:
            import av

            with av.open(str(path)) as container:
                return any(key.lower() == "comment" and value == SOFTWARE for key, value in container.metadata.items())
        except Exception:  # noqa: BLE001 - no PyAV, or unreadable: no output of ours
            return False
    try:
        with Image.open(path) as image:
            return image.getexif().get(SOFTWARE_TAG) == SOFTWARE
    except Exception:  # noqa: BLE001 - whatever cannot be read is no output of ours
        return False
