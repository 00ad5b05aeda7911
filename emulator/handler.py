"""HTTP layer: routes each request, applies injected faults, and answers like the WaveSpeed API.

Shapes and codes follow WAVESPEED_API.md; where the doc marks something as inferred, its
recommendation is what is implemented. All state lives on the Emulator (server.py).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import socket
import string
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .faults import ABSURD_DEPTH, HUGE_BYTES, FaultRule
from .imagegen import UPLOAD_FORMATS, is_decodable, sniff_image_format
from .models import MODELS, ValidationError
from .multipart import MultipartError, parse_multipart
from .records import LiveRecord
from .tasks import prediction_object, sync_timeout_object

if TYPE_CHECKING:
    from .server import Emulator

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Bodies up to this size are read (and dropped) before a 413, so the client sees the reply instead
# of a broken pipe; anything larger is refused without reading and the connection is closed.
_MAX_DRAIN_BYTES = 256 * 1024 * 1024
_MAX_JSON_BYTES = 64 * 1024 * 1024

UNAUTHORIZED = "Unauthorized: invalid authentication"
INSUFFICIENT_BALANCE = "Insufficient balance: top up your WaveSpeed account"
WEBHOOK_BASE64_ERROR = (
    "webhook callback does not support base64 output, please use the normal API to use base64 output"
)

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_API_RE = re.compile(r"^/api/v[23]/(?P<rest>.+?)/?$")
_PRED_RE = re.compile(r"^predictions/(?P<id>[^/]+)(?P<result>/result)?$")
_ALNUM = string.ascii_letters + string.digits

_HTML_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class UploadTicket:
    """A pending direct upload: where the PUT body will be served, and as what type."""

    path: str
    content_type: str


def _reason(status: int) -> str:
    try:
        return http.client.responses[status]
    except KeyError:
        return "Error"


class ApiServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its Emulator and can cut its open keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 overflows when dozens of clients connect at once (a batch
    # of tasks): the kernel then drops handshakes and clients see resets. A real API takes them all.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # clients hanging up (or our own resets) are normal here
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Reset(Exception):
    """Raised inside a handler to abort the connection with a TCP RST instead of replying."""


class _Handler(BaseHTTPRequestHandler):
    """Per-connection handler: routes, applies faults, answers like the API."""

    protocol_version = "HTTP/1.1"
    server_version = "WaveSpeedEmulator/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms Nagle stall
    timeout = 300  # idle keep-alive connections are dropped after this many seconds

    record: LiveRecord | None
    body: bytes
    body_too_large: bool

    @property
    def emu(self) -> Emulator:
        return cast(ApiServer, self.server).emulator

    def setup(self) -> None:
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

    # ----------------------------------------------------------------- entry points

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    # ----------------------------------------------------------------- plumbing

    def _dispatch(self, method: str) -> None:
        self.record = None
        self.body = b""
        self.body_too_large = False
        self.dribble_s: float | None = None
        self.absurd = False
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_emulator/"):
                self._read_body(_MAX_JSON_BYTES)
                self._control(method, path)
                return
            route = self._route(method, path)
            self.record = LiveRecord(
                method=method,
                path=path,
                route=route,
                authorization=bool(self.headers.get("Authorization")),
                t=time.time(),
            )
            self.emu._record(self.record)
            self._read_body(MAX_UPLOAD_BYTES + 1024 * 1024 if route == "upload" else _MAX_JSON_BYTES)
            rule = self.emu._take_fault(route)
            if rule is not None and not self._pre_fault(rule):
                return
            self._handle(method, path, route, rule)
        except _Reset:
            self._reset_connection()
        except ValidationError as exc:  # only a broken request line or header gets here
            self._error(400, str(exc))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug in the emulator: say so loudly, keep serving
            traceback.print_exc()
            with contextlib.suppress(OSError):
                self._error(500, "internal emulator error (see the emulator's stderr)")
            self.close_connection = True

    def _read_body(self, limit: int) -> None:
        """Read the request body (Content-Length or chunked) so keep-alive stays in sync."""
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
        if length > _MAX_DRAIN_BYTES:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            got = self.rfile.read(min(remaining, 1 << 20))
            if not got:
                break
            remaining -= len(got)

    def _route(self, method: str, path: str) -> str:
        if path.startswith("/cdn/") or path.startswith("/media/"):
            return "download" if method in ("GET", "HEAD") else "other"
        if path.startswith("/_upload/"):
            return "upload" if method == "PUT" else "other"
        m = _API_RE.match(path)
        if m is None:
            return "other"
        rest = m.group("rest")
        if rest in ("balance", "account/balance"):
            return "balance" if method == "GET" else "other"
        if rest in ("media/upload/binary", "media/uploads"):
            return "upload" if method == "POST" else "other"
        if _PRED_RE.match(rest):
            return "result" if method == "GET" else "other"
        if rest == "predictions" or rest.startswith("predictions/") or rest.startswith("media/"):
            return "other"
        return "submit" if method == "POST" else "other"

    def _send(
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
            self._send_dribbled(status, body, content_type, headers)
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

    def _send_huge(self) -> None:
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

    def _send_dribbled(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None
    ) -> None:
        """The 'dribble' fault: the whole reply, one byte every dribble_s seconds."""
        lines = [f"HTTP/1.1 {status} {_reason(status)}", f"Content-Type: {content_type}"]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if self.command == "HEAD" else body)
        self.close_connection = True
        if self.record is not None:
            self.record.status = status
        for i in range(len(raw)):
            self.wfile.write(raw[i : i + 1])
            self.wfile.flush()
            if not self.emu._wait(self.dribble_s or 0.0):
                return

    def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        if self.absurd and status == 200 and body.endswith(b"}}"):
            extra = b',"timings":{"inference":1e400},"score":NaN,"deep":'
            extra += b"[" * ABSURD_DEPTH + b"]" * ABSURD_DEPTH
            body = body[:-2] + extra + b"}}"
        self._send(status, body, "application/json", headers)

    def _ok(self, data: object) -> None:
        self._json(200, {"code": 200, "message": "success", "data": data})

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"code": status, "message": message, "data": None}, headers)

    def _reset_connection(self) -> None:
        """Abort with RST: SO_LINGER(on, 0), then close the descriptor at once.

        The fd is detached first so the buffered rfile/wfile wrappers still holding the socket
        cannot keep it open (or close a reused fd later); the base class then finishes quietly.
        """
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(conn.detach())

    def _public_base(self) -> str:
        """Base URL for links in replies: the Host the client used, else the bound address."""
        host = self.headers.get("Host", "")
        if host and _HOST_RE.match(host):
            return f"http://{host}"
        return self.emu.base_url

    def _authorized(self) -> bool:
        if self.emu._check_key(self.headers.get("Authorization")):
            return True
        self._error(401, UNAUTHORIZED)
        return False

    def _json_body(self) -> Any:
        if not self.body.strip():
            raise ValidationError("request body must be a JSON object")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"request body is not valid JSON: {exc}") from exc

    # ----------------------------------------------------------------- faults

    def _pre_fault(self, rule: FaultRule) -> bool:
        """Apply a fault before normal handling; True means "go on and handle the request"."""
        kind = rule.kind
        if kind == "slow":
            self.emu._wait(rule.delay_s or 0.0)
            return True
        if kind == "dribble":
            self.dribble_s = rule.delay_s
            return True
        if kind == "absurd":
            self.absurd = True
            return True
        if kind == "retry_after":
            status = rule.status or 429
            self._error(status, rule.message or _reason(status), {"Retry-After": rule.message or "soon"})
            return False
        if kind == "huge":
            self._send_huge()
            return False
        if kind == "status":
            status = rule.status or 500
            headers = (
                {"Retry-After": str(int(round(rule.retry_after)))} if rule.retry_after is not None else {}
            )
            self._error(status, rule.message or _reason(status), headers)
            return False
        if kind == "html":
            status = rule.status or 502
            page = _HTML_PAGE.format(code=status, reason=rule.message or _reason(status))
            headers = (
                {"Retry-After": str(int(round(rule.retry_after)))} if rule.retry_after is not None else {}
            )
            self._send(status, page.encode(), "text/html", headers)
            return False
        if kind == "reset":
            raise _Reset()
        if kind == "malformed":
            self._send(200, b'{"code": 200, "message": "success", "data": {', "application/json")
            return False
        if kind == "wrong_shape":
            self._json(200, {"code": 200, "message": "success", "data": {"status": 42}})
            return False
        if kind == "envelope_error":
            status = rule.status or 500
            self._json(200, {"code": status, "message": rule.message or _reason(status), "data": None})
            return False
        return True  # truncate / corrupt / *_after_accept act inside the route handlers

    # ----------------------------------------------------------------- routes

    def _handle(self, method: str, path: str, route: str, rule: FaultRule | None) -> None:
        if self.body_too_large:
            limit_mb = (
                MAX_UPLOAD_BYTES // (1024 * 1024) if route == "upload" else _MAX_JSON_BYTES // (1024 * 1024)
            )
            self._error(413, f"Request too large: the maximum size is {limit_mb} MB")
            return
        if route == "download":
            self._download(path, rule)
            return
        if route == "other" and not path.startswith("/api/"):
            self._error(404, f"not found: {path}")
            return
        if path.startswith("/_upload/"):
            self._upload_put(path)
            return
        if not self._authorized():
            return
        rest = cast(re.Match[str], _API_RE.match(path)).group("rest") if _API_RE.match(path) else ""
        if route == "submit":
            self._submit(rest, rule)
        elif route == "result":
            m = cast(re.Match[str], _PRED_RE.match(rest))
            self._result(m.group("id"))
        elif route == "balance":
            self._ok({"balance": self.emu.balance})
        elif route == "upload" and rest == "media/upload/binary":
            self._upload_binary()
        elif route == "upload":
            self._upload_ticket()
        elif method == "POST" and rest == "predictions":
            self._list_predictions()
        else:
            self._error(404, f"not found: {path}")

    def _submit(self, model: str, rule: FaultRule | None) -> None:
        if model not in MODELS:
            self._error(404, f"model not found: {model}")
            return
        try:
            body = self._json_body()
            if not isinstance(body, dict):
                raise ValidationError("request body must be a JSON object")
            webhook = parse_qs(urlsplit(self.path).query).get("webhook")
            if webhook and body.get("enable_base64_output") is True:
                # The one documented 400 body: a bare {"error": ...}, no envelope.
                self._json(400, {"error": WEBHOOK_BASE64_ERROR})
                return
            created = self.emu._create_task(model, body, self._public_base())
        except ValidationError as exc:
            self._error(400, str(exc))
            return
        if created == 429:  # the account's per-minute window is full (limits.py): no task
            message, headers = self.emu.rate_limit_reply()
            self._error(429, message, headers)
            return
        if isinstance(created, int):
            self._error(402, INSUFFICIENT_BALANCE)
            return
        task = created
        if rule is not None and rule.kind == "reset_after_accept":
            raise _Reset()
        if rule is not None and rule.kind == "status_after_accept":
            status = rule.status or 504
            self._error(status, rule.message or _reason(status))
            return
        if not task.request.sync:
            self._ok(prediction_object(task, time.monotonic(), force_status="created"))
            return
        timeout = self.emu.sync_timeout_s
        deadline = time.monotonic() + timeout
        terminal = task.terminal_at
        wait_until = deadline if terminal is None else min(terminal, deadline)
        if not self.emu._wait(wait_until - time.monotonic()):
            self.close_connection = True
            self._error(503, "emulator shutting down")
            return
        now = time.monotonic()
        if task.is_due(now):
            self._ok(self.emu._data_for(task, now))
        else:
            self._ok(sync_timeout_object(task, timeout))

    def _result(self, request_id: str) -> None:
        try:
            task = self.emu.task(request_id)
        except KeyError:
            self._error(404, f"Prediction not found: {request_id}")
            return
        self._ok(self.emu._data_for(task, time.monotonic()))

    def _list_predictions(self) -> None:
        try:
            body = self._json_body() if self.body.strip() else {}
        except ValidationError as exc:
            self._error(400, str(exc))
            return
        if not isinstance(body, dict):
            self._error(400, "request body must be a JSON object")
            return
        page, size = body.get("page", 1), body.get("page_size", 20)
        if not isinstance(page, int) or page < 1 or not isinstance(size, int) or not 1 <= size <= 100:
            self._error(400, "page must be >= 1 and page_size between 1 and 100")
            return
        now = time.monotonic()
        tasks = self.emu._all_tasks()
        items = [self.emu._data_for(t, now) for t in reversed(tasks)]
        if isinstance(body.get("model"), str):
            items = [i for i in items if i["model"] == body["model"]]
        if isinstance(body.get("status"), str):
            items = [i for i in items if i["status"] == body["status"]]
        start = (page - 1) * size
        self._ok({"items": items[start : start + size], "page": page, "page_size": size, "total": len(items)})

    def _download(self, path: str, rule: FaultRule | None) -> None:
        found = self.emu._get_file(path)
        if found is None:
            self._error(404, f"not found: {path}")
            return
        data, mime = found
        if rule is not None and rule.kind == "truncate":
            self.close_connection = True
            self._send(200, data, mime, send_bytes=data[: len(data) // 2])
            return
        if rule is not None and rule.kind == "corrupt":
            data = _corrupt(data)
        self._send(200, data, mime)

    def _upload_binary(self) -> None:
        try:
            fields = parse_multipart(self.headers.get("Content-Type", ""), self.body)
        except MultipartError as exc:
            self._error(400, f"Invalid upload: {exc}")
            return
        part = fields.get("file")
        if part is None:
            self._error(400, "Invalid upload: the multipart field 'file' is required")
            return
        if len(part.data) > MAX_UPLOAD_BYTES:
            self._error(
                413, f"File too large: the maximum upload size is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
            )
            return
        fmt = sniff_image_format(part.data)
        if fmt is None:
            self._error(400, "Unsupported file type: upload a JPEG, PNG, WebP, GIF, BMP or TIFF image")
            return
        ext, mime = UPLOAD_FORMATS[fmt]
        name = f"{time.time_ns()}_{''.join(secrets.choice(_ALNUM) for _ in range(8))}.{ext}"
        media_path = f"/media/images/{name}"
        self.emu._add_upload(media_path, part.data, mime)
        self._ok(
            {
                "type": "image",
                "download_url": f"{self._public_base()}{media_path}",
                "filename": part.filename or name,
                "size": len(part.data),
            }
        )

    def _upload_ticket(self) -> None:
        """Step 1 of the direct upload (Python SDK 2.x): hand out a PUT URL on this server."""
        try:
            body = self._json_body()
        except ValidationError as exc:
            self._error(400, str(exc))
            return
        if not isinstance(body, dict) or not isinstance(body.get("filename"), str) or not body["filename"]:
            self._error(400, "filename is required")
            return
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            self._error(400, "size must be a non-negative integer")
            return
        if size > MAX_UPLOAD_BYTES:
            self._error(
                413, f"File too large: the maximum upload size is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
            )
            return
        filename = body["filename"]
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "png"
        if not re.fullmatch(r"[a-z0-9]{1,5}", ext):
            ext = "bin"
        ctype = body.get("content_type")
        if not isinstance(ctype, str) or not ctype:
            ctype = next((m for e, m in UPLOAD_FORMATS.values() if e == ext), "application/octet-stream")
        token = secrets.token_hex(16)
        name = f"{time.time_ns()}_{''.join(secrets.choice(_ALNUM) for _ in range(8))}.{ext}"
        media_path = f"/media/images/{name}"
        self.emu._add_ticket(token, UploadTicket(media_path, ctype))
        base = self._public_base()
        self._ok(
            {
                "type": "image" if ctype.startswith("image/") else "file",
                "download_url": f"{base}{media_path}",
                "filename": filename,
                "size": size,
                "upload": {
                    "method": "PUT",
                    "url": f"{base}/_upload/{token}",
                    "headers": {"Content-Type": ctype},
                },
            }
        )

    def _upload_put(self, path: str) -> None:
        """Step 2 of the direct upload: the presigned PUT (no Authorization expected)."""
        token = path[len("/_upload/") :]
        ticket = self.emu._take_ticket(token)
        if ticket is None:
            self._error(404, "upload URL unknown or already used")
            return
        self.emu._add_upload(ticket.path, self.body, ticket.content_type)
        self._send(200, b"", "text/plain")

    # ----------------------------------------------------------------- control endpoints

    def _control(self, method: str, path: str) -> None:
        if not self.client_address[0].startswith("127.") and self.client_address[0] not in (
            "::1",
            "::ffff:127.0.0.1",
        ):
            self._error(403, "control endpoints are loopback-only")
            return
        emu = self.emu
        name = path[len("/_emulator/") :].strip("/")
        if method == "GET" and name == "stats":
            self._json(200, emu.stats())
            return
        if method != "POST" or name not in ("faults", "tasks", "config", "reset"):
            self._error(404, f"not found: {path}")
            return
        try:
            kw = json.loads(self.body) if self.body.strip() else {}
            if not isinstance(kw, dict):
                raise ValueError("body must be a JSON object")
            if name == "faults":
                route, kind = kw.pop("route", None), kw.pop("kind", None)
                if not isinstance(route, str) or not isinstance(kind, str):
                    raise ValueError("route and kind are required strings")
                emu.inject(route, kind, **kw)
            elif name == "tasks":
                emu.next_tasks(**kw)
            elif name == "config":
                emu.configure(**kw)
            else:
                emu.reset()
        except (ValueError, TypeError) as exc:
            self._error(400, str(exc))
            return
        self._json(200, {"ok": True})


def _corrupt(data: bytes) -> bytes:
    """Same length, garbage from the middle on; if that still decodes (lenient WebP/BMP), start earlier."""
    for start in (len(data) // 2, 16, 0):
        n = len(data) - start
        garbage = ((np.arange(n, dtype=np.uint32) * 131 + 7) % 256).astype(np.uint8).tobytes()
        bad = data[:start] + garbage
        if not is_decodable(bad):
            return bad  # unreachable in practice: garbage from byte 0 has no image signature
    return bad  # unreachable in practice: garbage from byte 0 has no image signature
