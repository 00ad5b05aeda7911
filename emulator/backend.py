"""What the HTTP layer may ask of the emulator's state: the `Backend` protocol.

Why a protocol: the request handler (routes/handler.py and its helpers) must not reach into the
Emulator's private fields, and server.py must not be imported back by the handler. The handler
sees only this interface; server.Emulator implements it (mypy checks that where the server is
built), so imports point one way: server -> handler -> backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .behaviour.fault_rules import FaultRule
from .behaviour.tasks import Task
from .records import LiveRecord

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
PAYMENT_REQUIRED: Literal[402] = 402
RATE_LIMITED: Literal[429] = 429


@dataclass
class UploadTicket:
    """A pending direct upload: where the PUT body will be served, and as what type."""

    path: str
    content_type: str


class Backend(Protocol):
    """The emulator's state as the request handler sees it (every method is thread-safe)."""

    @property
    def base_url(self) -> str: ...

    @property
    def balance(self) -> float: ...

    @property
    def sync_timeout_s(self) -> float: ...

    # The kindness switches (server.Emulator's docstring) the handler reads.
    history_strict: bool
    low_balance_status: int
    error_body: str
    error_code_type: str

    def authorized(self, header: str | None) -> bool: ...

    def log_request(self, rec: LiveRecord) -> None: ...

    def take_fault(self, route: str) -> FaultRule | None: ...

    def wait(self, seconds: float) -> bool: ...

    def submit(self, model: str, body: dict[str, Any], base_url: str) -> Task | Literal[402, 429]: ...

    def rate_limit_reply(self) -> tuple[str, dict[str, str]]: ...

    def task(self, request_id: str) -> Task: ...

    def check_pace(self, request_id: str) -> float | None: ...

    def delete(self, ids: list[str]) -> int: ...

    def history(self) -> list[Task]: ...

    def prediction(
        self, task: Task, now: float, *, where: str = "submit", asked: bool = False
    ) -> dict[str, Any]: ...

    def file(self, path: str) -> tuple[bytes, str] | None: ...

    def add_upload(self, path: str, data: bytes, mime: str) -> None: ...

    def add_ticket(self, token: str, ticket: UploadTicket) -> None: ...

    def take_ticket(self, token: str) -> UploadTicket | None: ...

    # The control endpoints (/_emulator/...) pass JSON keywords straight through, so these are typed
    # as taking anything: server.Emulator's own signatures validate them (TypeError / ValueError).

    def stats(self) -> dict[str, Any]: ...

    @property
    def inject(self) -> Callable[..., None]: ...

    @property
    def next_tasks(self) -> Callable[..., None]: ...

    @property
    def configure(self) -> Callable[..., None]: ...

    def reset(self) -> None: ...
