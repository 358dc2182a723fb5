"""``colorgan serve`` held under abuse: slow, stalled and greedy clients, upload floods, invalid HTTP.

Bounded load tests against 127.0.0.1, each stopping by itself within seconds. The connection
rules (:mod:`colorgan.serve.connections`) run on a tiny app in a thread with small limits and
short deadlines; the rest against one real server (conftest's ``start_server``). Other
loopback addresses (127.0.0.2, ...) stand for other clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("gradio", reason="colorgan serve needs the web extra (gradio)")
httpx = pytest.importorskip("httpx", reason="the serve tests talk HTTP with httpx")

from colorgan.serve.connections import BODY_STALL_S, MAX_PER_CLIENT  # noqa: E402
from colorgan.serve.gradio_guard import PUBLIC_FOLDER, UPLOADS_PER_CLIENT  # noqa: E402

if TYPE_CHECKING:
    from conftest import Server

MAX_UPLOAD_MB = 1
# A complete head and the first 100 bytes of its body, then nothing: the stalled upload.
_BODY_START = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
STALLED_UPLOAD = (b"POST /api/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                  b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" + _BODY_START.ljust(100, b"\xff"))


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("abuse"), "--concurrency", "2", "--max-upload-mb", str(MAX_UPLOAD_MB)) as running:
        yield running


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _open(port: int, count: int, payload: bytes, source: str = "127.0.0.1") -> list[socket.socket]:
    """``count`` connections from ``source`` that have sent ``payload`` and nothing more."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        with contextlib.suppress(OSError):  # a server that answers (and closes) before the end
            sock.sendall(payload)
        held.append(sock)
    return held


def _answer(sock: socket.socket, within_s: float) -> bytes | None:
    """The server's answer: what it sent until a whole response was in or it closed the connection
    (b"": closed without a word); None if it sent nothing and kept the connection for ``within_s``."""
    deadline = time.monotonic() + within_s
    data = b""
    while not _whole_response(data):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            return data or None
        if not chunk:
            break
        data += chunk
    return data


def _whole_response(data: bytes) -> bool:
    head, end, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return bool(end) and length is not None and len(body) >= int(length.group(1))


def _client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30)


def _close(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def assert_error(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert words in response.json()["error"]


def assert_busy(response: httpx.Response) -> None:
    assert_error(response, 503, "try again")
    assert int(response.headers["retry-after"]) > 0


# --- the connection rules, on a tiny app with small limits --------------------------------

@contextlib.contextmanager
def guarded(**limits) -> Iterator[int]:
    """A uvicorn with the guarded protocol and ``limits`` (short deadlines by default) on a tiny app in a thread; yields its port.

    The app reads the whole body, then answers ``{"bytes": N, "client": "<address>"}``.
    """
    import uvicorn

    from colorgan.serve.connections import GuardedH11Protocol
    from colorgan.serve.server import listening_socket

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.dumps({"bytes": size, "client": scope["client"][0]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    limits = {"body_timeout_s": 2.0, "body_stall_s": 0.5, "header_timeout_s": 1.0, **limits}
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, http=GuardedH11Protocol.configured(**limits), log_config=None,
                                           lifespan="off", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_slow_heads_are_closed_and_slow_bodies_answered_408_at_their_deadline() -> None:
    with guarded(body_stall_s=1.0) as port:
        (half_head,) = _open(port, 1, b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        (silent,) = _open(port, 1, b"")
        (trickle,) = _open(port, 1, b"G")
        (stalled_body,) = _open(port, 1, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
        (slow_body,) = _open(port, 1, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        for byte in b"ET /ok HTTP/1.1\r\n":  # a byte every 0.1 s to each: more bytes extend no deadline
            if time.monotonic() - started > 2.5:
                break
            for sock, data in ((trickle, bytes([byte])), (slow_body, b"x")):
                with contextlib.suppress(OSError):
                    sock.sendall(data)
            time.sleep(0.1)
        for name, sock in {"half head": half_head, "silent": silent, "trickle": trickle}.items():
            assert _answer(sock, within_s=3) is not None, f"{name}: a slow client kept its connection past the deadline"
        stalled, slow = _answer(stalled_body, within_s=3), _answer(slow_body, within_s=3)
        assert stalled is not None and stalled.startswith(b"HTTP/1.1 408") and b"stalled" in stalled
        assert slow is not None and slow.startswith(b"HTTP/1.1 408") and b"longer than 2 s" in slow
        assert time.monotonic() - started < 6
        _close([half_head, silent, trickle, stalled_body, slow_body])
        # a prompt request still works, with its body
        assert httpx.post(f"http://127.0.0.1:{port}/echo", content=b"x" * 5000, timeout=5).json()["bytes"] == 5000


def test_idle_connections_are_capped_per_address_without_locking_anyone_out() -> None:
    with guarded(max_per_client=4) as port:
        held = _open(port, 20, b"GET /ok HTTP/1.1\r\n")  # 20 half-sent heads, 4 allowed per address
        try:
            with httpx.Client(timeout=5) as client:
                for _ in range(3):
                    assert client.get(f"http://127.0.0.1:{port}/ok").json()["bytes"] == 0
            closed = sum(_answer(sock, within_s=0.3) is not None for sock in held[:-3])
            assert closed >= 15, "the oldest idle connections make room for new ones"
        finally:
            _close(held)


def test_stalled_bodies_from_many_addresses_leave_a_503_not_a_reset() -> None:
    # 3 addresses x 4 stalled uploads against 8 requests in flight in all: a fresh address is
    # told to come back (503 + Retry-After), and is served once the stalled ones are ended (408)
    with guarded(max_per_client=4, max_connections=8, body_stall_s=2.0, body_timeout_s=4.0) as port:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
        held = [sock for i in range(2) for sock in _open(port, 4, head, source=f"127.0.1.{i + 1}")]
        time.sleep(0.3)  # the first 8 with the app: a burst beyond the cap may push out one that has sent nothing yet
        for _ in range(4):
            held += _open(port, 1, head, source="127.0.1.3")
            time.sleep(0.1)
        try:
            with _client("127.0.2.1") as fresh:
                assert_busy(fresh.get(f"http://127.0.0.1:{port}/ok"))
                answers = [_answer(sock, within_s=3) for sock in held]
                assert sorted(a.split(b" ", 2)[1] for a in answers) == [b"408"] * 8 + [b"503"] * 4
                assert fresh.get(f"http://127.0.0.1:{port}/ok").status_code == 200
        finally:
            _close(held)


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> None:
    import ipaddress

    stalled = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-Forwarded-For: %s\r\n\r\nabc"
    with guarded(max_per_client=2, body_stall_s=3.0, body_timeout_s=5.0,
                 trusted_proxies=(ipaddress.ip_network("127.0.0.1"),)) as port:
        url = f"http://127.0.0.1:{port}/ok"
        # behind the proxy: one user's stalled uploads cost that user only
        held = _open(port, 2, stalled % b"203.0.113.7, 10.0.0.9")  # what the user sent, then what the proxy saw
        try:
            with _client("127.0.0.1") as proxy:
                assert_busy(proxy.get(url, headers={"X-Forwarded-For": "10.0.0.9"}))
                other = proxy.get(url, headers={"X-Forwarded-For": "10.0.0.10"})
                assert other.status_code == 200 and other.json()["client"] == "10.0.0.10"
        finally:
            _close(held)
        # not a trusted proxy: the header is ignored and names no one
        held = _open(port, 2, stalled % b"10.0.0.1", source="127.0.0.2")
        try:
            with _client("127.0.0.2") as direct:
                assert_busy(direct.get(url, headers={"X-Forwarded-For": "10.0.0.2"}))
        finally:
            _close(held)
        with _client("127.0.0.3") as direct:
            assert direct.get(url, headers={"X-Forwarded-For": "10.0.0.3"}).json()["client"] == "127.0.0.3"


def test_a_trusted_proxy_must_be_an_address_or_a_network() -> None:
    from colorgan.errors import UserError
    from colorgan.serve import ServeSettings

    assert len(ServeSettings(trusted_proxies=("10.0.0.1", "fd00::/8")).trusted_networks) == 2
    with pytest.raises(UserError, match="--trusted-proxy"):
        ServeSettings(trusted_proxies=("proxy.local",)).validate()


# --- the real server ------------------------------------------------------------------------

def test_stalled_uploads_cost_their_sender_only(server: Server, jpeg_bytes) -> None:
    port = _port(server.url)
    stalled = _open(port, MAX_PER_CLIENT, STALLED_UPLOAD)
    try:
        time.sleep(0.5)  # all of them with the app
        started = time.monotonic()
        with _client("127.0.0.1") as sender, _client("127.0.0.2") as other:
            assert_busy(sender.get(f"{server.url}/api/health"))  # at once, and no empty reply
            photo = {"image": ("p.jpg", jpeg_bytes((64, 64)))}
            assert other.post(f"{server.url}/api/colorize", files=photo).status_code == 200
            answers = [_answer(sock, within_s=BODY_STALL_S + 5) for sock in stalled]
            assert all(a is not None and a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
            assert time.monotonic() - started < BODY_STALL_S + 5
            assert sender.post(f"{server.url}/api/colorize", files=photo).status_code == 200
    finally:
        _close(stalled)


def test_a_burst_beyond_the_cap_is_answered_503_never_dropped(server: Server, jpeg_bytes) -> None:
    photo, burst = jpeg_bytes((64, 64)), 50
    ready = threading.Barrier(burst)

    def post(_: int) -> httpx.Response:
        ready.wait(10)
        return httpx.post(f"{server.url}/api/colorize", files={"image": ("p.jpg", photo)}, timeout=60)

    with ThreadPoolExecutor(burst) as pool:
        responses = list(pool.map(post, range(burst)))  # a dropped connection raises here
    for response in responses:
        if response.status_code != 200:
            assert_busy(response)
    assert sum(r.status_code == 200 for r in responses) >= MAX_PER_CLIENT


@pytest.mark.parametrize("request_bytes", [
    b"POST /api/photos/" + b"a" * 200_000 + b"/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /api/photos/x/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"POST /api/photos/x/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\n{}",
], ids=["200 KB photo id", "two Content-Lengths", "bad Content-Length"])
def test_invalid_http_is_a_one_line_json_400(server: Server, request_bytes: bytes) -> None:
    (sock,) = _open(_port(server.url), 1, request_bytes)
    answer = _answer(sock, within_s=5)
    sock.close()
    assert answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert b"\n" not in body and json.loads(body)["error"]


def test_gradio_upload_takes_one_photo_and_names_no_server_path(server: Server, jpeg_bytes) -> None:
    upload, secret = f"{server.url}/gradio_api/upload", str(server.tmpdir)
    accepted = httpx.post(upload, files={"files": ("p.jpg", jpeg_bytes())}, timeout=30)
    assert accepted.status_code == 200 and secret not in accepted.text
    (path,) = accepted.json()
    assert path.startswith(f"{PUBLIC_FOLDER}/")
    assert httpx.get(f"{server.url}/gradio_api/file={path}", timeout=30).content == jpeg_bytes()  # served by that name
    for page in ("/config", "/"):
        assert secret not in httpx.get(f"{server.url}{page}", timeout=30).text

    kept = set(server.gradio_files())

    def chunked() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="p.jpg"\r\n\r\n' + jpeg_bytes() + b"\r\n--b--\r\n"

    refused = {
        "not an image": (httpx.post(upload, files={"files": ("notes.jpg", b"not a photo")}), 400),
        "one photo per request": (httpx.post(upload, files=[("files", ("a.jpg", jpeg_bytes(seed=1))),
                                                          ("files", ("b.jpg", jpeg_bytes(seed=2)))]), 400),
        "too large": (httpx.post(upload, files={"files": ("big.jpg", os.urandom(MAX_UPLOAD_MB << 20 | 100_000))}), 413),
        "Content-Length": (httpx.post(upload, content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"}), 411),
    }
    for words, (response, status) in refused.items():
        assert_error(response, status, words)
    assert set(server.gradio_files()) == kept  # nothing refused was kept


def test_gradio_api_reads_no_file_but_its_own_uploads(server: Server, jpeg_bytes, tmp_path: Path) -> None:
    secret = tmp_path / "not uploaded.jpg"
    secret.write_bytes(jpeg_bytes(seed=3))
    call = f"{server.url}/gradio_api/call/colorize"
    for path in (str(secret), f"{PUBLIC_FOLDER}/../../{secret.relative_to('/')}", "/etc/hostname"):
        payload = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, 64]}
        assert_error(httpx.post(call, json=payload, timeout=30), 400, "must be uploaded first")
    (uploaded,) = httpx.post(f"{server.url}/gradio_api/upload", files={"files": ("p.jpg", jpeg_bytes())}, timeout=30).json()
    payload = {"data": [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}, 64]}
    assert httpx.post(call, json=payload, timeout=30).status_code == 200  # an upload of its own still works


def test_gradio_uploads_per_client_are_limited(server: Server, jpeg_bytes) -> None:
    upload = f"{server.url}/gradio_api/upload"
    with _client("127.0.0.5") as client:
        for seed in range(UPLOADS_PER_CLIENT):
            assert client.post(upload, files={"files": ("p.jpg", jpeg_bytes((32, 32), seed=seed))}).status_code == 200
        refused = client.post(upload, files={"files": ("p.jpg", jpeg_bytes((32, 32)))})
        assert_error(refused, 429, "try again")
        assert int(refused.headers["retry-after"]) > 0
    with _client("127.0.0.6") as someone_else:
        assert someone_else.post(upload, files={"files": ("p.jpg", jpeg_bytes((32, 32)))}).status_code == 200


def test_200_half_open_connections_leave_health_and_colorization_answering(server: Server, jpeg_bytes) -> None:
    port = _port(server.url)
    held = _open(port, 200, b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
    held += _open(port, 10, b"POST /api/colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
    try:
        started = time.monotonic()
        assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200
        response = httpx.post(f"{server.url}/api/colorize", files={"image": ("p.jpg", jpeg_bytes((120, 90)))}, timeout=30)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 10
    finally:
        _close(held)
