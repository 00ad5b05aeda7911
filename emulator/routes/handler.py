"""Routing: which route a request is, and how each API route answers, like the WaveSpeed API.

Shapes and codes follow WAVESPEED_API.md; where the doc marks something as inferred, its
recommendation is what is implemented. All state lives behind the Backend protocol (backend.py):
this module never imports server.py. Reply plumbing is in wire.py, fault acts in behaviour/fault_acts.py,
the upload routes in upload_routes.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import time
import traceback
from typing import cast
from urllib.parse import parse_qs, urlsplit

from ..backend import MAX_UPLOAD_BYTES, RATE_LIMITED, Backend
from ..behaviour.fault_acts import corrupt, pre_fault
from ..behaviour.fault_rules import FaultRule
from ..behaviour.model_registry import MODELS, ValidationError
from ..behaviour.tasks import prediction_object, sync_timeout_object
from ..records import LiveRecord
from .echo import parse_time
from .history_route import parse_query
from .upload_routes import UPLOAD_PREFIX, upload_binary, upload_put, upload_ticket
from .wire import ApiServer, ReplyHandler, ResetConnection, reason

__all__ = ["MAX_UPLOAD_BYTES", "ApiServer", "make_server"]

_MAX_JSON_BYTES = 64 * 1024 * 1024

UNAUTHORIZED = "Unauthorized: invalid authentication"
# Low balance on the live API: an HTTP error whose text contains "Insufficient credits", status
# unknown (WAVESPEED_API.md 12.4); the emulator's status is the low_balance_status switch.
INSUFFICIENT_BALANCE = "Insufficient credits: top up your WaveSpeed account"
WEBHOOK_BASE64_ERROR = (
    "webhook callback does not support base64 output, please use the normal API to use base64 output"
)

_API_RE = re.compile(r"^/api/v[23]/(?P<rest>.+?)/?$")
_PRED_RE = re.compile(r"^predictions/(?P<id>[^/]+)(?P<result>/result)?$")


def make_server(
    address: tuple[str, int], backend: Backend, *, nodelay: bool = True, tls: ssl.SSLContext | None = None
) -> ApiServer:
    """Bind address and return the (not yet serving) API server answering from backend.

    Args:
        address: (host, port); port 0 picks a free port.
        backend: the state to answer from (server.Emulator).
        nodelay: give accepted sockets TCP_NODELAY (off shows the 40 ms Nagle stall; see bench).
        tls: a server context to serve https with (None: plain http).
    Raises:
        OSError: the address cannot be bound.
    """
    return ApiServer(address, backend, _Handler, nodelay=nodelay, tls=tls)


def route_of(method: str, path: str) -> str:
    """The fault route a request belongs to: submit | result | download | upload | balance | other."""
    if path.startswith("/cdn/") or path.startswith("/media/"):
        return "download" if method in ("GET", "HEAD") else "other"
    if path.startswith(UPLOAD_PREFIX):
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


class _Handler(ReplyHandler):
    """Per-connection handler: routes, applies faults, answers like the API."""

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

    def _dispatch(self, method: str) -> None:
        self.record = None
        self.body = b""
        self.body_too_large = False
        self.dribble_s = None
        self.absurd = False
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_emulator/"):
                self.read_body(_MAX_JSON_BYTES)
                self._control(method, path)
                return
            route = route_of(method, path)
            self.record = LiveRecord(
                method=method,
                path=path,
                route=route,
                authorization=bool(self.headers.get("Authorization")),
                t=time.time(),
                peer=str(self.client_address[0]),
            )
            self.backend.log_request(self.record)
            self.read_body(MAX_UPLOAD_BYTES + 1024 * 1024 if route == "upload" else _MAX_JSON_BYTES)
            rule = self.backend.take_fault(route)
            if rule is not None and not pre_fault(self, rule):
                return
            self._handle(method, path, route, rule)
        except ResetConnection:
            self.reset_connection()
        except ValidationError as exc:  # only a broken request line or header gets here
            self.reply_error(400, str(exc))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug in the emulator: say so loudly, keep serving
            traceback.print_exc()
            with contextlib.suppress(OSError):
                self.reply_error(500, "internal emulator error (see the emulator's stderr)")
            self.close_connection = True

    def _authorized(self) -> bool:
        if self.backend.authorized(self.headers.get("Authorization")):
            return True
        self.reply_error(401, UNAUTHORIZED)
        return False

    # ----------------------------------------------------------------- routes

    def _handle(self, method: str, path: str, route: str, rule: FaultRule | None) -> None:
        if self.body_too_large:
            limit_mb = (
                MAX_UPLOAD_BYTES // (1024 * 1024) if route == "upload" else _MAX_JSON_BYTES // (1024 * 1024)
            )
            self.reply_error(413, f"Request too large: the maximum size is {limit_mb} MB")
            return
        if route == "download":
            self._download(path, rule)
            return
        if route == "other" and not path.startswith("/api/"):
            self.reply_error(404, f"not found: {path}")
            return
        if path.startswith(UPLOAD_PREFIX):
            upload_put(self, path)
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
            self.reply_ok({"balance": self.backend.balance})
        elif route == "upload" and rest == "media/upload/binary":
            upload_binary(self)
        elif route == "upload":
            upload_ticket(self)
        elif method == "POST" and rest == "predictions":
            self._list_predictions()
        elif method == "POST" and rest == "predictions/delete":
            self._delete_predictions()
        else:
            self.reply_error(404, f"not found: {path}")

    def _submit(self, model: str, rule: FaultRule | None) -> None:
        if model not in MODELS:
            self.reply_error(404, f"model not found: {model}")
            return
        try:
            body = self.json_body()
            if not isinstance(body, dict):
                raise ValidationError("request body must be a JSON object")
            webhook = parse_qs(urlsplit(self.path).query).get("webhook")
            if webhook and body.get("enable_base64_output") is True:
                # The one documented 400 body: a bare {"error": ...}, no envelope.
                self.reply_json(400, {"error": WEBHOOK_BASE64_ERROR})
                return
            task = self.backend.submit(model, body, self.public_base())
        except ValidationError as exc:
            self.reply_error(400, str(exc))
            return
        if task == RATE_LIMITED:  # the account's per-minute window is full (behaviour/tiers.py): no task
            message, headers = self.backend.rate_limit_reply()
            self.reply_error(429, message, headers)
            return
        if isinstance(task, int):  # PAYMENT_REQUIRED: the balance is short
            self.reply_error(self.backend.low_balance_status, INSUFFICIENT_BALANCE)
            return
        if rule is not None and rule.kind == "reset_after_accept":
            raise ResetConnection()
        if rule is not None and rule.kind == "status_after_accept":
            status = rule.status or 504
            self.reply_error(status, rule.message or reason(status))
            return
        if not task.request.sync:
            self.reply_ok(prediction_object(task, time.monotonic(), force_status="created"))
            return
        timeout = self.backend.sync_timeout_s
        deadline = time.monotonic() + timeout
        terminal = task.terminal_at
        wait_until = deadline if terminal is None else min(terminal, deadline)
        if not self.backend.wait(wait_until - time.monotonic()):
            self.close_connection = True
            self.reply_error(503, "emulator shutting down")
            return
        now = time.monotonic()
        if task.is_due(now):
            self.reply_ok(self.backend.prediction(task, now))
        else:
            self.reply_ok(sync_timeout_object(task, timeout))

    def _result(self, request_id: str) -> None:
        gap = self.backend.check_pace(request_id)
        if gap is not None:  # WaveSpeed's published pace (WAVESPEED_API.md 13.1): no task was read
            self.reply_error(
                429, f"Too many requests: check task {request_id} at most once every {gap:g} seconds"
            )
            return
        try:
            task = self.backend.task(request_id)
        except KeyError:
            self.reply_error(404, f"Prediction not found: {request_id}")
            return
        self.reply_ok(self.backend.prediction(task, time.monotonic(), where="result"))

    def _delete_predictions(self) -> None:
        try:
            body = self.json_body()
            ids = body.get("ids") if isinstance(body, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValidationError("ids must be a list of task ids")
        except ValidationError as exc:
            self.reply_error(400, str(exc))
            return
        self.reply_ok({"deleted_count": self.backend.delete(ids)})

    def _list_predictions(self) -> None:
        try:
            body = self.json_body() if self.body.strip() else {}
            query = parse_query(body, strict=self.backend.history_strict)
        except ValidationError as exc:
            self.reply_error(400, str(exc))
            return
        now = time.monotonic()
        items = []
        for task in sorted(self.backend.history(), key=lambda t: t.created_ns, reverse=True):
            item = self.backend.prediction(task, now, where="list", asked=query.include_inputs)
            if item["status"] == "deleted":  # gone from the history; only its /result still says so
                continue
            created = parse_time(task.created_at)  # what the client sees, not the finer clock
            if query.keeps(task.model, item["status"], task.created_ns / 1e9 if created is None else created):
                items.append(item)
        start = (query.page - 1) * query.page_size
        page = items[start : start + query.page_size]
        self.reply_ok({"items": page, "page": query.page, "page_size": query.page_size, "total": len(items)})

    def _download(self, path: str, rule: FaultRule | None) -> None:
        found = self.backend.file(path)
        if found is None:
            self.reply_error(404, f"not found: {path}")
            return
        data, mime = found
        if rule is not None and rule.kind == "truncate":
            self.close_connection = True
            self.reply(200, data, mime, send_bytes=data[: len(data) // 2])
            return
        if rule is not None and rule.kind == "corrupt":
            data = corrupt(data)
        self.reply(200, data, mime)

    # ----------------------------------------------------------------- control endpoints

    def _control(self, method: str, path: str) -> None:
        if not self.client_address[0].startswith("127.") and self.client_address[0] not in (
            "::1",
            "::ffff:127.0.0.1",
        ):
            self.reply_error(403, "control endpoints are loopback-only")
            return
        backend = self.backend
        name = path[len("/_emulator/") :].strip("/")
        if method == "GET" and name == "stats":
            self.reply_json(200, backend.stats())
            return
        if method != "POST" or name not in ("faults", "tasks", "config", "reset"):
            self.reply_error(404, f"not found: {path}")
            return
        try:
            kw = json.loads(self.body) if self.body.strip() else {}
            if not isinstance(kw, dict):
                raise ValueError("body must be a JSON object")
            if name == "faults":
                route, kind = kw.pop("route", None), kw.pop("kind", None)
                if not isinstance(route, str) or not isinstance(kind, str):
                    raise ValueError("route and kind are required strings")
                backend.inject(route, kind, **kw)
            elif name == "tasks":
                backend.next_tasks(**kw)
            elif name == "config":
                backend.configure(**kw)
            else:
                backend.reset()
        except (ValueError, TypeError) as exc:
            self.reply_error(400, str(exc))
            return
        self.reply_json(200, {"ok": True})
