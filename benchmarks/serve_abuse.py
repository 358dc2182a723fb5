"""How ``colorgan serve`` holds under the abuse of issue "Hold under abuse, round 2", at the issue's scale.

Start a server on this machine first (loopback: other 127.x addresses stand for other clients),
e.g. ``colorgan serve --port 7860``, then run the four attacks against it, one after another:

1. 32 connections from one address each send a whole ``POST /api/colorize`` head and 100 bytes
   of body, then nothing: what a new request from that address, and one from another, get;
   how long until that address is served again.
2. 17 addresses x 31 such connections: what a fresh address gets.
3. 50 concurrent ``POST /api/colorize`` from one address: the answers, and how many got none.
4. 40 uploads of 20 MB of random bytes to Gradio's ``/gradio_api/upload`` (at most 8 at once):
   the answers, and whether any names a server path.

Prints Markdown for ``benchmarks/RESULTS.md`` (``--record`` appends it).

    python benchmarks/serve_abuse.py [--url http://127.0.0.1:7860]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
from common import cpu_name, print_and_record
from PIL import Image

STALLED = (b"POST /api/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
           b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
           + b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'.ljust(100, b"\xff"))


def stall(port: int, count: int, source: str) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(STALLED)
        held.append(sock)
    return held


def outcome(url: str, source: str, method: str = "GET", **request) -> str:
    """``200``, ``503 (Retry-After 5)``... (``naming a server path`` if the answer holds one), or
    what went wrong when no HTTP answer came."""
    try:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=120) as client:
            response = client.request(method, url, **request)
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"
    retry = response.headers.get("retry-after")
    named = re.search(r'"/(?!gradio-cache/)', response.text) is not None  # an absolute path, not the public name
    wait = "" if retry is None else f" (Retry-After {retry} s)" if int(retry) < 60 else f" (Retry-After {round(int(retry) / 60)} min)"
    return f"{response.status_code}{wait}" + (" naming a server path" if named else "")


def tally(outcomes: list[str]) -> str:
    return ", ".join(f"{n} × {what}" for what, n in Counter(outcomes).most_common())


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, format="JPEG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--record", action="store_true", help="append the report to benchmarks/RESULTS.md")
    args = parser.parse_args()
    url, port = args.url.rstrip("/"), urlsplit(args.url).port or 80
    health, colorize = f"{url}/api/health", f"{url}/api/colorize"
    rows = []

    held = stall(port, 32, "127.0.0.1")
    time.sleep(0.5)
    same, other = outcome(health, "127.0.0.1"), outcome(health, "127.0.0.2")
    started = time.monotonic()
    while outcome(health, "127.0.0.1") != "200" and time.monotonic() - started < 120:
        time.sleep(0.5)
    rows.append(("32 stalled uploads from one address", f"same address: {same}; another: {other}; "
                 f"same address served again after {time.monotonic() - started:.1f} s"))
    for sock in held:
        sock.close()

    held = [sock for i in range(17) for sock in stall(port, 31, f"127.0.1.{i + 1}")]
    time.sleep(0.5)
    rows.append(("17 addresses × 31 stalled uploads", f"a fresh address: {outcome(health, '127.0.2.1')}"))
    for sock in held:
        sock.close()
    time.sleep(1)

    files = {"image": ("p.jpg", photo())}
    with ThreadPoolExecutor(50) as pool:
        burst = list(pool.map(lambda _: outcome(colorize, "127.0.3.1", method="POST", files=files), range(50)))
    rows.append(("50 concurrent POST /api/colorize", tally(burst)))

    junk = {"files": ("junk.bin", os.urandom(20 << 20))}
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        uploads = list(pool.map(lambda _: outcome(f"{url}/gradio_api/upload", "127.0.4.1", method="POST", files=junk),
                                range(40)))
    rows.append(("40 × 20 MB of random bytes to /gradio_api/upload",
                 f"{tally(uploads)} in {time.monotonic() - started:.1f} s"))

    report = (f"### Serve under abuse, {time.strftime('%Y-%m-%d')}\n\nMachine: {cpu_name()}, {os.cpu_count()} cores. "
              f"Command: `python benchmarks/serve_abuse.py --url {url}` against `colorgan serve` on loopback.\n\n"
              "| attack | answers |\n| --- | --- |\n" + "".join(f"| {a} | {b} |\n" for a, b in rows))
    print_and_record(report, args.record)


if __name__ == "__main__":
    main()
