"""HTTP plumbing under the routes: the listening server, reading bodies, writing replies.

Kept apart from handler.py (which decides *what* to answer) so that the way bytes go out —
normally, one byte at a time (dribble), oversized (huge) or as a TCP reset — is in one place.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from ..backend import Backend
from ..behaviour.fault_rules import ABSURD_DEPTH, HUGE_BYTES
from ..behaviour.model_registry import ValidationError
from ..records import LiveRecord

# Bodies up to this size are read (and dropped) before a 413, so the client sees the reply instead
# of a broken pipe; anything larger is refused without reading and the connection is closed.
MAX_DRAIN_BYTES = 256 * 1024 * 1024
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def reason(status: int) -> str:
    """The standard reason phrase for status ("Error" if there is none)."""
    try:
        return http.client.responses[status]
    except KeyError:
        return "Error"


class ResetConnection(Exception):
    """Raised inside a handler to abort the connection with a TCP RST instead of replying."""


class ApiServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its Backend and can cut its open keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when dozens of clients connect at once (a batch
    # of tasks): the kernel then drops handshakes and clients see resets. A real API takes them all.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        backend: Backend,
        handler: type[ReplyHandler],
        *,
        nodelay: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.backend = backend
        self.nodelay = nodelay
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, handler)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def get_request(self) -> tuple[socket.socket, Any]:
        """An accepted connection, wrapped in TLS when serving https; the handshake runs in the
        connection's own thread (ReplyHandler.setup), so a client that never finishes it blocks
        nobody else."""
        conn, address = super().get_request()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # clients hanging up (or our own resets) are normal here
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open connection (stop() uses it so keep-alive threads end)."""
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class ReplyHandler(BaseHTTPRequestHandler):
    """Per-connection plumbing: body reading and the ways a reply can be written."""

    protocol_version = "HTTP/1.1"
    server_version = "WaveSpeedEmulator/1.0"
    timeout = 300  # idle keep-alive connections are dropped after this many seconds

    record: LiveRecord | None = None
    body: bytes = b""
    body_too_large: bool = False
    dribble_s: float | None = None
    absurd: bool = False

    @property
    def disable_nagle_algorithm(self) -> bool:  # type: ignore[override]
        """Headers and body go out in two writes: without TCP_NODELAY a 40 ms Nagle stall."""
        return cast(ApiServer, self.server).nodelay

    @property
    def backend(self) -> Backend:
        return cast(ApiServer, self.server).backend

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()  # a client that distrusts the certificate ends it here
        super().setup()
        srv = cast(ApiServer, self.server)
        with srv.conn_lock:
            srv.connections.add(self.connection)

    def finish(self) -> None:
        srv = cast(ApiServer, self.server)
        with srv.conn_lock:
            srv.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def read_body(self, limit: int) -> None:
        """Read the request body (Content-Length or chunked) so keep-alive stays in sync.

        Sets body, or body_too_large past limit. Raises ValidationError on a bad Content-Length.
        """
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                self.rfile.readline(65537)
                total += size
                if total <= limit:
                    chunks.append(data)
                else:
                    self.body_too_large = True
            self.body = b"" if self.body_too_large else b"".join(chunks)
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise ValidationError("invalid Content-Length header")
        if length <= limit:
            self.body = self.rfile.read(length) if length > 0 else b""
            return
        self.body_too_large = True
        if length > MAX_DRAIN_BYTES:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            got = self.rfile.read(min(remaining, 1 << 20))
            if not got:
                break
            remaining -= len(got)

    def public_base(self) -> str:
        """Base URL for links in replies: the Host the client used, else the bound address."""
        host = self.headers.get("Host", "")
        if host and _HOST_RE.match(host):
            return f"{cast(ApiServer, self.server).scheme}://{host}"
        return self.backend.base_url

    def json_body(self) -> Any:
        """The body parsed as JSON. Raises ValidationError (a 400) if it is empty or not JSON."""
        if not self.body.strip():
            raise ValidationError("request body must be a JSON object")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"request body is not valid JSON: {exc}") from exc

    def reply(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        send_bytes: bytes | None = None,
    ) -> None:
        """Send a complete reply; Content-Length is always len(body) (send_bytes may lie)."""
        if self.dribble_s is not None:
            self._reply_dribbled(status, body, content_type, headers)
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.record is not None:
            self.record.status = status
        if self.command != "HEAD":
            self.wfile.write(body if send_bytes is None else send_bytes)
        self.wfile.flush()

    def reply_huge(self) -> None:
        """The 'huge' fault: a HUGE_BYTES JSON reply, written in chunks until the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        if self.record is not None:
            self.record.status = 200
        head = b'{"code":200,"message":"'
        chunk = b"x" * (1 << 16)
        self.wfile.write(head)
        sent = len(head)
        while sent < HUGE_BYTES - 2:
            piece = chunk[: HUGE_BYTES - 2 - sent]
            self.wfile.write(piece)
            sent += len(piece)
        self.wfile.write(b'"}')
        self.wfile.flush()

    def _reply_dribbled(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None
    ) -> None:
        """The 'dribble' fault: the whole reply, one byte every dribble_s seconds."""
        lines = [f"HTTP/1.1 {status} {reason(status)}", f"Content-Type: {content_type}"]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if self.command == "HEAD" else body)
        self.close_connection = True
        if self.record is not None:
            self.record.status = status
        for i in range(len(raw)):
            self.wfile.write(raw[i : i + 1])
            self.wfile.flush()
            if not self.backend.wait(self.dribble_s or 0.0):
                return

    def reply_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        """obj as compact JSON (with the 'absurd' fault's extras on a 200 envelope)."""
        body = json.dumps(obj, separators=(",", ":")).encode()
        if self.absurd and status == 200 and body.endswith(b"}}"):
            extra = b',"timings":{"inference":1e400},"score":NaN,"deep":'
            extra += b"[" * ABSURD_DEPTH + b"]" * ABSURD_DEPTH
            body = body[:-2] + extra + b"}}"
        self.reply(status, body, "application/json", headers)

    def reply_ok(self, data: object) -> None:
        """The API's success envelope around data."""
        self.reply_json(200, {"code": 200, "message": "success", "data": data})

    def reply_error(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        detail: str | None = None,
        error_code: int | str | None = None,
    ) -> None:
        """The API's error envelope: HTTP status, the same code, message; with the backend's
        ``error_body`` "full" also ``error_code`` and ``data: {error}`` (the Java spec's shape and
        the official clients' ``error_code``, WAVESPEED_API.md 12.4, 13.8), "plain": data null.
        ``error_code`` is a string unless the ``error_code_type`` switch says "int"."""
        if getattr(self.backend, "error_body", "full") == "plain":
            self.reply_json(status, {"code": status, "message": message, "data": None}, headers)
            return
        code: int | str = status if error_code is None else error_code
        if getattr(self.backend, "error_code_type", "string") != "int":
            code = str(code)
        elif isinstance(code, str) and code.isdigit():
            code = int(code)
        body = {"code": status, "message": message, "error_code": code, "data": {"error": detail or message}}
        self.reply_json(status, body, headers)

    def reset_connection(self) -> None:
        """Abort with RST: SO_LINGER(on, 0), then close the descriptor at once.

        The fd is detached first so the buffered rfile/wfile wrappers still holding the socket
        cannot keep it open (or close a reused fd later); the base class then finishes quietly.
        """
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(conn.detach())
