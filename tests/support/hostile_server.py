"""A tiny raw-socket HTTP server on 127.0.0.1 for what the emulator should not do: scripted replies
byte for byte (redirects, close-delimited 100 MB bodies, garbage envelopes), and a count of every
connection it accepted, so a test can prove that nothing was sent to it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from wavespeed_kontext_pack.wavespeed.net.client import RetryPolicy, WaveSpeedClient

Script = Callable[[socket.socket, bytes], None]


def http_reply(
    status: int, body: bytes, *, headers: dict[str, str] | None = None, length: bool = True
) -> bytes:
    """A complete HTTP/1.1 reply (close-delimited when ``length`` is False)."""
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", "Connection: close"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_request(conn: socket.socket) -> bytes:
    """Headers and a Content-Length body (enough for the client's small JSON requests)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


class RawServer:
    """Accept on 127.0.0.1:<free port>; run ``script(conn, request_bytes)`` per connection."""

    def __init__(self, script: Script | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.script = script or (lambda conn, req: conn.sendall(http_reply(200, b"{}")))
        self.accepted = 0
        self.requests: list[bytes] = []
        self.bytes_sent = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(30)
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                request = _read_request(conn)
                self.requests.append(request)
                self.script(conn, request)
            except OSError:
                pass

    def send_stream(self, conn: socket.socket, head: bytes, total: int, chunk: int = 1 << 16) -> None:
        """Send ``head`` then ``total`` filler bytes, counting what the peer took before hanging up."""
        conn.sendall(head)
        block = b"x" * chunk
        sent = 0
        with contextlib.suppress(OSError):
            while sent < total and not self._stop.is_set():
                n = conn.send(block[: min(chunk, total - sent)])
                sent += n
                self.bytes_sent = sent

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(timeout=2)


def run_bounded(fn: Callable[[], object], bound_s: float, what: str = "the call") -> object:
    """Run fn in a thread; fail if it is still running after bound_s (a deadline that did not hold);
    return its result or the exception it raised."""
    out: list[object] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(bound_s)
    assert not worker.is_alive(), f"{what} was still running after {bound_s:.1f}s"
    return out[0]


def fast_client(base_url: str, api_key: str) -> WaveSpeedClient:
    """A client with short timeouts and near-instant retries, so hostile-reply tests run in seconds."""
    return WaveSpeedClient(
        api_key,
        base_url,
        connect_timeout_s=2.0,
        read_timeout_s=3.0,
        retry=RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.02, max_retry_after_s=5.0),
    )


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, and the cert's path
    (a client trusts it only when told to); skips when the openssl CLI is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


class ResetServer:
    """Accept on 127.0.0.1 and reset each connection (RST, SO_LINGER 0) without reading a byte:
    at once (``after_data=False``), or once the client's first bytes have arrived unread."""

    def __init__(self, *, after_data: bool) -> None:
        self.after_data = after_data
        self.accepted = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            with contextlib.suppress(OSError):
                if self.after_data:
                    conn.settimeout(10)
                    conn.recv(1, socket.MSG_PEEK)  # wait for the request's bytes; leave them unread
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(timeout=2)
